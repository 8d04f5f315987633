#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>

extern char** environ;

namespace iz::test {

std::filesystem::path bin_path(const std::string& program) {
    return std::filesystem::path(IZ_BIN_DIR) / program;
}

namespace {

std::vector<char*> to_argv(const std::vector<std::string>& args) {
    std::vector<char*> out;
    for (auto& a : args) out.push_back(const_cast<char*>(a.c_str()));
    out.push_back(nullptr);
    return out;
}

// The parent's environment plus `extra` (which wins on equal names).
std::vector<std::string> merged_env(const std::vector<std::string>& extra) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        std::string entry(*e);
        auto name = entry.substr(0, entry.find('='));
        bool overridden = false;
        for (auto& x : extra)
            if (x.substr(0, x.find('=')) == name) overridden = true;
        if (!overridden) env.push_back(entry);
    }
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
}

// A child starts with no signal blocked, whatever the thread that forks it
// blocks (a benchmark blocks the stop signals for a thread that waits for
// them; a program started with SIGTERM blocked could not be stopped).
void unblock_signals() {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
}

int decode_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
                          std::chrono::seconds timeout, const std::string& stdin_data) {
    ProcessResult result;
    int out_pipe[2], err_pipe[2], in_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC) || pipe2(in_pipe, O_CLOEXEC)) {
        result.err = std::string("pipe: ") + std::strerror(errno);
        return result;
    }
    auto env = merged_env(extra_env);
    auto cargv = to_argv(argv);
    auto cenv = to_argv(env);
    pid_t pid = fork();
    if (pid == 0) {
        unblock_signals();
        dup2(in_pipe[0], 0);
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        execvpe(cargv[0], cargv.data(), cenv.data());
        dprintf(2, "exec %s: %s\n", cargv[0], std::strerror(errno));
        _exit(127);
    }
    close(in_pipe[0]);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (!stdin_data.empty()) {
        size_t off = 0;
        while (off < stdin_data.size()) {
            ssize_t n = write(in_pipe[1], stdin_data.data() + off, stdin_data.size() - off);
            if (n <= 0) break;
            off += static_cast<size_t>(n);
        }
    }
    close(in_pipe[1]);

    auto deadline = std::chrono::steady_clock::now() + timeout;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[65536];
    bool killed = false;
    while (open_fds > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            kill(pid, SIGKILL);
            killed = true;
            break;
        }
        int n = poll(fds, 2, static_cast<int>(left.count()));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t got = read(fds[i].fd, buf, sizeof buf);
            if (got <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            } else {
                (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(got));
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0) close(f.fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = decode_status(status);
    if (killed) result.err += "\n[killed after timeout]";
    return result;
}

bool process_exited(pid_t pid) {
    if (::kill(pid, 0) != 0) return errno == ESRCH;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    // "pid (comm) state ...": the comm may hold spaces and parentheses.
    auto close = line.rfind(')');
    if (close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z') return false;
    // A zombie leader whose other threads (io_uring workers among them)
    // still run has not closed its files yet.
    std::error_code ec;
    size_t threads = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++threads;
    return threads <= 1;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& out_file,
                           const std::filesystem::path& err_file, const std::vector<std::string>& extra_env) {
    auto env = merged_env(extra_env);
    auto cargv = to_argv(argv);
    auto cenv = to_argv(env);
    pid_ = fork();
    if (pid_ == 0) {
        unblock_signals();
        // Its own process group, so a kill reaches whatever it spawned.
        setpgid(0, 0);
        if (!out_file.empty()) {
            int fd = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) dup2(fd, 1);
        }
        if (!err_file.empty()) {
            int fd = open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) dup2(fd, 2);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        execvpe(cargv[0], cargv.data(), cenv.data());
        dprintf(2, "exec %s: %s\n", cargv[0], std::strerror(errno));
        _exit(127);
    }
}

ChildProcess::~ChildProcess() { kill_and_reap(); }

bool ChildProcess::running() {
    if (pid_ <= 0 || reaped_) return false;
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        reaped_ = true;
        status_ = decode_status(status);
        return false;
    }
    return true;
}

void ChildProcess::signal(int sig) {
    if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

int ChildProcess::wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline) return -1;
        struct timespec ts{0, 5'000'000};
        nanosleep(&ts, nullptr);
    }
    return status_;
}

void ChildProcess::kill_and_reap() {
    if (pid_ <= 0 || reaped_) return;
    ::kill(-pid_, SIGTERM);
    ::kill(pid_, SIGTERM);
    if (wait(std::chrono::milliseconds(3000)) == -1) {
        ::kill(-pid_, SIGKILL);
        ::kill(pid_, SIGKILL);
        int status = 0;
        waitpid(pid_, &status, 0);
        reaped_ = true;
        status_ = decode_status(status);
    }
}

}  // namespace iz::test
