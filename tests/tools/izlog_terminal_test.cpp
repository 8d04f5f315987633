// izlog on a terminal: colour by op and a pager, as journalctl does; neither
// when asked not to.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>

#include "izlog_fixture.hpp"

using iz::test::izlog::Izlog;

namespace {

struct TerminalRun {
    int exit_code = -1;
    std::string out;  // what the terminal showed (the tty turns \n into \r\n)
};

// Runs izlog with its stdout on a pseudo-terminal and `env` as its whole
// environment.
TerminalRun run_on_terminal(const std::vector<std::string>& args, const std::vector<std::string>& env) {
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    int master = -1;
    pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
    if (pid < 0) return {};
    if (pid == 0) {
        execve(argv[0], argv.data(), envp.data());
        _exit(127);
    }
    TerminalRun run;
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{master, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) {
            if (waitpid(pid, &status, WNOHANG) == pid) {  // gone, and nothing left to read
                pid = -1;
                break;
            }
            continue;
        }
        ssize_t n = read(master, buf, sizeof buf);
        if (n <= 0) break;  // EIO once every holder of the terminal has gone
        run.out.append(buf, static_cast<size_t>(n));
    }
    if (pid > 0) {
        // Normally it has exited by now; a hung one is killed, not waited for.
        if (waitpid(pid, &status, WNOHANG) != pid) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
    }
    close(master);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return run;
}

}  // namespace

TEST_F(Izlog, ColourAndPagerOnATerminal) {
    std::vector<std::string> base = {iz::test::bin_path("izlog").string(), "-D", dir.string(), "-o", "cat", "-n", "1"};
    std::vector<std::string> env = {"TZ=UTC", "PATH=/usr/bin:/bin"};

    // The pager gets the coloured output: here one that upper-cases it.
    auto env_pager = env;
    env_pager.push_back("SYSTEMD_PAGER=tr a-z A-Z");
    auto paged = run_on_terminal(base, env_pager);
    EXPECT_EQ(paged.out, "\033[31MUNLINK\033[0M LATEST\r\n");
    EXPECT_EQ(paged.exit_code, 0);
    env_pager.back() = "PAGER=tr a-z A-Z";
    EXPECT_EQ(run_on_terminal(base, env_pager).out, "\033[31MUNLINK\033[0M LATEST\r\n");

    auto no_pager = base;
    no_pager.push_back("--no-pager");
    auto env_both = env;
    env_both.push_back("PAGER=tr a-z A-Z");
    EXPECT_EQ(run_on_terminal(no_pager, env_both).out, "\033[31munlink\033[0m latest\r\n");

    auto no_color = no_pager;
    no_color.push_back("--no-color");
    EXPECT_EQ(run_on_terminal(no_color, env).out, "unlink latest\r\n");
    auto env_no_color = env;
    env_no_color.push_back("NO_COLOR=1");
    EXPECT_EQ(run_on_terminal(no_pager, env_no_color).out, "unlink latest\r\n");
}
