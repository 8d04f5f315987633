#pragma once
// Reading the source side at ship time: the files and directories that
// journal records name, beneath the watched root.
//
// Promises:
//  - Paths are resolved beneath the watched root (openat2 RESOLVE_BENEATH,
//    no symlinks followed).
//  - When a record carries a file handle, the file returned is that inode:
//    if the path now names another file, or nothing, the handle is opened
//    instead (open_by_handle_at). A file that no longer exists anywhere
//    comes back as nullopt: the record is superseded by a later one.
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "journal/record.hpp"
#include "unique_fd.hpp"

namespace iz::replicator {

struct SourceFile {
    UniqueFd fd;  // O_RDONLY, a regular file
    struct stat st{};
};

class SourceTree {
public:
    static Result<SourceTree> open(const std::filesystem::path& root);

    // The regular file a record names, opened for reading.
    Result<std::optional<SourceFile>> open_file(const std::string& path, const journal::FileHandle& handle) const;
    // mtime of the directory that contains `path` ("" for the root's own
    // parent is not asked for); nullopt when it cannot be read.
    std::optional<int64_t> parent_mtime(const std::string& path) const;

    // Whether the object `handle` names is a directory (where it is now);
    // false when it is gone.
    bool is_directory(const journal::FileHandle& handle) const;
    // The text of the symlink `handle` names (where it is now); nullopt
    // when it is gone.
    std::optional<std::string> link_target(const journal::FileHandle& handle) const;

    int root_fd() const { return root_.get(); }

private:
    UniqueFd root_;
    std::filesystem::path path_;
};

// Reads exactly [offset, offset+len) unless the file is shorter; returns
// what was read.
Result<std::string> read_range(int fd, uint64_t offset, size_t len, const std::string& what);

}  // namespace iz::replicator
