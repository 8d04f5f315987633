#pragma once
// Helpers for tests that look at real directory trees: a temporary
// directory removed afterwards, small file I/O, and a manifest of a tree
// that two states can be compared by.
#include <cstdint>
#include <filesystem>
#include <map>
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
// type (f d l p s c b), mode, uid, gid, mtime (ns), link count, size and
// content hash (regular files), symlink target, device number (c, b), and
// user xattrs and POSIX ACLs. Entries whose first component is `skip_top`
// are left out. Directory sizes are left out on purpose: they depend on the
// filesystem's history, not on what a replica holds. The walk goes through
// directory file descriptors, so a tree deeper than PATH_MAX is read whole.
std::string manifest(const std::filesystem::path& root, const std::string& skip_top = {});

// What a regular file takes on disk: st_blocks (512-byte units), the block
// size of its filesystem and how many runs of data SEEK_DATA/SEEK_HOLE find
// within its size.
struct Allocation {
    uint64_t blocks = 0;
    uint64_t block_size = 0;
    uint64_t data_extents = 0;
    // Its extents as FIEMAP reports them, for a message: "[offset+length flags]".
    std::string extent_map;
};

// Every regular file under `root` by path (as in `manifest`).
std::map<std::string, Allocation> allocations(const std::filesystem::path& root, const std::string& skip_top = {});

// A replica file may take no more room than its source plus one block per
// data extent of the source (a copy that fills holes, or preallocates, does).
// One line per file of both trees that breaks that rule, "" when none does.
// Files found in one tree only are the manifest's business, not this one's.
std::string allocation_excess(const std::filesystem::path& source, const std::filesystem::path& replica,
                              const std::string& skip_top = {});

// The same, but only the names (for "nothing was created or removed").
std::string listing(const std::filesystem::path& root);

int64_t mtime_ns(const std::filesystem::path& p);  // lstat
std::string xattr(const std::filesystem::path& p, const std::string& name);  // "" when absent

}  // namespace iz::test
