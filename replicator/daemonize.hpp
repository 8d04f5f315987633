#pragma once
// Going to the background with a readiness handshake: the parent process
// waits until the child says it is serving (exit 0) or why it could not
// (the message on stderr, exit 1). Call before any thread is started.
#include <string>

namespace iz::replicator {

class Readiness {
public:
    explicit Readiness(int fd = -1) : fd_(fd) {}
    // Tells the waiting parent; both are no-ops in the foreground.
    void ready();
    void failed(const std::string& message);

private:
    int fd_;
};

// Forks; returns only in the child (a new session, stdin/stdout/stderr on
// /dev/null, cwd /). The parent exits with the child's verdict.
Readiness daemonize();

}  // namespace iz::replicator
