#include "open_writers.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace iz::agent {

Result<bool> open_for_writing(const std::filesystem::path& path) {
    // Only a regular file is opened: opening a device or a fifo can have
    // effects of its own.
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return false;
        return fail(sys_error("stat (to see whether it is open for writing)", path.string(), errno));
    }
    if (!S_ISREG(st.st_mode)) return false;
    // Read-only: a descriptor of our own open for writing would refuse the lease.
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ELOOP) return false;  // gone or replaced by a symlink meanwhile
        return fail(sys_error("open (to see whether it is open for writing)", path.string(), errno));
    }
    Result<bool> out = false;
    if (::fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
        out = false;
    } else if (::fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
        ::fcntl(fd, F_SETLEASE, F_UNLCK);  // closing would let it go as well
        out = false;
    } else if (errno == EAGAIN) {
        out = true;
    } else {
        out = fail(sys_error("take a read lease (to see whether it is open for writing)", path.string(), errno));
    }
    ::close(fd);
    return out;
}

void block_lease_signal() {
    sigset_t io;
    sigemptyset(&io);
    sigaddset(&io, SIGIO);
    pthread_sigmask(SIG_BLOCK, &io, nullptr);
}

}  // namespace iz::agent
