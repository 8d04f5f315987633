#include "common/file_handle.hpp"

#include <fcntl.h>

#include <cerrno>
#include <cstring>

namespace iz {

int open_by_handle(int mount_fd, int32_t type, std::string_view bytes, int flags) {
    if (bytes.empty() || bytes.size() > MAX_HANDLE_SZ) {
        errno = ESTALE;
        return -1;
    }
    union {
        file_handle fh;
        char buf[sizeof(file_handle) + MAX_HANDLE_SZ];
    } u{};
    u.fh.handle_type = type;
    u.fh.handle_bytes = static_cast<unsigned>(bytes.size());
    std::memcpy(u.fh.f_handle, bytes.data(), bytes.size());
    return ::open_by_handle_at(mount_fd, &u.fh, flags);
}

}  // namespace iz
