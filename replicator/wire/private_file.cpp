#include "private_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/durable_file.hpp"

namespace iz::replicator {

Status write_private_file(const std::filesystem::path& path, const std::string& text, std::string_view what) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return fail(sys_error(fmt::format("create {}", what), path.string(), errno));
    // The umask may only have taken bits away; make the mode exact.
    bool ok = ::fchmod(fd, 0600) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
              ::fsync(fd) == 0;
    int err = errno;
    ::close(fd);
    if (!ok) {
        ::unlink(path.c_str());
        return fail(sys_error(fmt::format("write {}", what), path.string(), err));
    }
    auto dir = path.parent_path();
    if (auto synced = fsync_dir(dir.empty() ? std::filesystem::path(".") : dir); !synced) {
        ::unlink(path.c_str());
        return synced;
    }
    return {};
}

}  // namespace iz::replicator
