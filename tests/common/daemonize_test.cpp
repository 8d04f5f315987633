// The handshake of going to the background, seen from the process that
// started the program: its exit code and what it printed on stderr.
#include "common/daemonize.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;

namespace {

struct Outcome {
    int exit_code = -1;
    std::string err;
};

// Runs daemonize() in a child, then `daemon` in the daemon it makes.
Outcome start(const iz::DaemonOptions& options, const std::function<void(iz::Readiness&)>& daemon) {
    int err[2];
    EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(err[1], 2);
        auto readiness = iz::daemonize(options);
        daemon(readiness);
        std::_Exit(0);
    }
    ::close(err[1]);
    Outcome o;
    char buf[512];
    ssize_t n;
    // The daemon writes nothing to this pipe: its stderr is the log. The
    // read ends when the starting process exits.
    while ((n = ::read(err[0], buf, sizeof buf)) > 0) o.err.append(buf, static_cast<size_t>(n));
    ::close(err[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return o;
}

std::string slurp_when(const fs::path& p, const std::string& until) {
    std::string text;
    for (int i = 0; i < 500; ++i) {
        std::ifstream in(p);
        std::stringstream ss;
        ss << in.rdbuf();
        text = ss.str();
        if (text.find(until) != std::string::npos) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return text;
}

}  // namespace

TEST(Daemonize, ReadyMakesTheStartExitZeroAndSayNothing) {
    auto o = start({.program = "prog", .log = {}, .exited_early = "gone"}, [](iz::Readiness& r) { r.ready(); });
    EXPECT_EQ(o.exit_code, 0);
    EXPECT_EQ(o.err, "");
}

TEST(Daemonize, AFailureIsPrintedByTheStartWhichExitsOne) {
    auto o = start({.program = "prog", .log = {}, .exited_early = "gone"},
                   [](iz::Readiness& r) { r.failed("cannot watch '/x': No such file or directory"); });
    EXPECT_EQ(o.exit_code, 1);
    EXPECT_EQ(o.err, "prog: cannot watch '/x': No such file or directory\n");
}

TEST(Daemonize, ADaemonThatEndsWithoutAVerdictMakesTheStartSaySo) {
    auto o = start({.program = "prog", .log = {}, .exited_early = "the daemon exited before it was ready"},
                   [](iz::Readiness&) { std::_Exit(3); });
    EXPECT_EQ(o.exit_code, 1);
    EXPECT_EQ(o.err, "prog: the daemon exited before it was ready\n");
}

// Only the first verdict counts.
TEST(Daemonize, AVerdictIsGivenOnce) {
    auto o = start({.program = "prog", .log = {}, .exited_early = "gone"}, [](iz::Readiness& r) {
        r.ready();
        r.failed("too late");
    });
    EXPECT_EQ(o.exit_code, 0);
    EXPECT_EQ(o.err, "");
}

// The daemon runs from "/", its output appended to the log.
TEST(Daemonize, TheDaemonsOutputGoesToTheLog) {
    auto dir = fs::temp_directory_path() / ("iz-daemonize-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    auto log = dir / "prog.log";
    std::ofstream(log) << "before\n";
    auto o = start({.program = "prog", .log = log, .exited_early = "gone"}, [](iz::Readiness& r) {
        r.ready();
        std::fprintf(stdout, "cwd %s\n", fs::current_path().c_str());
        std::fflush(stdout);
        std::fprintf(stderr, "to stderr\n");
        std::fflush(nullptr);
    });
    EXPECT_EQ(o.exit_code, 0);
    EXPECT_EQ(o.err, "");
    EXPECT_EQ(slurp_when(log, "to stderr\n"), "before\ncwd /\nto stderr\n");
    fs::remove_all(dir);
}
