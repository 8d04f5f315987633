#include "daemonize.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace iz::replicator {

void Readiness::ready() {
    if (fd_ < 0) return;
    (void)!::write(fd_, "\n", 1);
    ::close(fd_);
    fd_ = -1;
}

void Readiness::failed(const std::string& message) {
    if (fd_ < 0) return;
    std::string text = "!" + message;
    (void)!::write(fd_, text.data(), text.size());
    ::close(fd_);
    fd_ = -1;
}

Readiness daemonize() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        std::fprintf(stderr, "izreplicate: pipe: %s\n", std::strerror(errno));
        std::exit(1);
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        std::fprintf(stderr, "izreplicate: fork: %s\n", std::strerror(errno));
        std::exit(1);
    }
    if (pid > 0) {
        ::close(p[1]);
        std::string msg;
        char buf[4096];
        ssize_t n;
        while ((n = ::read(p[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
            if (n > 0) msg.append(buf, static_cast<size_t>(n));
        if (!msg.empty() && msg[0] == '\n') std::_Exit(0);
        if (!msg.empty() && msg[0] == '!') std::fprintf(stderr, "izreplicate: %s\n", msg.c_str() + 1);
        else std::fprintf(stderr, "izreplicate: the server exited before it was ready\n");
        std::_Exit(1);
    }
    ::close(p[0]);
    ::setsid();
    // A second fork: the daemon is not a session leader, so it can never
    // acquire a controlling terminal.
    pid_t again = ::fork();
    if (again < 0) std::_Exit(1);
    if (again > 0) std::_Exit(0);
    (void)!::chdir("/");
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        ::dup2(devnull, 0);
        ::dup2(devnull, 1);
        ::dup2(devnull, 2);
        if (devnull > 2) ::close(devnull);
    }
    return Readiness(p[1]);
}

}  // namespace iz::replicator
