#pragma once
// Running the project's real binaries from tests.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace iz::test {

// Path of a program built into the build's bin/ directory.
std::filesystem::path bin_path(const std::string& program);

struct ProcessResult {
    int exit_code = -1;  // 128+signal when killed by a signal
    std::string out;
    std::string err;
};

// Runs argv to completion (killed after `timeout`), capturing stdout and
// stderr. `extra_env` entries are "NAME=value", added to the environment.
ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::string>& extra_env = {},
                          std::chrono::seconds timeout = std::chrono::seconds(60),
                          const std::string& stdin_data = "");

// A child left running (a daemon in the foreground, a follower). The
// destructor kills it (SIGTERM, then SIGKILL) and reaps it.
class ChildProcess {
public:
    // stdout/stderr go to the given files ("" keeps the test's own).
    ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& out_file = "",
                 const std::filesystem::path& err_file = "",
                 const std::vector<std::string>& extra_env = {});
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    bool running();
    void signal(int sig);
    // Waits for exit; returns the exit code (128+signal), -1 on timeout.
    int wait(std::chrono::milliseconds timeout);
    void kill_and_reap();

private:
    pid_t pid_ = -1;
    int status_ = -1;
    bool reaped_ = false;
};

// True once `pid` has exited and none of its threads is left: gone, or a
// zombie that only waits to be collected. Its files are closed by then;
// waiting for the collection itself can take seconds when the reaper is an
// init that reaps seldom (an orphaned daemon's is).
bool process_exited(pid_t pid);

// Polls `cond` every 10 ms until it is true or `timeout` passes.
template <class Cond>
bool eventually(Cond cond, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (cond()) return true;
        struct timespec ts{0, 10'000'000};
        nanosleep(&ts, nullptr);
    }
    return cond();
}

}  // namespace iz::test
