#include "common/file_handle.hpp"

#include <fcntl.h>

#include <cerrno>
#include <cstring>

namespace iz {

std::string FileHandle::key() const {
    if (empty()) return {};
    std::string k(reinterpret_cast<const char*>(&type), sizeof type);
    k += bytes;
    return k;
}

FileHandle FileHandle::from_key(std::string_view key) {
    FileHandle h;
    if (key.size() < sizeof h.type) return h;
    std::memcpy(&h.type, key.data(), sizeof h.type);
    h.bytes = key.substr(sizeof h.type);
    return h;
}

Result<FileHandle> handle_of(int dirfd, const std::string& name, std::string_view path) {
    union {
        file_handle fh;
        char buf[sizeof(file_handle) + MAX_HANDLE_SZ];
    } u{};
    u.fh.handle_bytes = MAX_HANDLE_SZ;
    int mount_id = 0;
    // Without AT_SYMLINK_FOLLOW: a symlink is named as itself.
    if (::name_to_handle_at(dirfd, name.c_str(), &u.fh, &mount_id, name.empty() ? AT_EMPTY_PATH : 0) != 0)
        return fail(sys_error("name_to_handle_at", path, errno));
    return FileHandle{u.fh.handle_type, std::string(reinterpret_cast<const char*>(u.fh.f_handle), u.fh.handle_bytes)};
}

int open_by_handle(int mount_fd, const FileHandle& handle, int flags) {
    if (handle.bytes.empty() || handle.bytes.size() > MAX_HANDLE_SZ) {
        errno = ESTALE;
        return -1;
    }
    union {
        file_handle fh;
        char buf[sizeof(file_handle) + MAX_HANDLE_SZ];
    } u{};
    u.fh.handle_type = handle.type;
    u.fh.handle_bytes = static_cast<unsigned>(handle.bytes.size());
    std::memcpy(u.fh.f_handle, handle.bytes.data(), handle.bytes.size());
    return ::open_by_handle_at(mount_fd, &u.fh, flags);
}

std::optional<uint64_t> inode_of_handle(const FileHandle& handle) {
    size_t len = handle.bytes.size();
    const char* b = handle.bytes.data();
    if ((handle.type == 1 && len == 8) || (handle.type == 2 && len == 16)) {  // FILEID_INO32_GEN(_PARENT)
        uint32_t ino = 0;
        std::memcpy(&ino, b, 4);
        return ino;
    }
    if ((handle.type == 0x81 && len == 12) || (handle.type == 0x82 && len == 24)) {  // XFS, 64-bit inode numbers
        uint64_t ino = 0;
        std::memcpy(&ino, b, 8);
        return ino;
    }
    return std::nullopt;
}

}  // namespace iz
