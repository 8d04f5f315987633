#pragma once
// The agent's knowledge of the watched tree: one entry per path with what a
// rescan compares (type, mode, owner, size, times, inode, handle, link
// target, xattrs). It survives restarts on disk, so changes made while no
// agent ran are found by comparing it with a fresh scan.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/file_handle.hpp"
#include "journal/record.hpp"

namespace iz::agent {

struct Entry {
    uint32_t mode = 0;
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    int64_t atime_ns = 0;
    uint64_t ino = 0;
    uint32_t nlink = 0;
    uint64_t rdev = 0;
    uint64_t version = 0;
    FileHandle handle;  // saved as its key()
    std::string link_target;
    std::map<std::string, std::string> xattrs;

    bool is_dir() const { return (mode & 0170000) == 0040000; }
    bool is_reg() const { return (mode & 0170000) == 0100000; }
    bool is_symlink() const { return (mode & 0170000) == 0120000; }
};

// Gives `to`, another name of the inode `from` was read through, what that
// reading says of the inode: mode, owner, size, mtime, ctime, link count,
// and the xattrs when `with_xattrs` (the reading fetched them).
void share_reading(Entry& to, const Entry& from, bool with_xattrs);

// The mtime of a file whose content is not known to match the source (the
// journal said it changed, not what it became): any comparison with it
// finds the content changed.
inline constexpr int64_t kUnknownMtime = INT64_MIN;

// Paths relative to the root; "" is the root itself.
using Tree = std::map<std::string, Entry>;

// Decides whether a relative path is left out (--exclude globs).
using ExcludeFn = std::function<bool(const std::string&)>;

// What read_entry fetches beyond lstat and the link target. Each part is a
// path walk of its own, and the agent reads entries on the hot path of
// every event: callers that already know the handle, or whose event cannot
// have changed xattrs, leave those parts out.
enum ReadParts : unsigned { kReadStat = 0, kReadHandle = 1, kReadXattrs = 2, kReadAll = 3 };

// Reads the entry at `rel` beneath `root_fd`. ENOENT comes back as an Error
// with sys_errno ENOENT.
Result<Entry> read_entry(int root_fd, const std::string& rel, unsigned parts = kReadAll);

// Reads the object a handle names, wherever it is now (`rel` only names
// it in errors). For an event whose path went stale before it was read: a
// later rename moved the object, and its attributes still belong to the
// records at the old path. ENOENT when it no longer exists.
Result<Entry> read_entry_by_handle(int root_fd, const FileHandle& handle, const std::string& rel);

// Walks the tree beneath `root_fd`, skipping excluded paths. Every name of
// one object (hard links) carries the same attributes, the newest the walk
// read of it.
Result<Tree> scan_tree(int root_fd, const ExcludeFn& excluded);

// The record that creates `e` at `path` (create, mkdir, symlink, mknod).
journal::Record creation_record(const std::string& path, const Entry& e);
// Attribute records for a change from `before` to `after` at `path`.
std::vector<journal::Record> attribute_records(const std::string& path, const Entry& before, const Entry& after);

// A saved tree and the journal position it describes: every record up to
// `lsn` is in it, none after. A state saved before positions were kept has
// none (nullopt); a missing file is an empty tree at no position.
struct SavedTree {
    Tree tree;
    std::optional<uint64_t> lsn;
};

Status save_tree(const Tree& tree, uint64_t lsn, const std::filesystem::path& file);
Result<SavedTree> load_tree(const std::filesystem::path& file);

}  // namespace iz::agent
