#pragma once
// The handle the kernel gives for a name, asked directly with
// name_to_handle_at: an oracle for tests of common/file_handle.hpp and of
// what is built on it, so it shares none of their code.
#include <fcntl.h>

#include <optional>
#include <string>

#include "common/file_handle.hpp"

namespace iz::test {

// nullopt when the kernel refuses (errno says why).
inline std::optional<FileHandle> kernel_handle(int dirfd, const char* name, int flags = 0) {
    union {
        file_handle fh;
        char buf[sizeof(file_handle) + MAX_HANDLE_SZ];
    } u{};
    u.fh.handle_bytes = MAX_HANDLE_SZ;
    int mount_id = 0;
    if (::name_to_handle_at(dirfd, name, &u.fh, &mount_id, flags) != 0) return std::nullopt;
    return FileHandle{u.fh.handle_type, std::string(reinterpret_cast<const char*>(u.fh.f_handle), u.fh.handle_bytes)};
}

}  // namespace iz::test
