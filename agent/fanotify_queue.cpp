#include "fanotify_queue.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <string>

#include "common/unique_fd.hpp"

namespace iz::agent {

namespace {

constexpr const char* kSysctl = "/proc/sys/fs/fanotify/max_queued_events";

std::optional<uint32_t> read_value(int fd) {
    char buf[32];
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return std::nullopt;
    uint32_t v = 0;
    auto [end, ec] = std::from_chars(buf, buf + n, v);
    if (ec != std::errc()) return std::nullopt;
    return v;
}

bool write_value(int fd, uint32_t v) {
    auto text = std::to_string(v);
    return ::pwrite(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size());
}

}  // namespace

QueueLength with_queue_length(uint32_t wanted, const std::function<int()>& init) {
    QueueLength out;
    UniqueFd fd(::open(kSysctl, O_RDWR | O_CLOEXEC));
    if (!fd.valid()) {
        // No such sysctl (a kernel before 5.13), or /proc/sys read-only (a
        // container): the group gets what the system gives.
        if (wanted) out.note = fmt::format("cannot raise {}: {}", kSysctl, std::strerror(errno));
        out.fd = init();
        if (UniqueFd ro(::open(kSysctl, O_RDONLY | O_CLOEXEC)); ro.valid()) out.events = read_value(ro.get()).value_or(0);
        return out;
    }
    ::flock(fd.get(), LOCK_EX);
    auto before = read_value(fd.get());
    bool raised = false;
    if (wanted && before && *before != wanted) {
        raised = write_value(fd.get(), wanted);
        if (!raised) out.note = fmt::format("cannot raise {}: {}", kSysctl, std::strerror(errno));
    }
    out.fd = init();
    int init_errno = errno;
    if (raised && !write_value(fd.get(), *before))
        out.note = fmt::format("could not put {} back to {}: {}", kSysctl, *before, std::strerror(errno));
    out.events = raised ? wanted : before.value_or(0);
    ::flock(fd.get(), LOCK_UN);
    fd.reset();
    errno = init_errno;
    return out;
}

}  // namespace iz::agent
