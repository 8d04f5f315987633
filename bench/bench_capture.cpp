// What capture costs the workload it watches. Each workload runs on a
// loop-mounted ext4 image in /dev/shm, first with no agent, then with
// izwatch watching the directory, in the same run; the figure is the ratio
// of the medians. The journal is then read back to check that every
// operation of the workload was journaled.
//
// IZ_BENCH_METRICS=1 adds a fourth mode: the agent with --metrics, scraped
// every second while the workload runs and the agent catches up
// (metrics_scraper.hpp), and prints its time and the agent's CPU beside the
// agent's without metrics, from the same run.
//
// Wall time is what a user feels, but on a machine others load it mostly
// measures how much of a core the workload got: every figure comes with
// CPU time too, the workload's own (user+system of the thread that runs it
// and of the programs it runs, which includes what the kernel's fanotify
// costs it) and the agent's for the workload (its utime+stime from /proc,
// from just before the workload until `izwatch sync` returned). Each run
// starts from the same state: the workload's directories are made anew (the
// churn beside DIR kept its directory from run to run, so every run but the
// first found that run's names as cached negative dentries), the previous
// agent has exited, and the modes take turns going first, since the run that
// follows another one was measurably slower.
//
// IZ_BENCH_ONLY=TEXT runs only the workloads whose name contains TEXT (and
// not bench-verify).
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/mount.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <atomic>

#include <nlohmann/json.hpp>

#include "journal/reader.hpp"
#include "metrics_scraper.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using iz::journal::Op;

namespace {

fs::path g_bin;
fs::path g_mount;
fs::path g_image;
// Extra izwatch arguments from IZ_BENCH_AGENT_ARGS (e.g. --no-bpf), to
// tell the cost of each capture path apart.
std::string g_agent_args;

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

std::string capture_output(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
}

void cleanup() {
    if (!g_mount.empty()) {
        sh(fmt::format("{}/izwatch stop {}/w >/dev/null 2>&1", g_bin.string(), g_mount.string()));
        ::umount2(g_mount.c_str(), MNT_DETACH);
        fs::remove_all(g_mount);
    }
    if (!g_image.empty()) fs::remove(g_image);
}

[[noreturn]] void die(const std::string& msg) {
    fmt::print(stderr, "bench-capture: {}\n", msg);
    cleanup();
    std::exit(1);
}

struct Workload {
    std::string name;
    std::function<void(const fs::path&)> prepare;  // untimed
    std::function<void(const fs::path&)> run;      // timed
    // Checks the records journaled during the run; returns how many
    // expected operations are missing.
    std::function<uint64_t(const std::vector<iz::journal::Record>&, const fs::path&)> missing;
    // What it misses are renames fanotify merged into a queued identical
    // event (the final tree is still exact): counted apart from losses.
    bool merged_renames = false;
};

void churn(const fs::path& dir) {
    // create, write 12 bytes, close, unlink: editor swap files, build temporaries.
    for (int i = 0; i < 50000; ++i) {
        auto p = dir / fmt::format("tmp{}", i);
        int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
        if (fd < 0 || ::write(fd, "hello world\n", 12) != 12) die("churn write failed");
        ::close(fd);
        ::unlink(p.c_str());
    }
}

uint64_t churn_missing(const std::vector<iz::journal::Record>& recs, const fs::path&) {
    std::set<std::string> created, unlinked;
    for (auto& r : recs) {
        if (r.op == Op::create) created.insert(r.path);
        if (r.op == Op::unlink) unlinked.insert(r.path);
    }
    uint64_t missing = 0;
    for (int i = 0; i < 50000; ++i) {
        auto name = fmt::format("tmp{}", i);
        // A file may be gone before the agent looks at its create; then
        // create and unlink are both superfluous, but the unlink must be there.
        missing += !unlinked.count(name);
    }
    (void)created;
    return missing;
}

// A directory next to the watched one, on the same filesystem.
fs::path beside(const fs::path& watched) { return watched.parent_path() / "elsewhere"; }

void copy_tree(const fs::path& dir) {
    if (sh(fmt::format("cp -a /usr/include {}/include", dir.string())) != 0) die("cp -a failed");
}

uint64_t copy_missing(const std::vector<iz::journal::Record>& recs, const fs::path& dir) {
    std::set<std::string> made;
    for (auto& r : recs)
        if (r.op == Op::create || r.op == Op::mkdir || r.op == Op::symlink || r.op == Op::link) made.insert(r.op == Op::link ? r.target : r.path);
    uint64_t missing = 0;
    for (auto& e : fs::recursive_directory_iterator(dir / "include")) {
        auto rel = e.path().lexically_relative(dir).string();  // not fs::relative: it follows symlinks
        if (made.count(rel)) continue;
        if (missing++ < 5) fmt::print(stderr, "  no creation journaled for {}\n", rel);
    }
    return missing;
}

void make_big_dir(const fs::path& dir) {
    fs::create_directories(dir / "a");
    for (int i = 0; i < 10000; ++i) std::ofstream(dir / "a" / fmt::format("f{}", i)) << i;
}

void rename_back_and_forth(const fs::path& dir) {
    for (int i = 0; i < 100; ++i) {
        fs::rename(dir / "a", dir / "b");
        fs::rename(dir / "b", dir / "a");
    }
}

uint64_t rename_missing(const std::vector<iz::journal::Record>& recs, const fs::path&) {
    uint64_t renames = 0;
    for (auto& r : recs) renames += r.op == Op::rename;
    return renames >= 200 ? 0 : 200 - renames;
}

// Writes through a shared mapping: the descriptor is closed before the
// first store, so no write syscall and no close after it tells the agent
// anything; only the kernel's page dirtying does (and the agent's fallback).
constexpr int kMmapFiles = 64;
constexpr size_t kMmapFileSize = 1 << 20;

void make_mmap_files(const fs::path& dir) {
    std::string zeros(kMmapFileSize, '\0');
    for (int i = 0; i < kMmapFiles; ++i) std::ofstream(dir / fmt::format("m{}", i), std::ios::binary) << zeros;
}

void mmap_writes(const fs::path& dir) {
    for (int i = 0; i < kMmapFiles; ++i) {
        auto p = dir / fmt::format("m{}", i);
        int fd = ::open(p.c_str(), O_RDWR);
        if (fd < 0) die(fmt::format("mmap workload: open {}: {}", p.string(), std::strerror(errno)));
        void* m = ::mmap(nullptr, kMmapFileSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ::close(fd);
        if (m == MAP_FAILED) die(fmt::format("mmap workload: mmap {}: {}", p.string(), std::strerror(errno)));
        auto* bytes = static_cast<char*>(m);
        for (size_t off = 0; off < kMmapFileSize; off += 4096) bytes[off + (i % 4096)] = static_cast<char>('a' + i % 26);
        if (::msync(m, kMmapFileSize, MS_SYNC) != 0) die(fmt::format("mmap workload: msync {}: {}", p.string(), std::strerror(errno)));
        ::munmap(m, kMmapFileSize);
    }
}

// A content change is journaled for a file when a write record names it:
// whole-file, or ranges (every page was stored to, so any range will do).
uint64_t mmap_missing(const std::vector<iz::journal::Record>& recs, const fs::path&) {
    std::set<std::string> written;
    for (auto& r : recs)
        if (r.op == Op::write) written.insert(r.path);
    uint64_t missing = 0;
    for (int i = 0; i < kMmapFiles; ++i) {
        auto name = fmt::format("m{}", i);
        if (written.count(name)) continue;
        if (missing++ < 5) fmt::print(stderr, "  no write journaled for {} (mmap)\n", name);
    }
    return missing;
}

// Direct I/O: 4 KiB pwrites at scattered aligned offsets of one file,
// which never touch the page cache's write path.
constexpr size_t kDirectFileSize = 64 << 20;
constexpr int kDirectWrites = 4096;

uint64_t direct_offset(int i) { return (static_cast<uint64_t>(i) * 2654435761u % (kDirectFileSize / 4096)) * 4096; }

void make_direct_file(const fs::path& dir) {
    int fd = ::open((dir / "direct").c_str(), O_CREAT | O_WRONLY, 0644);
    if (fd < 0 || ::ftruncate(fd, kDirectFileSize) != 0) die("O_DIRECT workload: could not make its file");
    ::close(fd);
}

void direct_writes(const fs::path& dir) {
    int fd = ::open((dir / "direct").c_str(), O_WRONLY | O_DIRECT);
    if (fd < 0) die(fmt::format("O_DIRECT workload: open: {}", std::strerror(errno)));
    void* buf = nullptr;
    if (::posix_memalign(&buf, 4096, 4096) != 0) die("O_DIRECT workload: no aligned buffer");
    std::memset(buf, 'd', 4096);
    for (int i = 0; i < kDirectWrites; ++i)
        if (::pwrite(fd, buf, 4096, static_cast<off_t>(direct_offset(i))) != 4096)
            die(fmt::format("O_DIRECT workload: pwrite: {}", std::strerror(errno)));
    ::fdatasync(fd);
    ::close(fd);
    std::free(buf);
}

// Every block written must lie in a journaled write's range (a write
// without ranges is the whole file).
uint64_t direct_missing(const std::vector<iz::journal::Record>& recs, const fs::path&) {
    std::vector<iz::journal::ByteRange> covered;
    bool whole = false;
    for (auto& r : recs) {
        if (r.op != Op::write || r.path != "direct") continue;
        if (r.ranges.empty()) whole = true;
        covered.insert(covered.end(), r.ranges.begin(), r.ranges.end());
    }
    if (whole) return 0;
    covered = iz::journal::coalesce(std::move(covered));
    uint64_t missing = 0;
    for (int i = 0; i < kDirectWrites; ++i) {
        uint64_t off = direct_offset(i);
        bool in = std::any_of(covered.begin(), covered.end(),
                              [&](const iz::journal::ByteRange& r) { return off >= r.offset && off + 4096 <= r.offset + r.length; });
        if (!in && missing++ < 5) fmt::print(stderr, "  no write range journaled for direct @{}\n", off);
    }
    return missing;
}

// The floor: what fanotify itself costs the workload, with a reader that
// does nothing but drain events (the agent's flags and mask). The agent's
// own overhead is the distance between this and the agent's figure.
// It reads the way the agent does (DaemonImpl::gather): woken by a read
// that found fewer than kGatherBelow events, it lets 3 ms' worth gather
// before it reads again. A reader woken for every event costs the writer
// an interrupt and a context switch per event, far more than the agent
// does, and the floor would be no floor.
class NullFanotifyReader {
public:
    static constexpr size_t kGatherBelow = 256;  // as the agent's
    static constexpr long kGatherNs = 3'000'000;  // as the agent's

    explicit NullFanotifyReader(const fs::path& dir) {
        fd_ = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME_TARGET, O_RDONLY);
        if (fd_ < 0 || fanotify_mark(fd_, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
                                     FAN_CREATE | FAN_DELETE | FAN_RENAME | FAN_ATTRIB | FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ONDIR,
                                     AT_FDCWD, dir.c_str()) != 0)
            die(fmt::format("fanotify floor reader: {}", std::strerror(errno)));
        thread_ = std::thread([this] {
            size_t last_batch = 0;
            while (!stop_) {
                pollfd p{fd_, POLLIN, 0};
                if (::poll(&p, 1, 50) <= 0) continue;
                if (last_batch < kGatherBelow) {
                    timespec pause{0, kGatherNs};
                    ::nanosleep(&pause, nullptr);
                }
                last_batch = drain();
            }
        });
    }
    ~NullFanotifyReader() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }

private:
    // Reads every event queued; returns how many there were.
    size_t drain() {
        alignas(fanotify_event_metadata) static char buf[1 << 16];
        size_t events = 0;
        for (;;) {
            ssize_t n = ::read(fd_, buf, sizeof buf);
            if (n <= 0) return events;
            auto* meta = reinterpret_cast<fanotify_event_metadata*>(buf);
            for (; FAN_EVENT_OK(meta, n); meta = FAN_EVENT_NEXT(meta, n)) ++events;
        }
    }

    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

struct AgentUsage {
    double cpu_s = 0;
    uint64_t peak_rss_kb = 0;
};

AgentUsage agent_usage(int pid) {
    AgentUsage u;
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string content((std::istreambuf_iterator<char>(stat)), {});
    auto close_paren = content.rfind(')');
    if (close_paren != std::string::npos) {
        std::istringstream in(content.substr(close_paren + 2));
        std::string field;
        std::vector<std::string> fields;
        while (in >> field) fields.push_back(field);
        if (fields.size() > 13) u.cpu_s = (std::stod(fields[11]) + std::stod(fields[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
    }
    std::ifstream status(fmt::format("/proc/{}/status", pid));
    std::string line;
    while (std::getline(status, line))
        if (line.starts_with("VmHWM:")) u.peak_rss_kb = std::stoull(line.substr(6));
    return u;
}

// CPU seconds (user+system) of this thread and of the children it has
// reaped: the workload's own, taken before and after it runs.
double own_cpu_seconds() {
    auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    rusage self{}, children{};
    ::getrusage(RUSAGE_THREAD, &self);
    ::getrusage(RUSAGE_CHILDREN, &children);
    return secs(self.ru_utime) + secs(self.ru_stime) + secs(children.ru_utime) + secs(children.ru_stime);
}

// `izwatch stop` returns once the control socket is gone; the process may
// still be tearing down (its fanotify group, eBPF programs, memory) on the
// other core. The next run waits for that (a zombie has exited too).
void wait_exited(int pid) {
    auto gone = [pid] {
        std::ifstream stat(fmt::format("/proc/{}/stat", pid));
        std::string content((std::istreambuf_iterator<char>(stat)), {});
        auto close_paren = content.rfind(')');
        return close_paren == std::string::npos || content.compare(close_paren, 3, ") Z") == 0;
    };
    for (int i = 0; i < 1000 && pid > 0 && !gone(); ++i) ::usleep(10000);
}

nlohmann::json agent_status(const fs::path& w) {
    auto out = capture_output(fmt::format("{}/izwatch status --json {}", g_bin.string(), w.string()));
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_discarded()) die("izwatch status --json gave no JSON: " + out);
    return j;
}

std::vector<iz::journal::Record> records_after(const fs::path& journal, uint64_t after_lsn) {
    std::vector<iz::journal::Record> out;
    auto r = iz::journal::Reader::open(journal);
    if (!r) die(r.error().message);
    (void)(*r)->seek_lsn(after_lsn + 1);
    for (;;) {
        auto rec = (*r)->next();
        if (!rec) die(rec.error().message);
        if (!*rec) break;
        out.push_back(std::move(**rec));
    }
    return out;
}

// Time of `izwatch verify` over a 100,000-file tree whose replica is
// identical, from bench-verify (built beside this benchmark; it prints its
// baselines itself). nullopt, said why, where it did not give one.
std::optional<double> verify_seconds() {
    auto out = capture_output(fmt::format("{}/bench-verify 2>&1", g_bin.string()));
    fmt::print("{}", out);
    auto at = out.rfind("verify: verify_s=");
    if (at == std::string::npos) {
        fmt::print(stderr, "bench-capture: bench-verify gave no verify_s line\n");
        return std::nullopt;
    }
    return std::strtod(out.c_str() + at + std::strlen("verify: verify_s="), nullptr);
}

}  // namespace

int main(int argc, char** argv) {
    if (geteuid() != 0) {
        fmt::print(stderr, "bench-capture: needs root (loop mounts, fanotify)\n");
        return 1;
    }
    g_bin = fs::canonical("/proc/self/exe").parent_path();
    if (!fs::exists(g_bin / "izwatch")) die("izwatch is not built next to this benchmark");
    int reps = argc > 1 ? std::atoi(argv[1]) : 3;
    if (const char* extra = std::getenv("IZ_BENCH_AGENT_ARGS")) g_agent_args = extra;
    g_image = fmt::format("/dev/shm/iz-bench-capture-{}.img", getpid());
    g_mount = fs::temp_directory_path() / fmt::format("iz-bench-capture-{}", getpid());
    fs::create_directories(g_mount);
    if (sh(fmt::format("truncate -s 2G {0} && mkfs.ext4 -q -F {0} && mount -o loop {0} {1}", g_image.string(), g_mount.string())) != 0)
        die("could not make the ext4 image");
    auto journal = g_mount / "journal";
    bool metrics = iz::bench::metrics_mode();
    std::vector<int> modes{0, 1, 2};  // bare, fanotify floor, agent
    if (metrics) modes.push_back(3);  // agent with --metrics, scraped every second
    double worst_metrics = 0;
    uint64_t scrapes = 0, failed_scrapes = 0;

    std::vector<Workload> workloads = {
        {"churn 50k create/write/close/unlink", [](const fs::path&) {}, churn, churn_missing},
        {"cp -a /usr/include", [](const fs::path&) {}, copy_tree, copy_missing},
        {"rename a 10k-file dir 200 times", make_big_dir, rename_back_and_forth, rename_missing, true},
        {"mmap stores into 64 x 1 MiB, msync", make_mmap_files, mmap_writes, mmap_missing},
        {"O_DIRECT 4096 x 4 KiB pwrite", make_direct_file, direct_writes, direct_missing},
        // The agent marks the whole filesystem: what happens beside DIR
        // reaches it too, and must cost little (and journal nothing).
        {"churn 50k beside DIR, same filesystem", [](const fs::path& w) { fs::create_directories(beside(w)); },
         [](const fs::path& w) { churn(beside(w)); }, [](const std::vector<iz::journal::Record>&, const fs::path&) {
             return uint64_t{0};
         }},
    };

    const char* only = std::getenv("IZ_BENCH_ONLY");
    if (only && *only)
        std::erase_if(workloads, [only](const Workload& wl) { return wl.name.find(only) == std::string::npos; });

    fmt::print("bench-capture: ext4 loop image in /dev/shm, median of {} runs per mode; cpu: CPU seconds (user+system)\n",
               reps);
    fmt::print("{:<38} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>5} {:>9} {:>7}\n", "workload", "bare s", "floor s",
               "agent s", "vs bare", "vs floor", "records", "missing", "ovfl", "agent cpu", "rss MiB");
    double worst_bare = 0, worst_floor = 0, floor_vs_bare = 0, cp_vs_bare = 0, worst_metrics_cpu = 0;
    uint64_t total_overflows = 0, total_missing = 0, merged_renames = 0;
    for (auto& wl : workloads) {
        // Per mode: wall time, the workload's CPU, the agent's CPU.
        std::map<int, std::vector<double>> wall, cpu, agent_cpu;
        uint64_t records = 0, missing = 0, overflows = 0;
        uint64_t peak_rss_kb = 0;
        for (int rep = 0; rep < reps; ++rep) {
            // The modes take turns going first: the run that follows
            // another one was measurably slower, whichever it was.
            std::vector<int> order = modes;
            std::rotate(order.begin(), order.begin() + rep % static_cast<int>(order.size()), order.end());
            for (int mode : order) {
                bool with_agent = mode >= 2;
                auto w = g_mount / "w";
                fs::remove_all(w);
                fs::remove_all(beside(w));
                fs::remove_all(journal);
                fs::remove_all(g_mount / "state");
                fs::create_directories(w);
                wl.prepare(w);
                sh("sync");
                int pid = 0;
                uint64_t start_lsn = 0;
                uint16_t metrics_port = mode == 3 ? iz::bench::free_loopback_port() : 0;
                if (with_agent) {
                    auto extra = mode == 3 ? fmt::format(" --metrics 127.0.0.1:{}", metrics_port) : std::string();
                    if (sh(fmt::format("{}/izwatch start {} --journal {} --state-dir {} {}{}", g_bin.string(), w.string(),
                                       journal.string(), (g_mount / "state").string(), g_agent_args, extra)) != 0)
                        die("izwatch start failed");
                    auto st = agent_status(w);
                    pid = st.value("pid", 0);
                    start_lsn = st.value("head_lsn", 0ull);
                }
                std::optional<NullFanotifyReader> null_reader;
                if (mode == 1) null_reader.emplace(w);
                double agent_cpu0 = with_agent ? agent_usage(pid).cpu_s : 0;
                std::optional<iz::bench::MetricsScraper> scraper;
                if (mode == 3) scraper.emplace(std::vector<uint16_t>{metrics_port});
                double cpu0 = own_cpu_seconds();
                auto t0 = Clock::now();
                wl.run(w);
                double secs = std::chrono::duration<double>(Clock::now() - t0).count();
                wall[mode].push_back(secs);
                cpu[mode].push_back(own_cpu_seconds() - cpu0);
                null_reader.reset();
                if (!with_agent) continue;
                // Scraped until the agent has caught up, as a Prometheus
                // would go on scraping: the agent's CPU is counted until then.
                sh(fmt::format("{}/izwatch sync {} --timeout 120", g_bin.string(), w.string()));
                if (scraper) {
                    scrapes += scraper->ok();
                    failed_scrapes += scraper->failed();
                    scraper.reset();
                }
                auto u = agent_usage(pid);
                agent_cpu[mode].push_back(u.cpu_s - agent_cpu0);
                peak_rss_kb = std::max(peak_rss_kb, u.peak_rss_kb);
                auto st = agent_status(w);
                overflows = std::max<uint64_t>(overflows, st.value("overflows", 0ull));
                sh(fmt::format("{}/izwatch stop {}", g_bin.string(), w.string()));
                wait_exited(pid);
                auto recs = records_after(journal, start_lsn);
                records = recs.size();
                missing = std::max(missing, wl.missing(recs, w));
            }
        }
        double vs_bare = median(wall[2]) / median(wall[0]);
        double vs_floor = median(wall[2]) / median(wall[1]);
        worst_bare = std::max(worst_bare, vs_bare);
        worst_floor = std::max(worst_floor, vs_floor);
        floor_vs_bare = std::max(floor_vs_bare, median(wall[1]) / median(wall[0]));
        if (wl.name.starts_with("cp -a")) cp_vs_bare = vs_bare;
        total_overflows += overflows;
        (wl.merged_renames ? merged_renames : total_missing) += missing;
        fmt::print("{:<38} {:>8.3f} {:>8.3f} {:>8.3f} {:>8.3f} {:>8.3f} {:>8} {:>8} {:>5} {:>9.3f} {:>7.1f}\n", wl.name,
                   median(wall[0]), median(wall[1]), median(wall[2]), vs_bare, vs_floor, records, missing, overflows,
                   median(agent_cpu[2]), peak_rss_kb / 1024.0);
        auto ratio = [](double a, double b) { return b > 0 ? fmt::format("{:.3f}", a / b) : std::string("-"); };
        fmt::print("{:<38} {:>8.3f} {:>8.3f} {:>8.3f} {:>8} {:>8} (the workload's own cpu)\n", "  ... workload cpu",
                   median(cpu[0]), median(cpu[1]), median(cpu[2]), ratio(median(cpu[2]), median(cpu[0])),
                   ratio(median(cpu[2]), median(cpu[1])));
        if (metrics) {
            double vs_agent = median(wall[3]) / median(wall[2]);
            double cpu_vs_agent = median(agent_cpu[2]) > 0 ? median(agent_cpu[3]) / median(agent_cpu[2]) : 1.0;
            worst_metrics = std::max(worst_metrics, vs_agent);
            // /proc counts CPU in 10 ms ticks: below 0.1 s of agent CPU a
            // tick or two is a large ratio that says nothing.
            if (median(agent_cpu[2]) >= 0.1) worst_metrics_cpu = std::max(worst_metrics_cpu, cpu_vs_agent);
            fmt::print("{:<38} {:>8} {:>8} {:>8.3f} {:>8} {:>8} {:>8} {:>8} {:>5} {:>9.3f} (with --metrics, scraped every 1 s: "
                       "{:.3f} x the agent's time without, agent cpu {:.3f} x, workload cpu {:.3f} vs {:.3f})\n",
                       "  ... agent with metrics", "", "", median(wall[3]), "", "", "", "", "", median(agent_cpu[3]),
                       vs_agent, cpu_vs_agent, median(cpu[3]), median(cpu[2]));
        }
    }
    cleanup();
    fmt::print("fanotify floor (a reader that only drains events, in batches as the agent reads: "
               "3 ms pause after a read of fewer than {} events) against bare: worst={:.3f}\n",
               NullFanotifyReader::kGatherBelow, floor_vs_bare);
    fmt::print("cp -a against bare: {:.3f}\n", cp_vs_bare);
    fmt::print("renames merged by the kernel into a queued identical event (not losses; the final tree is exact): {}\n",
               merged_renames);
    if (metrics)
        fmt::print("metrics: worst_vs_agent_without={:.3f} worst_agent_cpu_vs_without={:.3f} scrapes={} failed_scrapes={}\n",
                   worst_metrics, worst_metrics_cpu, scrapes, failed_scrapes);
    auto verify_s = only && *only ? std::nullopt : verify_seconds();
    fmt::print("capture: worst_vs_floor={:.3f} worst_vs_bare={:.3f} overflows={} missing_records={} verify_s={}\n",
               worst_floor, worst_bare, total_overflows, total_missing,
               verify_s ? fmt::format("{:.2f}", *verify_s) : std::string("n/a"));
    return 0;
}
