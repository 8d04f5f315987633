#include "durable_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace iz::replicator {

Status fsync_dir(const std::filesystem::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail(sys_error("open directory to fsync", dir.string(), errno));
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return fail(sys_error("fsync directory", dir.string(), err));
    return {};
}

Status write_file_durably(const std::filesystem::path& path, std::string_view content, mode_t mode) {
    auto tmp = path;
    tmp += ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) return fail(sys_error("create", tmp.string(), errno));
    size_t off = 0;
    while (off < content.size()) {
        ssize_t n = ::write(fd, content.data() + off, content.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            return fail(sys_error("write", tmp.string(), err));
        }
        off += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
        int err = errno;
        ::close(fd);
        return fail(sys_error("fsync", tmp.string(), err));
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(sys_error("rename into place", path.string(), errno));
    return fsync_dir(path.parent_path());
}

}  // namespace iz::replicator
