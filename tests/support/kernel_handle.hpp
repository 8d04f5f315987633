#pragma once
// The handle the kernel gives for a name, asked directly with
// name_to_handle_at: an oracle for tests of common/file_handle.hpp and of
// what is built on it, so it shares none of their code.
#include <fcntl.h>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "common/file_handle.hpp"

namespace iz::test {

// nullopt when the kernel refuses (errno says why). Asked as
// name_to_handle_at(2) shows, the size first, into a buffer of that size:
// common/file_handle.cpp passes the largest buffer at once.
inline std::optional<FileHandle> kernel_handle(int dirfd, const char* name, int flags = 0) {
    file_handle probe{};
    int mount_id = 0;
    // With no room (handle_bytes 0) the kernel fails with EOVERFLOW and
    // says how many bytes the handle takes.
    if (::name_to_handle_at(dirfd, name, &probe, &mount_id, flags) == 0 || errno != EOVERFLOW) return std::nullopt;
    std::vector<char> buf(sizeof(file_handle) + probe.handle_bytes);
    auto* fh = reinterpret_cast<file_handle*>(buf.data());
    fh->handle_bytes = probe.handle_bytes;
    if (::name_to_handle_at(dirfd, name, fh, &mount_id, flags) != 0) return std::nullopt;
    return FileHandle{fh->handle_type, std::string(reinterpret_cast<const char*>(fh->f_handle), fh->handle_bytes)};
}

}  // namespace iz::test
