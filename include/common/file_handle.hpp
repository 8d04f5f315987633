#pragma once
// A kernel file handle (name_to_handle_at / fanotify FID): the identity of
// a file that survives renames. One type for every component: the agent
// keys its maps with it, the journal records it, the shipper reopens files
// through it and the server tells entries apart with it.
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace iz {

struct FileHandle {
    int32_t type = 0;   // handle_type
    std::string bytes;  // f_handle, handle_bytes long

    bool empty() const { return bytes.empty(); }

    // The key form: the 4 bytes of `type` in host order, then `bytes`; ""
    // for an empty handle. It is what the agent's saved tree state holds for
    // each entry (so it must not change); from_key() of anything shorter
    // than 4 bytes is empty.
    std::string key() const;
    static FileHandle from_key(std::string_view key);

    friend bool operator==(const FileHandle&, const FileHandle&) = default;
    friend auto operator<=>(const FileHandle&, const FileHandle&) = default;
};

// The handle of the entry `name` in `dirfd`, never following a final
// symlink ("" names `dirfd` itself). Errors carry the errno (ENOENT,
// EOPNOTSUPP on a filesystem without handles); `path` names the entry in
// the message.
Result<FileHandle> handle_of(int dirfd, const std::string& name, std::string_view path);
inline Result<FileHandle> handle_of(int dirfd, const std::string& name) { return handle_of(dirfd, name, name); }

// open_by_handle_at relative to any descriptor on the filesystem (it must
// not be O_PATH). Returns the new descriptor, or -1 with errno set like the
// syscall's (ESTALE also for a handle too short or too long to be one).
int open_by_handle(int mount_fd, const FileHandle& handle, int flags);

// The inode number a handle names, for the layouts that put it there
// plainly: ext4's and XFS's 32-bit form (inode, generation) and XFS's 64-bit
// form (inode, generation, packed). Others (tmpfs, btrfs, ...) give
// nullopt: ask the kernel for the handle instead.
std::optional<uint64_t> inode_of_handle(const FileHandle& handle);

}  // namespace iz

template <>
struct std::hash<iz::FileHandle> {
    size_t operator()(const iz::FileHandle& h) const noexcept {
        return std::hash<std::string_view>{}(h.bytes) ^ (static_cast<size_t>(static_cast<uint32_t>(h.type)) * 0x9e3779b97f4a7c15ull);
    }
};
