#pragma once
// Helpers for tests that look at real directory trees: a temporary
// directory removed afterwards, small file I/O, and a manifest of a tree
// that two states can be compared by.
#include <cstdint>
#include <filesystem>
#include <string>

namespace iz::test {

// A fresh directory under the system temporary directory (a real disk
// filesystem, so xattrs, hard links and O_TMPFILE behave as on a server).
class TempDir {
public:
    explicit TempDir(const std::string& tag = "repl");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& rel) const { return path_ / rel; }

private:
    std::filesystem::path path_;
};

// Whole-file read (throws on failure: a test helper, the test fails loudly).
std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::string& content, unsigned mode = 0644);

// One line per entry under `root` (the root itself as "."), sorted by path:
// type, mode, uid, gid, mtime (ns), size, content hash (regular files),
// symlink target, link count and user xattrs. Entries whose first component
// is `skip_top` are left out. Directory sizes are left out on purpose: they
// depend on the filesystem's history, not on what a replica holds.
std::string manifest(const std::filesystem::path& root, const std::string& skip_top = {});

// The same, but only the names (for "nothing was created or removed").
std::string listing(const std::filesystem::path& root);

int64_t mtime_ns(const std::filesystem::path& p);  // lstat
std::string xattr(const std::filesystem::path& p, const std::string& name);  // "" when absent

}  // namespace iz::test
