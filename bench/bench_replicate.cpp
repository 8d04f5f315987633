// What replication costs against rsync, in the same run, over 127.0.0.1.
//
// Two source trees start each workload in the same state, each on its own
// loop-mounted ext4 image in /dev/shm: one watched by izwatch, shipping to
// an izreplicate whose root is a third image; the other left alone and
// copied by `rsync -a --delete` to an rsync daemon whose module is a fourth
// image. Every workload runs once on each source, and the whole sequence
// runs five times (medians). Intermezzo is timed from the workload's start
// until `izwatch sync` (run right after it) returns; rsync from the
// workload's start until one rsync after it returns (its replica was
// brought up to date, untimed, before the workload). Both replicas are then
// compared with their sources: path, type, mode, owner, mtime, size,
// content hash and symlink target.
//
// While `izwatch sync` waits, a thread at SCHED_IDLE priority (so that it
// takes no CPU from the agent or the server) polls the intermezzo replica
// until it matches the source: the convergence latency.
//
// IZ_BENCH_METRICS=1 runs every repetition twice, once with both daemons
// started with --metrics and scraped every second (metrics_scraper.hpp),
// once without (in alternating order), and prints both figures.
//
// IZ_BENCH_TLS_COMPARE=1 runs every repetition twice too, once over TLS (the
// product) and once with the frames over plain TCP after the handshake
// (izwatch-plaintext-bench and izreplicate-plaintext-bench, test-only twins
// built with -DIZ_BENCH_PLAINTEXT=ON), in alternating order, and prints both
// medians, their ratio and the bytes on the wire of each; then one 1 GiB
// file replicated each way (twice, ABBA), in MB/s.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_images.hpp"
#include "metrics_scraper.hpp"

#include "support/process.hpp"
#include "support/scratch_fs.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double secs_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// ---- child processes -------------------------------------------------------

// Every child still running, so that cleanup can end them (by pid) on
// failure or a signal.
std::mutex g_children_mu;
std::set<pid_t> g_children;
sigset_t g_stop_signals;

// Starts argv[0] (searched in PATH) with stdout and stderr going to `log`.
pid_t spawn(const std::vector<std::string>& argv, const fs::path& log) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::lock_guard lock(g_children_mu);
    pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        // The benchmark blocks the stop signals for its signal thread;
        // children must get them as usual, and end with the benchmark
        // even when it is killed outright.
        ::sigprocmask(SIG_UNBLOCK, &g_stop_signals, nullptr);
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        ::execvp(args[0], args.data());
        _exit(127);
    }
    g_children.insert(pid);
    return pid;
}

void forget_child(pid_t pid) {
    std::lock_guard lock(g_children_mu);
    g_children.erase(pid);
}

// Exit status (or 128+signal); `ru` gets the child's resource usage.
int wait_child(pid_t pid, struct rusage* ru = nullptr) {
    int status = 0;
    struct rusage local{};
    while (::wait4(pid, &status, 0, ru ? ru : &local) < 0 && errno == EINTR) {
    }
    forget_child(pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

fs::path g_log = "/dev/null";  // where commands' output goes (in the temp dir)

// Runs argv (searched in PATH) to its end, its output into the log.
int run(const std::vector<std::string>& argv) {
    auto r = iz::test::run_process(argv, {}, std::chrono::hours(1));
    std::ofstream(g_log, std::ios::app) << r.out << r.err;
    return r.exit_code;
}

// Runs argv to its end: its stdout (its stderr goes into the log).
std::string output_of(const std::vector<std::string>& argv) {
    auto r = iz::test::run_process(argv, {}, std::chrono::hours(1));
    std::ofstream(g_log, std::ios::app) << r.err;
    return r.out;
}

// Reaps a child if it ends within `timeout`; false while it still runs.
// (An unreaped child keeps its pid, so signalling it is always safe.)
bool reaped_within(pid_t pid, std::chrono::milliseconds timeout) {
    for (auto end = Clock::now() + timeout;;) {
        pid_t r = ::waitpid(pid, nullptr, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            forget_child(pid);
            return true;
        }
        if (Clock::now() >= end) return false;
        ::usleep(10000);
    }
}

void stop_child(pid_t pid) {
    ::kill(pid, SIGTERM);
    if (reaped_within(pid, std::chrono::seconds(2))) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    forget_child(pid);
}

// ---- scratch space: images, mounts, daemons ------------------------------

struct Scratch {
    fs::path bin, tmp;
    std::vector<std::unique_ptr<iz::test::ScratchFs>> images;
    fs::path watched;                                   // izwatch runs on it when set
    std::string twin;                                   // "-plaintext-bench": the daemons without encryption
    pid_t agent = -1;                                   // detached: not our child
};
Scratch g;
std::mutex g_cleanup_mu;
bool g_cleaned = false;

// The agent detaches, so it is no child of ours: its pid is checked to
// still be that agent before it is signalled.
bool agent_alive() {
    if (g.agent <= 0) return false;
    std::ifstream in(fmt::format("/proc/{}/cmdline", g.agent));
    std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    return cmdline.find("izwatch") != std::string::npos && cmdline.find(g.watched.string()) != std::string::npos;
}

void stop_agent() {
    if (g.watched.empty()) return;
    pid_t pid = spawn({(g.bin / ("izwatch" + g.twin)).string(), "stop", g.watched.string()}, g_log);
    if (pid > 0 && !reaped_within(pid, std::chrono::seconds(30))) stop_child(pid);
    for (int sig : {SIGTERM, SIGKILL}) {
        for (int i = 0; i < 300 && agent_alive(); ++i) ::usleep(10000);
        if (!agent_alive()) return;
        ::kill(g.agent, sig);
    }
}

// Idempotent; runs on the main thread, or on the signal thread.
void cleanup() {
    std::lock_guard lock(g_cleanup_mu);
    if (g_cleaned) return;
    g_cleaned = true;
    stop_agent();
    std::set<pid_t> children;
    {
        std::lock_guard l(g_children_mu);
        children = g_children;
    }
    for (pid_t pid : children) stop_child(pid);
    while (!g.images.empty()) g.images.pop_back();  // the last mounted first
    std::error_code ec;
    if (!g.tmp.empty()) fs::remove_all(g.tmp, ec);
}

// Set when a signal stops the run: what fails after it (children ended
// under the main thread's feet) is no news.
std::atomic<bool> g_interrupted{false};

[[noreturn]] void die(const std::string& msg) {
    if (g_interrupted) {
        for (;;) ::pause();  // the signal thread is cleaning up and exits
    }
    std::fflush(stdout);
    fmt::print(stderr, "bench-replicate: {}\n", msg);
    cleanup();
    std::exit(1);
}

// Signals are taken by a thread of their own, so that cleanup runs as
// ordinary code whatever the main thread is blocked in.
void start_signal_thread() {
    sigemptyset(&g_stop_signals);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&g_stop_signals, s);
    ::pthread_sigmask(SIG_BLOCK, &g_stop_signals, nullptr);
    std::thread([] {
        int sig = 0;
        ::sigwait(&g_stop_signals, &sig);
        g_interrupted = true;
        fmt::print(stderr, "bench-replicate: {}; cleaning up\n", ::strsignal(sig));
        cleanup();
        std::_Exit(128 + sig);
    }).detach();
}

// Writes back what is dirty on this run's filesystems only (sync(2) would
// wait for everybody's).
void sync_ours() {
    for (auto& image : g.images) {
        int fd = ::open(image->mount_point().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            ::syncfs(fd);
            ::close(fd);
        }
    }
}

fs::path mount_image(const std::string& name) {
    auto at = iz::bench::mount_ext4_image(g.images, 2048, "bench-replicate", name);
    if (!at) die(at.error().message);
    return *at;
}

// A port nobody listens on now: fixed ports collide with other runs.
uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        die(fmt::format("finding a free port: {}", std::strerror(errno)));
    ::close(fd);
    return ntohs(a.sin_port);
}

bool accepts(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (fd >= 0) ::close(fd);
    return ok;
}

std::string tail_of(const fs::path& file) {
    std::ifstream in(file);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
}

// Starts a server in the foreground and waits until it accepts connections.
pid_t start_daemon(const std::vector<std::string>& argv, uint16_t port, const fs::path& log) {
    pid_t pid = spawn(argv, log);
    if (pid < 0) die(fmt::format("cannot start {}", argv[0]));
    for (int i = 0; i < 500; ++i) {
        if (reaped_within(pid, std::chrono::milliseconds(0)))
            die(fmt::format("{} exited at start:\n{}", argv[0], tail_of(log)));
        if (accepts(port)) return pid;
        ::usleep(20000);
    }
    die(fmt::format("{} does not listen on 127.0.0.1:{}:\n{}", argv[0], port, tail_of(log)));
}

// ---- measurements ----------------------------------------------------------

std::vector<std::string> proc_stat_fields(pid_t pid) {
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string content((std::istreambuf_iterator<char>(stat)), {});
    std::vector<std::string> f;
    auto close_paren = content.rfind(')');
    if (close_paren == std::string::npos) return f;
    std::istringstream in(content.substr(close_paren + 2));
    for (std::string x; in >> x;) f.push_back(x);
    return f;
}

// utime+stime of a process (every thread), or with `reaped` the cutime+
// cstime of the children it has waited for.
double cpu_seconds(pid_t pid, bool reaped = false) {
    auto f = proc_stat_fields(pid);
    size_t at = reaped ? 13 : 11;  // fields 16-17 / 14-15 of proc(5), counted from field 3
    if (f.size() <= at + 1) return 0;
    return (std::stod(f[at]) + std::stod(f[at + 1])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double rusage_seconds(const struct rusage& ru) {
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// TCP payload bytes the server has acknowledged, per agent connection
// (keyed by its local port): what the agent put on the wire, framing
// included, without IP/TCP headers or retransmissions.
std::map<std::string, uint64_t> agent_connections(uint16_t server_port) {
    auto out = output_of({"ss", "-tinH", "state", "established", "dport", "=", fmt::format(":{}", server_port)});
    std::map<std::string, uint64_t> conns;
    std::regex local(R"(^\S*\s+\S+\s+(\S+)\s+127\.0\.0\.1:)"), acked(R"(bytes_acked:(\d+))");
    std::istringstream in(out);
    std::string line, current;
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_search(line, m, local)) current = m[1];
        else if (std::regex_search(line, m, acked) && !current.empty()) conns[current] = std::stoull(m[1]);
    }
    return conns;
}

// Bytes sent between two snapshots; a connection that went away in between
// took its last bytes with it (flagged).
uint64_t bytes_between(const std::map<std::string, uint64_t>& before, const std::map<std::string, uint64_t>& after,
                       bool& reconnected) {
    uint64_t total = 0;
    for (auto& [conn, bytes] : after) {
        auto it = before.find(conn);
        total += bytes - (it == before.end() ? 0 : std::min(bytes, it->second));
    }
    for (auto& [conn, bytes] : before) reconnected |= !after.count(conn);
    return total;
}

// ---- manifests ---------------------------------------------------------------

using Manifest = std::map<std::string, std::string>;

std::optional<std::string> content_hash(int dirfd, const char* name) {
    int fd = ::openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    XXH3_state_t* h = XXH3_createState();
    XXH3_64bits_reset(h);
    static thread_local std::vector<char> buf(1 << 20);
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) XXH3_64bits_update(h, buf.data(), static_cast<size_t>(n));
    ::close(fd);
    auto digest = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    if (n < 0) return std::nullopt;
    return fmt::format("{:016x}", digest);
}

struct Detail {
    bool hash = false;  // content hashes of regular files
    // rsync compares the mtimes of directories and symlinks to the second:
    // one made in the same second as its source keeps the time it was made
    // at. Its replica is held to what it does; intermezzo's to the nanosecond.
    bool coarse_times = false;
    // When set, each entry's ctime and path are added here.
    std::vector<std::pair<int64_t, std::string>>* ctimes = nullptr;
};

// One entry: type and mode, owner, mtime, and size + content hash (regular
// files) or target (symlinks). Directory sizes are left out: they depend on
// the directory's history, not its content.
std::optional<std::string> describe(int dirfd, const char* name, const struct stat& st, Detail detail) {
    bool coarse = detail.coarse_times && !S_ISREG(st.st_mode);
    auto line = fmt::format("{:o} {}:{} {}.{:09}", st.st_mode, st.st_uid, st.st_gid, st.st_mtim.tv_sec,
                            coarse ? 0 : st.st_mtim.tv_nsec);
    if (S_ISREG(st.st_mode)) {
        line += fmt::format(" {}", st.st_size);
        if (detail.hash) {
            auto h = content_hash(dirfd, name);
            if (!h) return std::nullopt;
            line += " " + *h;
        }
    } else if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = ::readlinkat(dirfd, name, target, sizeof target);
        if (n < 0) return std::nullopt;
        line += " -> " + std::string(target, static_cast<size_t>(n));
    }
    return line;
}

// False when the tree changed under the walk. `depth`: levels below
// `dirfd` to list (-1: all).
bool walk(int dirfd, const std::string& rel, Detail detail, int depth, Manifest& out) {
    DIR* d = ::fdopendir(dirfd);
    if (!d) {
        ::close(dirfd);
        return false;
    }
    bool ok = true;
    while (auto* e = ::readdir(d)) {
        std::string_view name = e->d_name;
        if (name == "." || name == "..") continue;
        struct stat st{};
        if (::fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            ok = false;
            break;
        }
        auto path = rel.empty() ? std::string(name) : rel + "/" + std::string(name);
        auto line = describe(dirfd, e->d_name, st, detail);
        if (!line) {
            ok = false;
            break;
        }
        out[path] = std::move(*line);
        if (detail.ctimes) detail.ctimes->emplace_back(st.st_ctim.tv_sec * 1'000'000'000ll + st.st_ctim.tv_nsec, path);
        if (S_ISDIR(st.st_mode) && depth != 1) {
            int sub = ::openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0 || !walk(sub, path, detail, depth - 1, out)) {
                ok = false;
                break;
            }
        }
    }
    ::closedir(d);
    return ok;
}

// Part of a tree: an entry ("" is the root) and `depth` levels beneath it
// (-1: all of them).
struct ScopeEntry {
    std::string path;
    int depth = -1;
};
using Scope = std::vector<ScopeEntry>;

// The entries of `scope` beneath `root`; an absent entry is recorded as
// such. nullopt when the tree changed under the walk.
std::optional<Manifest> manifest(const fs::path& root, Detail detail, const Scope& scope = {{"", -1}}) {
    Manifest out;
    for (auto& [rel, depth] : scope) {
        auto at = rel.empty() ? root : root / rel;
        auto key = rel.empty() ? std::string(".") : rel;
        struct stat st{};
        if (::lstat(at.c_str(), &st) != 0) {
            if (errno != ENOENT) return std::nullopt;
            out[key] = "absent";
            continue;
        }
        auto self = describe(AT_FDCWD, at.c_str(), st, detail);
        if (!self) return std::nullopt;
        out[key] = *self;
        if (detail.ctimes) detail.ctimes->emplace_back(st.st_ctim.tv_sec * 1'000'000'000ll + st.st_ctim.tv_nsec, key);
        if (!S_ISDIR(st.st_mode) || depth == 0) continue;
        int fd = ::open(at.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || !walk(fd, rel, detail, depth, out)) return std::nullopt;
    }
    return out;
}

// How many paths differ; the first few are shown, to be looked into.
size_t mismatches(const fs::path& src, const fs::path& replica, const std::string& label, bool coarse_times) {
    Detail detail{true, coarse_times};
    auto a = manifest(src, detail), b = manifest(replica, detail);
    if (!a || !b) die(fmt::format("cannot read {} to compare it", !a ? src.string() : replica.string()));
    size_t n = 0;
    auto show = [&](const std::string& what) {
        if (n++ < 5) fmt::print(stderr, "  {} replica: {}\n", label, what);
    };
    for (auto& [p, l] : *a)
        if (auto it = b->find(p); it == b->end()) show(p + " missing");
        else if (it->second != l) show(fmt::format("{}: source {} | replica {}", p, l, it->second));
    for (auto& [p, l] : *b)
        if (!a->count(p)) show(p + " not in the source");
    return n;
}

// Polls the replica at idle priority until the part of it the workload
// changed (`scope`) equals the source's, without content hashes (mtimes
// are set after content); the whole tree is compared with hashes after.
//
// A walk of a large scope at idle priority takes longer than the 200 ms
// being measured, so it cannot be the clock. The replica goes through the
// source's states in order (one stream of operations, applied in order), so
// an entry that matched its final state stays matched, and once the entries
// the workload changed last (newest ctime in the source) match, so does
// everything changed before them. The probe looks at those few every
// millisecond until they match, then confirms with a full walk; the time
// reported is when they matched. When the walk still finds differences,
// only the entries that differed are looked at again until they all match,
// a full walk confirms it (else polling goes on from what that walk found),
// and the time reported is when the last of them was seen to match.
class ConvergenceProbe {
public:
    ConvergenceProbe(fs::path src, fs::path replica, Scope scope, Clock::time_point since)
        : src_(std::move(src)), replica_(std::move(replica)), scope_(std::move(scope)), since_(since) {
        thread_ = std::thread([this] { poll(); });
    }
    ~ConvergenceProbe() {
        stop_ = true;
        thread_.join();
    }

    // Milliseconds from `since` to when the replica was seen to match;
    // nullopt when it did not within `grace` from now.
    std::optional<double> result(Clock::duration grace) {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, grace, [&] { return converged_.has_value(); });
        stop_ = true;
        if (!converged_) return std::nullopt;
        return std::chrono::duration<double, std::milli>(*converged_ - since_).count();
    }
    // The longest pass over what was still to match: the resolution of the figure.
    double walk_ms() const { return walk_ms_; }

private:
    void poll() {
        sched_param p{};
        ::pthread_setschedparam(::pthread_self(), SCHED_IDLE, &p);
        std::vector<std::pair<int64_t, std::string>> ctimes;
        Detail source_detail;
        source_detail.ctimes = &ctimes;
        auto want = manifest(src_, source_detail, scope_);
        if (!want) return;
        size_t newest = std::min<size_t>(ctimes.size(), 32);
        std::partial_sort(ctimes.begin(), ctimes.begin() + static_cast<std::ptrdiff_t>(newest), ctimes.end(),
                          std::greater<>());
        auto last_changed_match = [&] {
            for (size_t i = 0; i < newest; ++i)
                if (!entry_matches(ctimes[i].second, *want)) return false;
            return true;
        };
        while (!stop_ && !last_changed_match()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        auto t_newest = Clock::now();
        bool first = true;
        while (!stop_) {
            auto got = manifest(replica_, Detail{}, scope_);
            auto t = Clock::now();
            if (got && *got == *want) return done(first ? t_newest : t);
            first = false;
            std::vector<std::string> pending;
            if (got) {
                for (auto& [path, line] : *want)
                    if (auto it = got->find(path); it == got->end() || it->second != line) pending.push_back(path);
                for (auto& [path, line] : *got)
                    if (!want->count(path)) pending.push_back(path);
            }
            while (!stop_ && !pending.empty()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
                auto t0 = Clock::now();
                std::erase_if(pending, [&](const std::string& path) { return entry_matches(path, *want); });
                t = Clock::now();
                walk_ms_ = std::max(walk_ms_.load(), std::chrono::duration<double, std::milli>(t - t0).count());
            }
            if (stop_) return;
            if (got && manifest(replica_, Detail{}, scope_) == want) return done(t);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }

    // Whether the replica's entry at `path` (a manifest key) is what the
    // source's manifest says, or absent when it has none.
    bool entry_matches(const std::string& path, const Manifest& want) const {
        auto at = path == "." ? replica_ : replica_ / path;
        auto it = want.find(path);
        struct stat st{};
        if (::lstat(at.c_str(), &st) != 0) return errno == ENOENT && (it == want.end() || it->second == "absent");
        if (it == want.end()) return false;
        auto line = describe(AT_FDCWD, at.c_str(), st, Detail{});
        return line && *line == it->second;
    }

    void done(Clock::time_point t) {
        std::lock_guard lock(mu_);
        converged_ = t;
        cv_.notify_all();
    }

    fs::path src_, replica_;
    Scope scope_;
    Clock::time_point since_;
    std::atomic<bool> stop_{false};
    std::atomic<double> walk_ms_{0};
    std::mutex mu_;
    std::condition_variable cv_;
    std::optional<Clock::time_point> converged_;
    std::thread thread_;
};

// ---- the two replicators -----------------------------------------------------

struct Setup {
    fs::path src_iz, src_rs;          // the two sources
    fs::path iz_replica, rs_replica;  // what each replicates into
    fs::path key;
    uint16_t server_port = 0, rsync_port = 0;
    pid_t server = -1, rsyncd = -1;
    bool metrics = false;  // the intermezzo daemons serve /metrics on these
    bool plain = false;    // the daemons are the plaintext twins
    uint16_t agent_metrics_port = 0, server_metrics_port = 0;
};

nlohmann::json agent_status(const fs::path& dir) {
    auto out = output_of({(g.bin / ("izwatch" + g.twin)).string(), "status", "--json", dir.string()});
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_discarded()) die("izwatch status --json gave no JSON: " + out);
    return j;
}

void izsync(const fs::path& dir, int timeout_s) {
    if (run({(g.bin / ("izwatch" + g.twin)).string(), "sync", dir.string(), "--timeout", std::to_string(timeout_s)}) != 0)
        die(fmt::format("izwatch sync failed: {}\nizwatch status: {}\nagent log:\n{}\nserver log:\n{}", tail_of(g_log),
                        agent_status(dir).dump(), tail_of(g.tmp / "src-iz" / "state" / "izwatch.log"),
                        tail_of(g.tmp / "izreplicate.log")));
}

struct RsyncRun {
    double cpu_s = 0;  // client, and the daemon's children
    uint64_t bytes_sent = 0;
};

// The daemon forks a child per connection; its CPU time reaches the
// daemon's cutime/cstime once the daemon has reaped it.
void wait_daemon_children_reaped(pid_t daemon) {
    auto file = fmt::format("/proc/{}/task/{}/children", daemon, daemon);
    for (int i = 0; i < 500; ++i) {
        std::ifstream in(file);
        std::string kids;
        if (!(in >> kids)) return;
        ::usleep(2000);
    }
}

RsyncRun run_rsync(const Setup& s) {
    RsyncRun r;
    double daemon_before = cpu_seconds(s.rsyncd, true);
    auto out_file = g.tmp / "rsync.out";
    std::error_code ec;
    fs::remove(out_file, ec);
    pid_t pid = spawn({"rsync", "-a", "--delete", "--stats", s.src_rs.string() + "/",
                       fmt::format("rsync://127.0.0.1:{}/replica/", s.rsync_port)},
                      out_file);
    struct rusage ru{};
    if (pid < 0 || wait_child(pid, &ru) != 0) die("rsync failed:\n" + tail_of(out_file));
    wait_daemon_children_reaped(s.rsyncd);
    r.cpu_s = rusage_seconds(ru) + cpu_seconds(s.rsyncd, true) - daemon_before;
    std::ifstream in(out_file);
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("Total bytes sent:")) {
            std::string digits;
            for (char c : line.substr(17))
                if (std::isdigit(static_cast<unsigned char>(c))) digits += c;
            r.bytes_sent = digits.empty() ? 0 : std::stoull(digits);
        }
    return r;
}

// izreplicate and izwatch, with --metrics on ports of their own when
// `metrics`; the agent resumes from its journal and state when restarted.
void start_intermezzo(Setup& s, bool metrics, bool plain = false) {
    auto iz_root = s.iz_replica.parent_path();
    s.metrics = metrics;
    s.plain = plain;
    g.twin = plain ? "-plaintext-bench" : "";
    s.server_port = free_port();
    std::vector<std::string> server{(g.bin / ("izreplicate" + g.twin)).string(), "--root", iz_root.string(), "--listen",
                                    fmt::format("127.0.0.1:{}", s.server_port), "--key", s.key.string(), "--foreground",
                                    "--log-file", (g.tmp / "izreplicate.log").string()};
    std::vector<std::string> agent{(g.bin / ("izwatch" + g.twin)).string(), "start", s.src_iz.string(), "--server",
                                   fmt::format("127.0.0.1:{}", s.server_port), "--key", s.key.string(), "--journal",
                                   (g.tmp / "src-iz" / "journal").string(), "--state-dir",
                                   (g.tmp / "src-iz" / "state").string()};
    if (metrics) {
        s.server_metrics_port = free_port();
        s.agent_metrics_port = free_port();
        server.insert(server.end(), {"--metrics", fmt::format("127.0.0.1:{}", s.server_metrics_port)});
        agent.insert(agent.end(), {"--metrics", fmt::format("127.0.0.1:{}", s.agent_metrics_port)});
    }
    s.server = start_daemon(server, s.server_port, g.tmp / "izreplicate.log");
    if (run(agent) != 0) die("izwatch start failed:\n" + tail_of(g_log));
    g.watched = s.src_iz;
    g.agent = agent_status(s.src_iz).value("pid", -1);
    izsync(s.src_iz, 300);
}

void stop_intermezzo(Setup& s) {
    stop_agent();
    stop_child(s.server);
    s.server = -1;
}

Setup start_replicators() {
    Setup s;
    s.src_iz = mount_image("src-iz") / "data";
    s.src_rs = mount_image("src-rsync") / "data";
    auto iz_root = mount_image("dst-iz");
    s.rs_replica = mount_image("dst-rsync") / "replica";
    s.iz_replica = iz_root / "data";  // the fileset is named after the watched directory
    for (auto& d : {s.src_iz, s.src_rs, s.rs_replica}) fs::create_directories(d);

    s.key = g.tmp / "key";
    if (run({(g.bin / "izreplicate").string(), "keygen", s.key.string()}) != 0) die("izreplicate keygen failed");

    auto conf = g.tmp / "rsyncd.conf";
    std::ofstream(conf) << fmt::format(
        "use chroot = yes\nmunge symlinks = no\nuid = root\ngid = root\nlog file = {}\n[replica]\npath = {}\n"
        "read only = false\n",
        (g.tmp / "rsyncd.log").string(), s.rs_replica.string());
    s.rsync_port = free_port();
    s.rsyncd = start_daemon({"rsync", "--daemon", "--no-detach", "--config=" + conf.string(),
                             fmt::format("--port={}", s.rsync_port), "--address=127.0.0.1"},
                            s.rsync_port, g.tmp / "rsyncd.log");

    start_intermezzo(s, false);
    return s;
}

// ---- workloads ---------------------------------------------------------------

// Each is deterministic, so that both sources go through the same states.
struct Workload {
    std::string name;
    std::function<void(const fs::path&)> prepare;  // untimed; replicated before the start
    std::function<void(const fs::path&)> run;
    Scope changes;         // what it changes, for the convergence poll
    bool bigfile = false;  // its bytes on the wire are the summary's figure
};

void write_random(const fs::path& p, size_t bytes, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::ofstream f(p, std::ios::binary);
    std::vector<uint64_t> buf(1 << 17);
    for (size_t done = 0; done < bytes; done += buf.size() * 8) {
        for (auto& x : buf) x = rng();
        f.write(reinterpret_cast<const char*>(buf.data()),
                static_cast<std::streamsize>(std::min(bytes - done, buf.size() * 8)));
    }
    if (!f) die("writing " + p.string() + " failed");
}

void copy_tree(const fs::path& d) {
    if (run({"cp", "-a", "/usr/include", (d / "include").string()}) != 0) die("cp -a failed");
}

void overwrite_middle(const fs::path& d) {
    std::mt19937_64 rng(2);
    std::vector<uint64_t> data((1 << 20) / 8);
    for (auto& x : data) x = rng();
    int fd = ::open((d / "big.bin").c_str(), O_WRONLY | O_CLOEXEC);
    size_t n = data.size() * 8;
    if (fd < 0 || ::pwrite(fd, data.data(), n, 128 << 20) != static_cast<ssize_t>(n)) die("overwrite failed");
    ::close(fd);
}

void make_logs(const fs::path& d) {
    fs::create_directories(d / "logs");
    for (int i = 0; i < 200; ++i) std::ofstream(d / "logs" / fmt::format("log{:03}", i)) << "started\n";
}

void append_logs(const fs::path& d) {
    for (int round = 0; round < 50; ++round)
        for (int i = 0; i < 200; ++i) {
            auto line = fmt::format("round {:02} file {:03} {}\n", round, i, std::string(72, 'x'));
            int fd = ::open((d / "logs" / fmt::format("log{:03}", i)).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
            if (fd < 0 || ::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
                die("append failed");
            ::close(fd);
        }
}

// Every tenth regular file of the tree, in a stable order (readdir order
// differs between the two filesystems).
std::vector<fs::path> every_tenth_file(const fs::path& tree) {
    std::vector<fs::path> all;
    for (auto& e : fs::recursive_directory_iterator(tree))
        if (e.is_regular_file() && !e.is_symlink()) all.push_back(e.path());
    std::sort(all.begin(), all.end());
    std::vector<fs::path> out;
    for (size_t i = 0; i < all.size(); i += 10) out.push_back(all[i]);
    return out;
}

void attribute_mix(const fs::path& d) {
    auto files = every_tenth_file(d / "include-renamed");
    int64_t i = 0;
    for (auto& p : files) {
        ++i;
        struct timespec ts[2] = {{1'600'000'000 + i, 0}, {1'600'000'000 + i, 0}};
        if (::chmod(p.c_str(), i % 2 ? 0600 : 0755) != 0 || ::utimensat(AT_FDCWD, p.c_str(), ts, 0) != 0 ||
            ::symlink(p.filename().c_str(), (p.string() + ".sym").c_str()) != 0 ||
            ::link(p.c_str(), (p.string() + ".hard").c_str()) != 0)
            die(fmt::format("attribute mix on {}: {}", p.string(), std::strerror(errno)));
    }
}

std::vector<Workload> workloads() {
    auto nothing = [](const fs::path&) {};
    return {
        {"1 tree copy (cp -a /usr/include)", nothing, copy_tree, {{"", 0}, {"include", -1}}},
        {"2 1 MiB overwrite, 256 MiB file", [](const fs::path& d) { write_random(d / "big.bin", 256u << 20, 1); },
         overwrite_middle, {{"big.bin", 0}}, true},
        {"3 rename of the include tree", nothing,
         [](const fs::path& d) { fs::rename(d / "include", d / "include-renamed"); }, {{"", 1}}},
        {"4 200 files x 50 appends", make_logs, append_logs, {{"logs", -1}}},
        // Before the tree is deleted: it gives the mix its many files.
        {"6 chmod/touch/symlink/hardlink mix", nothing, attribute_mix, {{"include-renamed", -1}}},
        {"5 delete the tree", nothing, [](const fs::path& d) { fs::remove_all(d / "include-renamed"); }, {{"", 1}}},
    };
}

// ---- one workload, both ways -------------------------------------------------

struct IzRun {
    double work_s = 0, total_s = 0;
    std::optional<double> converged_ms;
    double poll_walk_ms = 0;
    uint64_t bytes = 0;
    bool reconnected = false;
    double agent_cpu = 0, server_cpu = 0;
};

IzRun time_intermezzo(const Setup& s, const Workload& wl) {
    IzRun r;
    auto conns0 = agent_connections(s.server_port);
    double agent0 = cpu_seconds(g.agent), server0 = cpu_seconds(s.server);
    auto t0 = Clock::now();
    wl.run(s.src_iz);
    auto t_end = Clock::now();
    std::optional<ConvergenceProbe> probe;
    probe.emplace(s.src_iz, s.iz_replica, wl.changes, t_end);
    izsync(s.src_iz, 300);
    auto t_sync = Clock::now();
    r.agent_cpu = cpu_seconds(g.agent) - agent0;
    r.server_cpu = cpu_seconds(s.server) - server0;
    r.bytes = bytes_between(conns0, agent_connections(s.server_port), r.reconnected);
    r.converged_ms = probe->result(std::chrono::seconds(5));
    r.poll_walk_ms = probe->walk_ms();
    probe.reset();
    r.work_s = secs_between(t0, t_end);
    r.total_s = secs_between(t0, t_sync);
    return r;
}

struct RsRun {
    double work_s = 0, total_s = 0;
    RsyncRun rsync;
};

RsRun time_rsync(const Setup& s, const Workload& wl) {
    RsRun r;
    auto t0 = Clock::now();
    wl.run(s.src_rs);
    auto t_end = Clock::now();
    r.rsync = run_rsync(s);
    r.work_s = secs_between(t0, t_end);
    r.total_s = secs_between(t0, Clock::now());
    return r;
}

std::string human(uint64_t bytes) {
    if (bytes < 10'000) return fmt::format("{} B", bytes);
    if (bytes < 10'000'000) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / 1024);
    return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
}

std::string f3(double x) { return fmt::format("{:.3f}", x); }
std::string f2(double x) { return fmt::format("{:.2f}", x); }

template <typename T>
T median(std::vector<T> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Every run of one workload.
struct Row {
    std::vector<double> work_iz, work_rs, iz, rs, conv, agent_cpu, server_cpu, rsync_cpu;
    std::vector<uint64_t> iz_bytes, rs_bytes;
    size_t iz_bad = 0, rs_bad = 0;
    double poll_walk_ms = 0;
    bool reconnected = false;
};

// Brings both replicas to the workload's starting state, then times it
// on each source.
void run_both(const Setup& s, const Workload& wl, Row& row) {
    wl.prepare(s.src_iz);
    wl.prepare(s.src_rs);
    izsync(s.src_iz, 300);
    run_rsync(s);
    // Dirty pages of the preparation are written back now, not during
    // either timed run.
    sync_ours();
    auto iz = time_intermezzo(s, wl);
    sync_ours();
    auto rs = time_rsync(s, wl);
    row.iz_bad += mismatches(s.src_iz, s.iz_replica, "intermezzo", false);
    row.rs_bad += mismatches(s.src_rs, s.rs_replica, "rsync", true);
    row.work_iz.push_back(iz.work_s);
    row.work_rs.push_back(rs.work_s);
    row.iz.push_back(iz.total_s);
    row.rs.push_back(rs.total_s);
    row.conv.push_back(iz.converged_ms.value_or(std::numeric_limits<double>::infinity()));
    row.agent_cpu.push_back(iz.agent_cpu);
    row.server_cpu.push_back(iz.server_cpu);
    row.rsync_cpu.push_back(rs.rsync.cpu_s);
    row.iz_bytes.push_back(iz.bytes);
    row.rs_bytes.push_back(rs.rsync.bytes_sent);
    row.poll_walk_ms = std::max(row.poll_walk_ms, iz.poll_walk_ms);
    row.reconnected |= iz.reconnected;
}

// Empties both sources and replicates that (untimed): the next run starts
// from where the first one did.
void start_over(const Setup& s) {
    for (auto& src : {s.src_iz, s.src_rs})
        for (auto& e : fs::directory_iterator(src)) fs::remove_all(e.path());
    izsync(s.src_iz, 300);
    run_rsync(s);
}

bool tls_compare_mode() {
    const char* v = std::getenv("IZ_BENCH_TLS_COMPARE");
    if (!v || std::string_view(v) != "1") return false;
    for (auto* p : {"izwatch-plaintext-bench", "izreplicate-plaintext-bench"})
        if (!fs::exists(g.bin / p))
            die(fmt::format("IZ_BENCH_TLS_COMPARE=1 needs {} next to this benchmark: configure with "
                            "-DIZ_BENCH_PLAINTEXT=ON",
                            p));
    return true;
}

// One 1 GiB file of random bytes copied into the emptied watched source,
// timed until `izwatch sync` returns: the throughput of the whole path
// (read, frame, TLS or not, loopback, apply, fsync).
constexpr uint64_t kBulkBytes = 1ull << 30;

struct BulkRun {
    bool plain = false;
    double seconds = 0;
    uint64_t bytes = 0;
    size_t bad = 0;
};

std::vector<BulkRun> bulk_runs(Setup& s) {
    auto data = g.tmp / "bulk.bin";  // outside the sources, in the page cache after the first read
    write_random(data, kBulkBytes, 7);
    std::vector<BulkRun> out;
    for (bool plain : {false, true, true, false}) {
        if (plain != s.plain || s.metrics) {
            stop_intermezzo(s);
            start_intermezzo(s, false, plain);
        }
        start_over(s);
        sync_ours();
        BulkRun r;
        r.plain = plain;
        bool reconnected = false;
        auto conns0 = agent_connections(s.server_port);
        auto t0 = Clock::now();
        fs::copy_file(data, s.src_iz / "bulk.bin");
        izsync(s.src_iz, 600);
        r.seconds = secs_between(t0, Clock::now());
        r.bytes = bytes_between(conns0, agent_connections(s.server_port), reconnected);
        r.bad = mismatches(s.src_iz, s.iz_replica, plain ? "intermezzo (plain)" : "intermezzo (TLS)", false);
        fmt::print("bulk {}: {:.3f} s, {:.0f} MB/s{}\n", plain ? "plain" : "TLS", r.seconds,
                   static_cast<double>(kBulkBytes) / 1e6 / r.seconds, reconnected ? " (reconnected)" : "");
        std::fflush(stdout);
        out.push_back(r);
    }
    std::error_code ec;
    fs::remove(data, ec);
    return out;
}

constexpr auto kRow = "{:<35} {:>7} {:>7} {:>7} {:>7} {:>6} {:>7} {:>10} {:>11} {:>6} {:>6} {:>6} {:>7} {:>7}\n";

}  // namespace

int main(int argc, char** argv) {
    if (::geteuid() != 0) {
        fmt::print(stderr, "bench-replicate: needs root (loop mounts, fanotify, eBPF)\n");
        return 1;
    }
    // Mounts made in a mount namespace of our own: they cannot leak into
    // namespaces other programs create meanwhile (`ip netns exec`, for one,
    // copies every mount there is, and keeps a copy alive after we unmount),
    // and they go away with the last process of this run.
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        fmt::print(stderr, "bench-replicate: a private mount namespace: {}\n", std::strerror(errno));
        return 1;
    }
    start_signal_thread();
    g.bin = fs::canonical("/proc/self/exe").parent_path();
    for (auto* p : {"izwatch", "izreplicate"})
        if (!fs::exists(g.bin / p)) die(fmt::format("{} is not built next to this benchmark", p));
    g.tmp = fs::temp_directory_path() / fmt::format("iz-bench-replicate-{}", ::getpid());
    fs::create_directories(g.tmp / "run");
    g_log = g.tmp / "commands.log";
    // Control sockets of this run's agent stay in the temp dir.
    ::setenv("IZ_RUN_DIR", (g.tmp / "run").c_str(), 1);
    if (run({"rsync", "--version"}) != 0) die("rsync is not installed (scripts/install-deps.sh installs it)");
    // Five: single runs of the tree copy spread over ±25% on a 2-core machine.
    int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;

    auto s = start_replicators();
    run_rsync(s);
    auto st = agent_status(s.src_iz);
    fmt::print("bench-replicate: ext4 images in /dev/shm; izwatch ({}) -> izreplicate, rsync -> rsync daemon, both on "
               "127.0.0.1; median of {} runs\n",
               st.value("capture", std::string("?")), reps);
    std::fflush(stdout);

    auto wls = workloads();
    bool metrics = iz::bench::metrics_mode();
    bool tls_compare = tls_compare_mode();
    if (metrics && tls_compare) die("IZ_BENCH_METRICS and IZ_BENCH_TLS_COMPARE: one at a time");
    // Without and with --metrics, or with TLS and with the plaintext twins.
    std::vector<Row> rows(wls.size()), rows_m(wls.size());
    uint64_t scrapes = 0, failed_scrapes = 0;
    bool first = true;
    for (int rep = 0; rep < reps; ++rep) {
        // In metrics or TLS-compare mode both passes, the first alternating,
        // so that a drift of the machine weighs on both alike.
        std::vector<bool> passes{false};
        if (metrics || tls_compare)
            passes = rep % 2 == 0 ? std::vector<bool>{false, true} : std::vector<bool>{true, false};
        for (bool other : passes) {
            bool with_metrics = metrics && other, plain = tls_compare && other;
            if (with_metrics != s.metrics || plain != s.plain) {
                stop_intermezzo(s);
                start_intermezzo(s, with_metrics, plain);
            }
            if (!first) start_over(s);
            first = false;
            std::optional<iz::bench::MetricsScraper> scraper;
            if (with_metrics) scraper.emplace(std::vector<uint16_t>{s.agent_metrics_port, s.server_metrics_port});
            auto& into = other ? rows_m : rows;
            std::string ratios;
            for (size_t i = 0; i < wls.size(); ++i) {
                run_both(s, wls[i], into[i]);
                ratios += fmt::format(" {:.2f}", into[i].iz.back() / into[i].rs.back());
            }
            if (scraper) {
                scrapes += scraper->ok();
                failed_scrapes += scraper->failed();
            }
            fmt::print("run {}{}: time ratios{}\n", rep + 1,
                       with_metrics ? " (metrics scraped)" : plain ? " (plain TCP after the handshake)" : "", ratios);
            std::fflush(stdout);
        }
    }
    std::vector<BulkRun> bulk;
    if (tls_compare) bulk = bulk_runs(s);
    cleanup();

    fmt::print(fmt::runtime(kRow), "workload", "work iz", "work rs", "iz s", "rsync s", "ratio", "conv ms", "iz bytes",
               "rsync bytes", "cpu ag", "cpu sv", "cpu rs", "iz diff", "rs diff");
    double worst = 0;
    uint64_t bigfile_bytes = 0;
    size_t bad_total = 0, fast = 0;
    double worst_conv = 0;
    for (size_t i = 0; i < wls.size(); ++i) {
        auto& r = rows[i];
        double ratio = median(r.iz) / median(r.rs);
        worst = std::max(worst, ratio);
        if (wls[i].bigfile) bigfile_bytes = median(r.iz_bytes);
        bad_total += r.iz_bad;
        double conv = median(r.conv);
        fmt::print(fmt::runtime(kRow), wls[i].name, f3(median(r.work_iz)), f3(median(r.work_rs)), f3(median(r.iz)),
                   f3(median(r.rs)), f2(ratio), std::isfinite(conv) ? fmt::format("{:.0f}", conv) : std::string("never"),
                   human(median(r.iz_bytes)), human(median(r.rs_bytes)), f2(median(r.agent_cpu)),
                   f2(median(r.server_cpu)), f2(median(r.rsync_cpu)), r.iz_bad, r.rs_bad);
        worst_conv = std::max(worst_conv, conv);
        fast += conv < 200;
    }
    for (size_t i = 0; i < wls.size(); ++i) {
        if (rows[i].reconnected)
            fmt::print("note: {}: the agent reconnected; its byte count misses the old connection\n", wls[i].name);
        if (rows[i].poll_walk_ms > 50)
            fmt::print("note: {}: a pass of the convergence poll over what still differed took up to {:.0f} ms\n", wls[i].name,
                       rows[i].poll_walk_ms);
    }
    fmt::print(
        "Seconds from the workload's start: 'iz s' until `izwatch sync` returns (applied and fsynced on the server),\n"
        "'rsync s' until `rsync -a --delete` returns (no fsync). 'work': the workload alone, on the watched source\n"
        "(iz) and on the unwatched one (rs). 'conv ms': from the workload's end until what it changed first matched\n"
        "on the replica (an idle-priority poll of metadata; contents are compared after). 'iz bytes': TCP payload\n"
        "the server acknowledged on the agent's connection (ss bytes_acked); 'rsync bytes': its 'Total bytes sent'.\n"
        "CPU seconds: the agent (ag) and izreplicate (sv); rsync's client and the daemon's children (rs). 'diff':\n"
        "paths where the replica differed from its source after a run, all runs added (path, type, mode, owner,\n"
        "mtime, size, XXH3 of content, symlink target; 0: converged); rsync's directory and symlink mtimes to the\n"
        "second (it skips those that match to the second), everything else to the nanosecond.\n");
    fmt::print("convergence: {} of {} workloads within 200 ms of their end (slowest {} ms)\n", fast, wls.size(),
               std::isfinite(worst_conv) ? fmt::format("{:.0f}", worst_conv) : std::string("never"));
    if (bad_total) fmt::print("intermezzo replicas differed from their source in {} paths\n", bad_total);
    fmt::print("replicate: worst_time_ratio_vs_rsync={:.3f} bigfile_bytes={}\n", worst, bigfile_bytes);
    if (metrics) {
        // rsync's two columns say how much the machine drifted between the passes.
        constexpr auto kMetricsRow = "{:<35} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7}\n";
        fmt::print("\nThe same with --metrics on both daemons, each scraped every second ('+m'), medians:\n");
        fmt::print(fmt::runtime(kMetricsRow), "workload", "iz s", "iz s+m", "ratio", "rsync s", "rsync+m", "cpu ag",
                   "ag+m", "cpu sv", "sv+m");
        double worst_m = 0;
        for (size_t i = 0; i < wls.size(); ++i) {
            auto& a = rows[i];
            auto& b = rows_m[i];
            double ratio = median(b.iz) / median(a.iz);
            worst_m = std::max(worst_m, ratio);
            fmt::print(fmt::runtime(kMetricsRow), wls[i].name, f3(median(a.iz)), f3(median(b.iz)), f2(ratio),
                       f3(median(a.rs)), f3(median(b.rs)), f2(median(a.agent_cpu)), f2(median(b.agent_cpu)),
                       f2(median(a.server_cpu)), f2(median(b.server_cpu)));
        }
        fmt::print("metrics: worst_time_ratio_with_vs_without={:.3f} scrapes={} failed_scrapes={}\n", worst_m, scrapes,
                   failed_scrapes);
    }
    if (tls_compare) {
        // rsync's two columns say how much the machine drifted between the passes.
        constexpr auto kTlsRow = "{:<35} {:>7} {:>7} {:>6} {:>11} {:>11} {:>7} {:>7} {:>7} {:>7} {:>7}\n";
        fmt::print("\nWith TLS against the same build with the frames over plain TCP after the handshake, medians:\n");
        fmt::print(fmt::runtime(kTlsRow), "workload", "tls s", "plain s", "ratio", "tls bytes", "plain bytes",
                   "rsync s", "rsync+p", "cpu ag", "ag+p", "diff+p");
        double worst_tls = 0, worst_bytes = 0;
        for (size_t i = 0; i < wls.size(); ++i) {
            auto& a = rows[i];
            auto& b = rows_m[i];
            double ratio = median(a.iz) / median(b.iz);
            worst_tls = std::max(worst_tls, ratio);
            worst_bytes = std::max(worst_bytes, static_cast<double>(median(a.iz_bytes)) /
                                                    static_cast<double>(std::max<uint64_t>(1, median(b.iz_bytes))));
            fmt::print(fmt::runtime(kTlsRow), wls[i].name, f3(median(a.iz)), f3(median(b.iz)), f2(ratio),
                       human(median(a.iz_bytes)), human(median(b.iz_bytes)), f3(median(a.rs)), f3(median(b.rs)),
                       f2(median(a.agent_cpu)), f2(median(b.agent_cpu)), b.iz_bad);
        }
        fmt::print("'tls bytes' and 'plain bytes': TCP payload the server acknowledged (ss bytes_acked), so TLS's record\n"
                   "headers and tags are in the first; 'diff+p': paths the plaintext runs' replicas differed in.\n");
        double tls_s = 0, plain_s = 0;
        uint64_t tls_bytes = 0, plain_bytes = 0;
        size_t bulk_bad = 0;
        for (auto& b : bulk) {
            (b.plain ? plain_s : tls_s) += b.seconds;
            (b.plain ? plain_bytes : tls_bytes) += b.bytes;
            bulk_bad += b.bad;
        }
        auto runs = static_cast<double>(bulk.size() / 2);
        double mb = static_cast<double>(kBulkBytes) / 1e6;
        fmt::print("bulk: 1 GiB file over 127.0.0.1, {} runs each (ABBA): TLS {:.0f} MB/s, plain {:.0f} MB/s, ratio {:.2f}; "
                   "wire {} vs {} per run; replicas differed in {} paths\n",
                   bulk.size() / 2, mb * runs / tls_s, mb * runs / plain_s, (tls_s / runs) / (plain_s / runs),
                   human(tls_bytes / (bulk.size() / 2)), human(plain_bytes / (bulk.size() / 2)), bulk_bad);
        fmt::print("tls: worst_time_ratio_tls_vs_plain={:.3f} worst_bytes_ratio={:.3f} bulk_tls_mb_s={:.0f} "
                   "bulk_plain_mb_s={:.0f}\n",
                   worst_tls, worst_bytes, mb * runs / tls_s, mb * runs / plain_s);
    }
    return 0;
}
