// What replication costs against rsync, in the same run. A source ext4
// image is watched by izwatch shipping to an izreplicate on 127.0.0.1; an
// rsync daemon on 127.0.0.1 serves a second replica. Each workload runs
// once on the source; both replicas start it in the same state (rsync is
// brought up to date, untimed, before it starts), and each is timed from
// the workload's start: intermezzo until `izwatch sync` returns, rsync until
// one `rsync -a --delete` after the workload returns. Afterwards both
// replicas are compared with the source.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kServerPort = 7471;
constexpr int kRsyncPort = 8731;

fs::path g_bin, g_tmp, g_src_mount, g_dst_mount, g_src_image, g_dst_image;
pid_t g_server = -1, g_rsyncd = -1;

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

void stop_child(pid_t& pid) {
    if (pid <= 0) return;
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 200 && ::waitpid(pid, nullptr, WNOHANG) == 0; ++i) ::usleep(10000);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
}

void cleanup() {
    if (!g_src_mount.empty()) sh(fmt::format("{}/izwatch stop {}/data >/dev/null 2>&1", g_bin.string(), g_src_mount.string()));
    stop_child(g_server);
    stop_child(g_rsyncd);
    for (auto* m : {&g_src_mount, &g_dst_mount})
        if (!m->empty()) {
            ::umount2(m->c_str(), MNT_DETACH);
            fs::remove_all(*m);
        }
    for (auto* i : {&g_src_image, &g_dst_image})
        if (!i->empty()) fs::remove(*i);
    if (!g_tmp.empty()) fs::remove_all(g_tmp);
}

[[noreturn]] void die(const std::string& msg) {
    fmt::print(stderr, "bench-replicate: {}\n", msg);
    cleanup();
    std::exit(1);
}

void on_signal(int) {
    cleanup();
    std::_Exit(130);
}

pid_t spawn(const std::vector<std::string>& argv, const fs::path& log) {
    pid_t pid = ::fork();
    if (pid < 0) die(fmt::format("fork: {}", std::strerror(errno)));
    if (pid == 0) {
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        _exit(127);
    }
    return pid;
}

// CPU seconds of a process: its own, or (children=true) those of the
// children it has reaped (the rsync daemon forks one per connection).
double cpu_seconds(pid_t pid, bool children = false) {
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string content((std::istreambuf_iterator<char>(stat)), {});
    auto close_paren = content.rfind(')');
    if (close_paren == std::string::npos) return 0;
    std::istringstream in(content.substr(close_paren + 2));
    std::vector<std::string> f;
    for (std::string x; in >> x;) f.push_back(x);
    size_t base = children ? 13 : 11;  // utime, stime / cutime, cstime (fields 14-17)
    if (f.size() <= base + 1) return 0;
    return (std::stod(f[base]) + std::stod(f[base + 1])) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Bytes the agent's connections to the server have had acknowledged.
uint64_t agent_wire_bytes() {
    auto out = capture_output(fmt::format("ss -tinH state established '( dport = :{} )' 2>/dev/null", kServerPort));
    uint64_t total = 0;
    std::regex re("bytes_acked:(\\d+)");
    for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it)
        total += std::stoull((*it)[1]);
    return total;
}

nlohmann::json agent_status(const fs::path& dir) {
    auto out = capture_output(fmt::format("{}/izwatch status --json {}", g_bin.string(), dir.string()));
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_discarded()) die("izwatch status --json gave no JSON: " + out);
    return j;
}

struct RsyncRun {
    double cpu_s = 0;
    uint64_t bytes_sent = 0;
};

RsyncRun run_rsync(const fs::path& src) {
    RsyncRun r;
    double daemon_before = cpu_seconds(g_rsyncd, true);
    auto out_file = g_tmp / "rsync.out";
    pid_t pid = spawn({"rsync", "-a", "--delete", "--stats", src.string() + "/",
                       fmt::format("rsync://127.0.0.1:{}/bench/", kRsyncPort)},
                      out_file);
    int status = 0;
    struct rusage ru{};
    ::wait4(pid, &status, 0, &ru);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("rsync failed; see its output in " + out_file.string());
    r.cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
              static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    // The daemon reaps its connection's child soon after the client exits.
    for (int i = 0; i < 100 && cpu_seconds(g_rsyncd, true) == daemon_before; ++i) ::usleep(10000);
    r.cpu_s += cpu_seconds(g_rsyncd, true) - daemon_before;
    std::ifstream in(out_file);
    std::string line;
    while (std::getline(in, line))
        if (line.starts_with("Total bytes sent:")) {
            std::string digits;
            for (char c : line.substr(17))
                if (std::isdigit(static_cast<unsigned char>(c))) digits += c;
            r.bytes_sent = digits.empty() ? 0 : std::stoull(digits);
        }
    return r;
}

// path -> type, mode, owner, mtime, size, content hash, link target (and,
// for the intermezzo replica, link count and xattrs: rsync -a keeps neither).
std::map<std::string, std::string> manifest(const fs::path& root, bool full) {
    std::map<std::string, std::string> out;
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
        struct stat st{};
        if (::lstat(it->path().c_str(), &st) != 0) continue;
        std::string line = fmt::format("{:o} {}:{} {}.{:09}", st.st_mode, st.st_uid, st.st_gid, st.st_mtim.tv_sec,
                                       st.st_mtim.tv_nsec);
        if (full) line += fmt::format(" n{}", st.st_nlink);
        if (S_ISREG(st.st_mode)) {
            line += fmt::format(" {}", st.st_size);
            XXH3_state_t* h = XXH3_createState();
            XXH3_64bits_reset(h);
            std::ifstream f(it->path(), std::ios::binary);
            std::vector<char> buf(1 << 20);
            while (f.read(buf.data(), static_cast<std::streamsize>(buf.size())) || f.gcount() > 0)
                XXH3_64bits_update(h, buf.data(), static_cast<size_t>(f.gcount()));
            line += fmt::format(" {:016x}", XXH3_64bits_digest(h));
            XXH3_freeState(h);
        } else if (S_ISLNK(st.st_mode)) {
            line += " -> " + fs::read_symlink(it->path()).string();
        }
        out[it->path().lexically_relative(root).string()] = line;
    }
    return out;
}

size_t mismatches(const fs::path& src, const fs::path& replica, bool full) {
    auto a = manifest(src, full), b = manifest(replica, full);
    size_t n = 0;
    auto show = [&](const std::string& what) {
        // The first few, so a mismatch can be looked into.
        if (n++ < 3) fmt::print(stderr, "  {} differs: {}\n", replica.string(), what);
    };
    for (auto& [p, l] : a)
        if (auto it = b.find(p); it == b.end()) show(p + " missing");
        else if (it->second != l) show(fmt::format("{}: source {} replica {}", p, l, it->second));
    for (auto& [p, l] : b)
        if (!a.count(p)) show(p + " only on the replica");
    return n;
}

void write_random(const fs::path& p, size_t bytes, uint32_t seed) {
    std::mt19937_64 rng(seed);
    std::ofstream f(p, std::ios::binary);
    std::vector<uint64_t> buf(1 << 17);
    for (size_t done = 0; done < bytes; done += buf.size() * 8) {
        for (auto& x : buf) x = rng();
        f.write(reinterpret_cast<const char*>(buf.data()),
                static_cast<std::streamsize>(std::min(bytes - done, buf.size() * 8)));
    }
}

struct Workload {
    std::string name;
    std::function<void(const fs::path&)> prepare;  // untimed, replicated before the start
    std::function<void(const fs::path&)> run;
};

std::vector<Workload> workloads() {
    return {
        {"tree copy (cp -a /usr/include)", [](const fs::path&) {},
         [](const fs::path& d) {
             if (sh(fmt::format("cp -a /usr/include {}/include", d.string())) != 0) die("cp -a failed");
         }},
        {"1 MiB overwrite in a 256 MiB file", [](const fs::path& d) { write_random(d / "big.bin", 256u << 20, 1); },
         [](const fs::path& d) {
             std::mt19937 rng(2);
             std::string data(1 << 20, '\0');
             for (auto& c : data) c = static_cast<char>(rng());
             int fd = ::open((d / "big.bin").c_str(), O_WRONLY | O_CLOEXEC);
             if (fd < 0 || ::pwrite(fd, data.data(), data.size(), 128 << 20) != static_cast<ssize_t>(data.size()))
                 die("overwrite failed");
             ::close(fd);
         }},
        {"rename of the include tree", [](const fs::path&) {},
         [](const fs::path& d) { fs::rename(d / "include", d / "include-renamed"); }},
        {"200 files appended 50 times each", [](const fs::path& d) { fs::create_directories(d / "logs"); },
         [](const fs::path& d) {
             std::string line(200, 'x');
             line.back() = '\n';
             for (int round = 0; round < 50; ++round)
                 for (int i = 0; i < 200; ++i) {
                     int fd = ::open((d / "logs" / fmt::format("log{:03}", i)).c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                     if (fd < 0 || ::write(fd, line.data(), line.size()) < 0) die("append failed");
                     ::close(fd);
                 }
         }},
        {"chmod/touch/symlink/hardlink mix", [](const fs::path&) {},
         [](const fs::path& d) {
             // Listed first: the links made below must not be visited.
             std::vector<fs::path> files;
             int i = 0;
             for (auto& e : fs::recursive_directory_iterator(d / "include-renamed"))
                 if (e.is_regular_file() && !e.is_symlink() && ++i % 10 == 0) files.push_back(e.path());
             i = 0;
             for (auto& p : files) {
                 ++i;
                 ::chmod(p.c_str(), 0600);
                 struct timespec ts[2] = {{1'600'000'000 + i, 0}, {1'600'000'000 + i, 0}};
                 ::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW);
                 ::symlink(p.filename().c_str(), (p.string() + ".sym").c_str());
                 ::link(p.c_str(), (p.string() + ".hard").c_str());
             }
         }},
        {"deleting the tree", [](const fs::path&) {},
         [](const fs::path& d) { fs::remove_all(d / "include-renamed"); }},
    };
}

void izsync(const fs::path& dir) {
    if (sh(fmt::format("{}/izwatch sync {} --timeout 300", g_bin.string(), dir.string())) != 0)
        die("izwatch sync failed");
}

}  // namespace

int main() {
    if (geteuid() != 0) {
        fmt::print(stderr, "bench-replicate: needs root (loop mounts, fanotify)\n");
        return 1;
    }
    g_bin = fs::canonical("/proc/self/exe").parent_path();
    for (auto* p : {"izwatch", "izreplicate"})
        if (!fs::exists(g_bin / p)) die(fmt::format("{} is not built next to this benchmark", p));
    if (sh("command -v rsync >/dev/null") != 0) die("rsync is not installed (scripts/install-deps.sh installs it)");
    ::signal(SIGINT, on_signal);
    ::signal(SIGTERM, on_signal);
    ::signal(SIGHUP, on_signal);
    ::signal(SIGPIPE, on_signal);  // output piped into a pager or head

    auto id = getpid();
    g_tmp = fs::temp_directory_path() / fmt::format("iz-bench-replicate-{}", id);
    fs::create_directories(g_tmp);
    g_src_image = fmt::format("/dev/shm/iz-bench-repl-src-{}.img", id);
    g_dst_image = fmt::format("/dev/shm/iz-bench-repl-dst-{}.img", id);
    g_src_mount = g_tmp / "src";
    g_dst_mount = g_tmp / "dst";
    for (auto& [image, mount] : {std::pair{g_src_image, g_src_mount}, std::pair{g_dst_image, g_dst_mount}}) {
        fs::create_directories(mount);
        if (sh(fmt::format("truncate -s 3G {0} && mkfs.ext4 -q -F {0} && mount -o loop {0} {1}", image.string(),
                           mount.string())) != 0)
            die("could not make an ext4 image");
    }
    auto src = g_src_mount / "data";
    auto iz_root = g_dst_mount / "iz";
    auto rs_root = g_dst_mount / "rsync";
    fs::create_directories(src);
    fs::create_directories(iz_root);
    fs::create_directories(rs_root);

    auto key = g_tmp / "key";
    if (sh(fmt::format("{}/izreplicate keygen {} >/dev/null", g_bin.string(), key.string())) != 0) die("keygen failed");
    g_server = spawn({(g_bin / "izreplicate").string(), "--root", iz_root.string(), "--listen",
                      fmt::format("127.0.0.1:{}", kServerPort), "--key", key.string(), "--foreground"},
                     g_tmp / "izreplicate.log");
    std::ofstream(g_tmp / "rsyncd.conf") << fmt::format(
        "use chroot = no\nmunge symlinks = no\nuid = root\ngid = root\n[bench]\npath = {}\nread only = false\n", rs_root.string());
    g_rsyncd = spawn({"rsync", "--daemon", "--no-detach", "--config=" + (g_tmp / "rsyncd.conf").string(),
                      fmt::format("--port={}", kRsyncPort), "--address=127.0.0.1"},
                     g_tmp / "rsyncd.log");
    ::usleep(300000);
    if (sh(fmt::format("{}/izwatch start {} --server 127.0.0.1:{} --key {} --journal {} --state-dir {}", g_bin.string(),
                       src.string(), kServerPort, key.string(), (g_src_mount / "journal").string(),
                       (g_src_mount / "state").string())) != 0)
        die("izwatch start failed");
    int agent = agent_status(src).value("pid", 0);
    izsync(src);
    run_rsync(src);

    fmt::print("bench-replicate: ext4 images in /dev/shm, izreplicate and an rsync daemon on 127.0.0.1\n");
    fmt::print("{:<36} {:>8} {:>8} {:>7} {:>8} {:>12} {:>12} {:>8} {:>8} {:>8} {:>6} {:>6}\n", "workload", "work s",
               "iz s", "rsync s", "ratio", "iz bytes", "rsync bytes", "agent cpu", "server cpu", "rsync cpu",
               "iz ok", "rs ok");
    double worst = 0;
    uint64_t bigfile_bytes = 0;
    double worst_after_end_ms = 0;
    for (auto& wl : workloads()) {
        wl.prepare(src);
        izsync(src);
        run_rsync(src);
        uint64_t wire0 = agent_wire_bytes();
        double agent0 = cpu_seconds(agent), server0 = cpu_seconds(g_server);

        auto t0 = Clock::now();
        wl.run(src);
        auto t_end = Clock::now();
        izsync(src);
        auto t_iz = Clock::now();
        uint64_t wire = agent_wire_bytes() - std::min(wire0, agent_wire_bytes());
        double agent_cpu = cpu_seconds(agent) - agent0, server_cpu = cpu_seconds(g_server) - server0;
        auto t_rs0 = Clock::now();
        auto rs = run_rsync(src);
        auto t_rs1 = Clock::now();

        auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
        double work = secs(t0, t_end);
        double iz_time = secs(t0, t_iz);
        double rsync_time = work + secs(t_rs0, t_rs1);
        double ratio = iz_time / rsync_time;
        worst = std::max(worst, ratio);
        worst_after_end_ms = std::max(worst_after_end_ms, secs(t_end, t_iz) * 1000);
        if (wl.name.starts_with("1 MiB")) bigfile_bytes = wire;
        auto iz_bad = mismatches(src, iz_root / "data", true);
        auto rs_bad = mismatches(src, rs_root, false);
        fmt::print("{:<36} {:>8.3f} {:>8.3f} {:>7.3f} {:>8.3f} {:>12} {:>12} {:>8.2f} {:>8.2f} {:>8.2f} {:>6} {:>6}\n",
                   wl.name, work, iz_time, rsync_time, ratio, wire, rs.bytes_sent, agent_cpu, server_cpu, rs.cpu_s,
                   iz_bad == 0 ? "yes" : fmt::format("{}!", iz_bad), rs_bad == 0 ? "yes" : fmt::format("{}!", rs_bad));
    }
    cleanup();
    fmt::print("times run from the workload's start; 'ok' compares each replica with the source (intermezzo:\n"
               "also link counts and xattrs); iz bytes are TCP bytes acknowledged on the agent's connection.\n");
    fmt::print("longest wait for izwatch sync after a workload ended: {:.0f} ms\n", worst_after_end_ms);
    fmt::print("replicate: worst_time_ratio_vs_rsync={:.3f} bigfile_bytes={}\n", worst, bigfile_bytes);
    return 0;
}
