#include "common/durable_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common/unique_fd.hpp"

namespace iz {

namespace {

durable_seam::FsyncFn fsync_fn = ::fsync;

}  // namespace

durable_seam::FsyncFn durable_seam::set_fsync(FsyncFn fn) {
    auto previous = fsync_fn;
    fsync_fn = fn ? fn : ::fsync;
    return previous;
}

Status fsync_dir(const std::filesystem::path& dir) {
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return fail(sys_error("open directory to fsync", dir.string(), errno));
    if (fsync_fn(fd.get()) != 0) return fail(sys_error("fsync directory", dir.string(), errno));
    return {};
}

Status write_file_durably(const std::filesystem::path& path, std::string_view content, mode_t mode) {
    auto temp = path;
    temp += ".tmp";
    return write_file_durably(path, content, mode, temp);
}

Status write_file_durably(const std::filesystem::path& path, std::string_view content, mode_t mode,
                          const std::filesystem::path& temp) {
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd.valid()) return fail(sys_error("create", temp.string(), errno));
    size_t off = 0;
    while (off < content.size()) {
        ssize_t n = ::write(fd.get(), content.data() + off, content.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(sys_error("write", temp.string(), errno));
        off += static_cast<size_t>(n);
    }
    if (fsync_fn(fd.get()) != 0) return fail(sys_error("fsync", temp.string(), errno));
    fd.reset();
    if (::rename(temp.c_str(), path.c_str()) != 0)
        return fail(sys_error("rename into place", path.string(), errno));
    auto dir = path.parent_path();
    return fsync_dir(dir.empty() ? std::filesystem::path(".") : dir);
}

}  // namespace iz
