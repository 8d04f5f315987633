#pragma once
// Small record builders and path helpers shared by the capture's source
// files (capture*.cpp); not part of the agent's interface.
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "agent/tree_state.hpp"
#include "journal/record.hpp"

namespace iz::agent::capture_detail {

// The inode number a file handle key (handle_key_of()) names, for the
// layouts that put it there plainly: ext4's and XFS's 32-bit form (inode,
// generation) and XFS's 64-bit form (inode, generation, packed). Others
// (tmpfs, btrfs, ...) give nullopt: ask the kernel for the handle instead.
inline std::optional<uint64_t> inode_of_handle(const std::string& key) {
    if (key.size() < 4) return std::nullopt;
    int32_t type = 0;
    std::memcpy(&type, key.data(), 4);
    size_t len = key.size() - 4;
    const char* b = key.data() + 4;
    if ((type == 1 && len == 8) || (type == 2 && len == 16)) {  // FILEID_INO32_GEN(_PARENT)
        uint32_t ino = 0;
        std::memcpy(&ino, b, 4);
        return ino;
    }
    if ((type == 0x81 && len == 12) || (type == 0x82 && len == 24)) {  // XFS, 64-bit inode numbers
        uint64_t ino = 0;
        std::memcpy(&ino, b, 8);
        return ino;
    }
    return std::nullopt;
}

// A path read failed because what it named is no longer there: removed or
// moved (ENOENT), or a directory on the way was replaced by a file
// (ENOTDIR: an exchange of a directory with a file, its move still queued).
inline bool gone_from_path(int err) { return err == ENOENT || err == ENOTDIR; }

inline std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

// `path` is `dir` or beneath it ("" is the root: everything is beneath it).
inline bool under(const std::string& path, const std::string& dir) {
    return dir.empty() || path == dir || (path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/');
}

// `target` is a second name of the file known as `first`.
inline journal::Record link_record(const std::string& first, const std::string& target, const std::string& handle) {
    journal::Record r;
    r.op = journal::Op::link;
    r.path = first;
    r.target = target;
    r.handle = to_file_handle(handle);
    return r;
}

// The whole content of `e` (a write without ranges), for an entry that
// appears with content no write event describes.
inline journal::Record whole_content_record(const std::string& path, const Entry& e) {
    journal::Record w;
    w.op = journal::Op::write;
    w.path = path;
    w.handle = to_file_handle(e.handle);
    w.size = e.size;
    w.mtime_ns = e.mtime_ns;
    return w;
}

}  // namespace iz::agent::capture_detail
