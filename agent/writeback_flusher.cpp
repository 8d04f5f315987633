#include "writeback_flusher.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace iz::agent {

Result<std::unique_ptr<WritebackFlusher>> WritebackFlusher::start(int fs_fd, std::string path) {
    int dup = ::fcntl(fs_fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return fail(sys_error("duplicate the descriptor of the watched directory", path, errno));
    int ev = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ev < 0) {
        int err = errno;
        ::close(dup);
        return fail(sys_error("create eventfd for writeback flushes", path, err));
    }
    return std::unique_ptr<WritebackFlusher>(new WritebackFlusher(dup, ev, std::move(path)));
}

WritebackFlusher::WritebackFlusher(int fs_fd, int event_fd, std::string path)
    : fs_fd_(fs_fd), event_fd_(event_fd), path_(std::move(path)), thread_([this] { run(); }) {}

WritebackFlusher::~WritebackFlusher() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    // A syncfs under way is waited for: it cannot be interrupted.
    thread_.join();
    ::close(event_fd_);
    ::close(fs_fd_);
}

uint64_t WritebackFlusher::request() {
    uint64_t ticket;
    {
        std::lock_guard lock(mu_);
        ticket = ++requested_;
    }
    cv_.notify_all();
    return ticket;
}

WritebackFlusher::Done WritebackFlusher::take() {
    uint64_t n = 0;
    while (::read(event_fd_, &n, sizeof n) == static_cast<ssize_t>(sizeof n)) {
    }
    std::lock_guard lock(mu_);
    return {done_, failure_};
}

void WritebackFlusher::run() {
    std::unique_lock lock(mu_);
    for (;;) {
        cv_.wait(lock, [&] { return stopping_ || requested_ > done_; });
        if (stopping_) return;
        // Every ticket handed out so far is covered by a flush that begins now.
        uint64_t covers = requested_;
        lock.unlock();
        int rc = ::syncfs(fs_fd_);
        int err = errno;
        lock.lock();
        done_ = covers;
        failure_.reset();
        if (rc != 0) failure_ = sys_error("write back the watched filesystem (syncfs)", path_, err);
        uint64_t one = 1;
        // EAGAIN only when the counter is saturated: the reader wakes anyway.
        (void)!::write(event_fd_, &one, sizeof one);
    }
}

}  // namespace iz::agent
