#pragma once
// Going to the background with a readiness handshake: the parent process
// waits until the daemon says it is serving (the parent exits 0) or why it
// could not (the parent prints "<program>: <why>" on stderr and exits 1).
// A daemon that ends before saying either makes the parent print the
// options' exited_early and exit 1. Call before any thread is started.
#include <filesystem>
#include <string>
#include <string_view>

#include "common/unique_fd.hpp"

namespace iz {

class Readiness {
public:
    // In the foreground: both calls do nothing.
    Readiness() = default;
    explicit Readiness(UniqueFd fd) : fd_(std::move(fd)) {}
    // Tell the waiting parent, once; later calls do nothing.
    void ready();
    void failed(std::string_view message);

private:
    UniqueFd fd_;
};

struct DaemonOptions {
    std::string program;        // begins the parent's messages: "izwatch"
    std::filesystem::path log;  // the daemon's stdout and stderr, appended; empty (or unopenable): /dev/null
    std::string exited_early;   // the parent's message when the daemon ends without a verdict
};

// Forks; returns only in the daemon (a new session, not its leader, stdin
// on /dev/null, stdout and stderr on the log, cwd /). The parent exits with
// the daemon's verdict; when the pipe or the first fork fails, it prints
// "<program>: pipe: <errno text>" (or fork) and exits 1.
Readiness daemonize(const DaemonOptions& options);

}  // namespace iz
