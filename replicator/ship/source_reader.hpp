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
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "replicator/fs/file_extents.hpp"
#include "journal/record.hpp"
#include "common/unique_fd.hpp"

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
    // The type bits (S_IFMT) of the object `handle` names; nullopt when it
    // is gone or there is no handle.
    std::optional<uint32_t> file_type(const journal::FileHandle& handle) const;
    // Whether what a record names (by its handle, or by `path` without one)
    // still exists and is not a regular file: a device, fifo, socket,
    // symlink or directory, which open_file() also answers with nullopt.
    bool names_other_than_a_file(const std::string& path, const journal::FileHandle& handle) const;
    // The text of the symlink `handle` names (where it is now); nullopt
    // when it is gone.
    std::optional<std::string> link_target(const journal::FileHandle& handle) const;
    // Whether `path` names the object `handle` names now (false when
    // either is gone, or there is no handle).
    bool holds(const std::string& path, const journal::FileHandle& handle) const;
    // The status of the object `handle` names, whatever its type; nullopt
    // when it is gone or there is no handle.
    std::optional<struct stat> stat_object(const journal::FileHandle& handle) const;
    // The extended attributes a replica is compared by (user.* and POSIX
    // ACLs) of the object `handle` names; empty when it is gone.
    std::map<std::string, std::string> xattrs(const journal::FileHandle& handle) const;

    int root_fd() const { return root_.get(); }

private:
    UniqueFd root_;
    std::filesystem::path path_;
};

// Reads exactly [offset, offset+len) unless the file is shorter; returns
// what was read.
Result<std::string> read_range(int fd, uint64_t offset, size_t len, const std::string& what);

// The data extents of [from, to) of a source file (data_extents()). A
// small file (up to 64 KiB) with at least as many bytes of blocks as of size
// is taken as all data when one SEEK_HOLE finds no hole in the range (one
// syscall instead of two per file of a tree copy); its blocks alone do not
// say so, since blocks counted beyond its data (preallocated past its end,
// a copy-on-write reservation, an xattr block) can hide a hole, whose zeros
// would then take blocks on the replica. Larger files always walk their
// extents: a preallocated file looks dense by its blocks, but only what
// was written is data.
// `end` as data_extents() sets it.
Result<std::vector<DataExtent>> file_data(const SourceFile& f, uint64_t from, uint64_t to, const std::string& what,
                                          uint64_t* end = nullptr);

// How a range of a file travels: bytes where it has data, holes (no bytes)
// where it has none.
struct SparseOut {
    // Bytes at an offset; false stops the reading.
    std::function<bool(uint64_t, std::string&&)> data;
    // A hole; false stops the reading.
    std::function<bool(uint64_t offset, uint64_t length)> hole;
};

struct SparseRead {
    uint64_t end = 0;      // short of the range's end when the file shrank
    bool stopped = false;  // a callback said stop
};

// Reads [from, to) of `fd` in order: the parts within the data extents
// `extents` (data_extents() of the file) in chunks of at most `chunk`
// bytes, given to out.data unless all zeros; the holes between them and the
// chunks of zeros go to out.hole (adjacent ones merged), and holes are never
// read. `block`, when given, holds the bytes of [from, to) already read
// (holes as zeros; shorter when the file shrank): they are used instead of
// reading again.
Result<SparseRead> read_sparse(int fd, const std::vector<DataExtent>& extents, uint64_t from, uint64_t to, size_t chunk,
                               const std::string& what, const SparseOut& out,
                               std::optional<std::string_view> block = std::nullopt);

}  // namespace iz::replicator
