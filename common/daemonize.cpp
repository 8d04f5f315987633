#include "common/daemonize.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace iz {

// The protocol on the pipe: "\n" when ready, "!" and the message when not.
// Both ends are this file, in one program.
void Readiness::ready() {
    if (!fd_.valid()) return;
    (void)!::write(fd_.get(), "\n", 1);
    fd_.reset();
}

void Readiness::failed(std::string_view message) {
    if (!fd_.valid()) return;
    std::string text = "!";
    text += message;
    (void)!::write(fd_.get(), text.data(), text.size());
    fd_.reset();
}

namespace {

[[noreturn]] void parent_fails(const DaemonOptions& o, const char* what) {
    std::fprintf(stderr, "%s: %s: %s\n", o.program.c_str(), what, std::strerror(errno));
    std::exit(1);
}

// The parent's side: the daemon's verdict becomes this process's exit.
[[noreturn]] void wait_for_verdict(const DaemonOptions& o, UniqueFd from) {
    std::string msg;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(from.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0) msg.append(buf, static_cast<size_t>(n));
    if (!msg.empty() && msg[0] == '\n') std::_Exit(0);
    if (!msg.empty() && msg[0] == '!') {
        msg.erase(0, 1);
        while (!msg.empty() && msg.back() == '\n') msg.pop_back();
        std::fprintf(stderr, "%s: %s\n", o.program.c_str(), msg.c_str());
    } else {
        std::fprintf(stderr, "%s: %s\n", o.program.c_str(), o.exited_early.c_str());
    }
    std::_Exit(1);
}

}  // namespace

Readiness daemonize(const DaemonOptions& o) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) parent_fails(o, "pipe");
    UniqueFd from(p[0]), to(p[1]);
    // What is buffered would otherwise be written by both processes.
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) parent_fails(o, "fork");
    if (pid > 0) {
        to.reset();
        wait_for_verdict(o, std::move(from));
    }
    from.reset();
    Readiness readiness(std::move(to));
    ::setsid();
    // A second fork: the daemon is not a session leader, so it can never
    // acquire a controlling terminal.
    pid_t again = ::fork();
    if (again < 0) {
        readiness.failed(std::string("fork: ") + std::strerror(errno));
        std::_Exit(1);
    }
    if (again > 0) std::_Exit(0);
    (void)!::chdir("/");
    UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
    UniqueFd log_fd;
    if (!o.log.empty()) log_fd.reset(::open(o.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    int out = log_fd.valid() ? log_fd.get() : null_fd.get();
    if (null_fd.valid()) ::dup2(null_fd.get(), 0);
    if (out >= 0) {
        ::dup2(out, 1);
        ::dup2(out, 2);
    }
    // Opened onto a standard descriptor (one was closed): it is that one now.
    if (null_fd.get() <= 2) null_fd.release();
    if (log_fd.get() <= 2) log_fd.release();
    return readiness;
}

}  // namespace iz
