// How fast a change on one agent of a shared fileset is present on another,
// against rsync in the same run: a push from the first agent's directory to
// a server directory, then a pull from there into the second's.
//
// Everything runs in a network namespace of its own, over its loopback, so
// that its byte counters hold this run's traffic only (IP and TCP headers
// included, each packet counted once). Intermezzo: two izwatch agents in
// send-receive mode (A and B) share one fileset through an izreplicate,
// each directory on its own ext4 image in /dev/shm. rsync: the same changes
// made on a source of its own (another image), `rsync -a --delete` pushed to
// an rsync daemon whose module is a third image, then pulled from it into a
// fourth, one after the other (a source of its own rather than A's
// directory, so that neither replicator sees the other's work; it goes
// through the same states). rsync runs without -z, as in bench-replicate;
// intermezzo compresses as it does by default. The benchmark itself enters
// the namespace, so no `ip netns exec` is timed with each rsync.
//
// Two workloads. Single files: N changes (300 by default, `bench-share N`),
// one new 4 KiB file each, made one at a time; intermezzo's latency is from
// just before the file is opened on A until B holds its whole content (a
// poll every 200 us), rsync's until the pull after it returns (N/3 of
// them: each walks the whole tree twice). Tree copy: `cp -a` of a
// 1,000-file tree (10 directories, 0-16 KiB each) into the shared
// directory, three times each way in alternating order; intermezzo until
// every file is on B at its full size, rsync until the pull returns.
// Afterwards both agents sync and the three intermezzo trees are compared
// by the full manifest (tests/support), as are rsync's source and its copy.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_images.hpp"
#include "support/netns.hpp"
#include "support/process.hpp"
#include "support/scratch_fs.hpp"
#include "support/tree.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using iz::test::run_process;

namespace {

constexpr uint16_t kServerPort = 7411;
constexpr uint16_t kRsyncPort = 8730;
constexpr const char* kFileset = "share";
constexpr int kTreeDirs = 10, kTreeFilesPerDir = 100, kTreeRuns = 3;

struct Run {
    fs::path bin, tmp, log;
    std::unique_ptr<iz::test::Netns> ns;
    std::vector<std::unique_ptr<iz::test::ScratchFs>> images;
    std::unique_ptr<iz::test::ChildProcess> server, rsyncd;
    std::vector<fs::path> watched;
    std::map<fs::path, std::string> ids;
};
Run g;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// Each agent's run directory (its control socket) is named by its id: a
// socket's path must stay short.
std::vector<std::string> run_env(const fs::path& dir) {
    return {"IZ_RUN_DIR=" + (g.tmp / ("run-" + g.ids.at(dir))).string()};
}

// Runs argv to its end; its output goes into the run's log.
iz::test::ProcessResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {}) {
    auto r = run_process(argv, env, std::chrono::minutes(30));
    std::ofstream(g.log, std::ios::app) << r.out << r.err;
    return r;
}

void cleanup() {
    for (auto& dir : g.watched) run({(g.bin / "izwatch").string(), "stop", dir.string()}, run_env(dir));
    g.watched.clear();
    g.server.reset();
    g.rsyncd.reset();
    while (!g.images.empty()) g.images.pop_back();  // the last mounted first
    g.ns.reset();
    std::error_code ec;
    if (!g.tmp.empty()) fs::remove_all(g.tmp, ec);
}

[[noreturn]] void die(const std::string& msg) {
    std::fflush(stdout);
    fmt::print(stderr, "bench-share: {}\n{}\n", msg, iz::bench::log_tail(g.log));
    cleanup();
    std::exit(1);
}

fs::path mount_image(const std::string& name) {
    auto at = iz::bench::mount_ext4_image(g.images, 1024, "bench-share", name);
    if (!at) die(at.error().message);
    return *at;
}

// Bytes sent over the namespace's loopback so far (every packet once).
uint64_t wire_bytes() {
    auto r = run_process({"ip", "-j", "-s", "link", "show", "lo"});
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || !j.is_array() || j.empty()) die("ip -s link show lo gave no JSON: " + r.out + r.err);
    return j[0]["stats64"]["tx"].value("bytes", uint64_t{0});
}

void start_agent(const fs::path& dir, const std::string& id, const fs::path& key) {
    g.ids[dir] = id;
    fs::create_directories(g.tmp / ("run-" + id));
    auto r = run({(g.bin / "izwatch").string(), "start", dir.string(), "--server", fmt::format("127.0.0.1:{}", kServerPort),
                  "--key", key.string(), "--journal", (g.tmp / id / "journal").string(), "--state-dir",
                  (g.tmp / id / "state").string(), "--mode", "send-receive", "--agent-id", id, "--fileset", kFileset,
                  "--scrub-interval", "0"},
                 run_env(dir));
    if (r.exit_code != 0) die(fmt::format("izwatch start for {} failed: {}", id, r.err));
    g.watched.push_back(dir);
}

void izsync(const fs::path& dir) {
    auto r = run({(g.bin / "izwatch").string(), "sync", dir.string(), "--timeout", "300"}, run_env(dir));
    if (r.exit_code != 0) die(fmt::format("izwatch sync {} failed: {}", dir.string(), r.err));
}

void rsync(const std::string& from, const std::string& to) {
    auto r = run({"rsync", "-a", "--delete", from, to});
    if (r.exit_code != 0) die(fmt::format("rsync {} {} failed ({}): {}", from, to, r.exit_code, r.err));
}

std::string rsync_url() { return fmt::format("rsync://127.0.0.1:{}/srv/", kRsyncPort); }

// Push from A's directory, then pull into B's.
void rsync_round(const fs::path& a, const fs::path& b) {
    rsync(a.string() + "/", rsync_url());
    rsync(rsync_url(), b.string() + "/");
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    auto i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

double median(const std::vector<double>& v) { return percentile(v, 0.5); }

void write_bytes(const fs::path& p, const std::string& data) {
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size()))
        die(fmt::format("writing {}: {}", p.string(), std::strerror(errno)));
    ::close(fd);
}

// Whether `p` holds exactly `want` (read whole; a file being replaced is
// read through whichever version the name holds).
bool holds(const fs::path& p, const std::string& want) {
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::string buf(want.size() + 1, '\0');
    ssize_t n = ::read(fd, buf.data(), buf.size());
    ::close(fd);
    return n == static_cast<ssize_t>(want.size()) && std::memcmp(buf.data(), want.data(), want.size()) == 0;
}

std::string content_of(int i) {
    std::mt19937_64 rng(static_cast<uint64_t>(i) * 7919 + 1);
    std::string s(4096, '\0');
    for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
    return s;
}

// The tree a copy brings in: 10 directories of 100 files of 0 to 16 KiB.
// Returns each file's path (relative) and size.
std::vector<std::pair<std::string, off_t>> make_template(const fs::path& root) {
    std::mt19937_64 rng(20261207);
    std::vector<std::pair<std::string, off_t>> files;
    for (int d = 0; d < kTreeDirs; ++d) {
        fs::create_directories(root / fmt::format("d{:02}", d));
        for (int f = 0; f < kTreeFilesPerDir; ++f) {
            auto rel = fmt::format("d{:02}/f{:03}.dat", d, f);
            std::string data(rng() % 16385, '\0');
            for (auto& c : data) c = static_cast<char>('a' + rng() % 26);
            write_bytes(root / rel, data);
            files.emplace_back(rel, static_cast<off_t>(data.size()));
        }
    }
    return files;
}

bool tree_arrived(const fs::path& root, const std::vector<std::pair<std::string, off_t>>& files) {
    struct stat st{};
    for (auto it = files.rbegin(); it != files.rend(); ++it)
        if (::stat((root / it->first).c_str(), &st) != 0 || st.st_size != it->second) return false;
    return true;
}

// Waits (polling every 200 us) until `cond` holds; dies after a minute.
void await(const std::function<bool()>& cond, const std::string& what) {
    auto deadline = Clock::now() + std::chrono::minutes(1);
    while (!cond()) {
        if (Clock::now() > deadline) die("not there after a minute: " + what);
        ::usleep(200);
    }
}

size_t differing_lines(const std::string& a, const std::string& b) {
    auto lines = [](const std::string& s) {
        std::set<std::string> out;
        std::istringstream in(s);
        for (std::string l; std::getline(in, l);) out.insert(l);
        return out;
    };
    auto la = lines(a), lb = lines(b);
    size_t n = 0;
    for (auto& l : la) n += !lb.count(l);
    for (auto& l : lb) n += !la.count(l);
    return n;
}

}  // namespace

int main(int argc, char** argv) {
    if (::geteuid() != 0) {
        fmt::print(stderr, "bench-share: needs root (loop mounts, fanotify, a network namespace)\n");
        return 1;
    }
    int singles = argc > 1 ? std::atoi(argv[1]) : 300;
    if (singles < 10) singles = 10;
    int rsync_singles = std::max(10, singles / 3);
    // Mounts in a mount namespace of our own: they go away with this run.
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        fmt::print(stderr, "bench-share: a private mount namespace: {}\n", std::strerror(errno));
        return 1;
    }
    g.bin = fs::canonical("/proc/self/exe").parent_path();
    g.tmp = fs::temp_directory_path() / fmt::format("iz-bench-share-{}", ::getpid());
    fs::create_directories(g.tmp);
    g.log = g.tmp / "commands.log";
    for (auto* p : {"izwatch", "izreplicate"})
        if (!fs::exists(g.bin / p)) die(fmt::format("{} is not built next to this benchmark", p));
    if (run_process({"rsync", "--version"}).exit_code != 0)
        die("rsync is not installed (scripts/install-deps.sh installs it)");
    auto ns = iz::test::Netns::make("bench-share");
    if (!ns) die("a network namespace: " + ns.error().message);
    g.ns = std::move(*ns);
    // This process and every one it starts live in the namespace: no `ip
    // netns exec` in front of each rsync, whose cost would count as rsync's.
    {
        int fd = ::open(fmt::format("/run/netns/{}", g.ns->name()).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) die(fmt::format("entering the network namespace: {}", std::strerror(errno)));
        ::close(fd);
    }

    // Intermezzo: A and B share the fileset through the server.
    auto a = mount_image("a") / "data";
    auto b = mount_image("b") / "data";
    auto server_root = mount_image("server");
    // rsync: its own source, the daemon's module, and the pull's target.
    auto a_rs = mount_image("a-rsync") / "data";
    auto srv_rs = mount_image("srv-rsync") / "data";
    auto b_rs = mount_image("b-rsync") / "data";
    auto template_root = mount_image("template") / "tree";
    for (auto& d : {a, b, a_rs, srv_rs, b_rs}) fs::create_directories(d);
    auto tree = make_template(template_root);

    auto key = g.tmp / "key";
    if (run({(g.bin / "izreplicate").string(), "keygen", key.string()}).exit_code != 0) die("izreplicate keygen failed");
    auto server_log = g.tmp / "izreplicate.log";
    g.server = std::make_unique<iz::test::ChildProcess>(
        std::vector<std::string>{(g.bin / "izreplicate").string(), "--root", server_root.string(), "--listen",
                                 fmt::format("127.0.0.1:{}", kServerPort), "--key", key.string(), "--foreground",
                                 "--log-file", server_log.string()},
        g.tmp / "izreplicate.out", g.tmp / "izreplicate.err");
    auto slurp = [](const fs::path& p) {
        std::ifstream in(p);
        return std::string((std::istreambuf_iterator<char>(in)), {});
    };
    if (!iz::test::eventually([&] { return slurp(server_log).find("serving") != std::string::npos; },
                              std::chrono::seconds(20)))
        die("izreplicate did not start: " + slurp(server_log));
    auto conf = g.tmp / "rsyncd.conf";
    std::ofstream(conf) << fmt::format(
        "use chroot = yes\nreverse lookup = no\nmunge symlinks = no\nuid = root\ngid = root\nlog file = {}\n[srv]\npath = {}\n"
        "read only = false\n",
        (g.tmp / "rsyncd.log").string(), srv_rs.string());
    g.rsyncd = std::make_unique<iz::test::ChildProcess>(
        std::vector<std::string>{"rsync", "--daemon", "--no-detach", "--config=" + conf.string(),
                                 fmt::format("--port={}", kRsyncPort), "--address=127.0.0.1"},
        g.tmp / "rsyncd.out", g.tmp / "rsyncd.err");
    if (!iz::test::eventually([&] { return run({"rsync", fmt::format("rsync://127.0.0.1:{}/", kRsyncPort)}).exit_code == 0; },
                              std::chrono::seconds(20)))
        die("the rsync daemon did not start");
    start_agent(a, "a", key);
    start_agent(b, "b", key);
    izsync(a);
    izsync(b);

    fmt::print("bench-share: ext4 images in /dev/shm, one network namespace; izwatch A and B (send-receive) through "
               "izreplicate, against rsync -a --delete push to a daemon then pull\n");
    std::fflush(stdout);

    // ---- single files ----
    fs::create_directories(a / "single");
    fs::create_directories(a_rs / "single");
    for (int i = 0; i < 5; ++i) {  // warm-up, not counted
        write_bytes(a / "single" / fmt::format("warm{}", i), content_of(-1 - i));
        await([&] { return holds(b / "single" / fmt::format("warm{}", i), content_of(-1 - i)); }, "a warm-up file on B");
    }
    rsync_round(a_rs, b_rs);
    std::vector<double> iz_single, rs_single;
    uint64_t w0 = wire_bytes();
    for (int i = 0; i < singles; ++i) {
        auto name = fmt::format("f{:04}", i);
        auto data = content_of(i);
        auto t = Clock::now();
        write_bytes(a / "single" / name, data);
        await([&] { return holds(b / "single" / name, data); }, "a single file on B");
        iz_single.push_back(ms_since(t));
        ::usleep(10000);
    }
    uint64_t iz_single_bytes = wire_bytes() - w0;
    w0 = wire_bytes();
    for (int i = 0; i < rsync_singles; ++i) {
        auto name = fmt::format("f{:04}", i);
        auto t = Clock::now();
        write_bytes(a_rs / "single" / name, content_of(i));
        rsync_round(a_rs, b_rs);
        rs_single.push_back(ms_since(t));
        if (!holds(b_rs / "single" / name, content_of(i))) die("rsync did not bring " + name);
    }
    uint64_t rs_single_bytes = wire_bytes() - w0;
    // Per change: rsync made fewer of them.
    double iz_single_per = static_cast<double>(iz_single_bytes) / singles;
    double rs_single_per = static_cast<double>(rs_single_bytes) / rsync_singles;

    // ---- tree copies ----
    std::vector<double> iz_tree, rs_tree;
    uint64_t iz_tree_bytes = 0, rs_tree_bytes = 0;
    auto iz_copy = [&](int k) {
        auto dest = a / fmt::format("tree{}", k);
        uint64_t before = wire_bytes();
        auto t = Clock::now();
        if (run_process({"cp", "-a", template_root.string(), dest.string()}).exit_code != 0) die("cp -a failed");
        await([&] { return tree_arrived(b / dest.filename(), tree); }, "the tree on B");
        iz_tree.push_back(ms_since(t));
        iz_tree_bytes += wire_bytes() - before;
    };
    auto rs_copy = [&](int k) {
        auto dest = a_rs / fmt::format("tree{}", k);
        uint64_t before = wire_bytes();
        auto t = Clock::now();
        if (run_process({"cp", "-a", template_root.string(), dest.string()}).exit_code != 0) die("cp -a failed");
        rsync_round(a_rs, b_rs);
        rs_tree.push_back(ms_since(t));
        rs_tree_bytes += wire_bytes() - before;
        if (!tree_arrived(b_rs / dest.filename(), tree)) die("rsync did not bring the tree");
    };
    for (int k = 0; k < kTreeRuns; ++k) {
        if (k % 2 == 0) {
            iz_copy(k);
            rs_copy(k);
        } else {
            rs_copy(k);
            iz_copy(k);
        }
    }

    // ---- what each left ----
    for (int round = 0; round < 2; ++round) {
        izsync(a);
        izsync(b);
    }
    auto ma = iz::test::manifest(a), mb = iz::test::manifest(b), ms = iz::test::manifest(server_root / kFileset);
    size_t iz_diff = differing_lines(ma, mb) + differing_lines(ma, ms);
    auto mrs_a = iz::test::manifest(a_rs), mrs_b = iz::test::manifest(b_rs);
    size_t rs_diff = differing_lines(mrs_a, mrs_b);
    if (iz_diff) {
        auto kept = fs::temp_directory_path() / fmt::format("bench-share-manifests-{}.txt", ::getpid());
        std::ofstream(kept) << "== A\n" << ma << "== B\n" << mb << "== server\n" << ms;
        fmt::print(stderr, "bench-share: the intermezzo trees differ; their manifests are kept in {}\n", kept.string());
    }
    cleanup();

    double p50 = percentile(iz_single, 0.5), p99 = percentile(iz_single, 0.99);
    double rs50 = percentile(rs_single, 0.5), rs99 = percentile(rs_single, 0.99);
    double tree_iz = median(iz_tree), tree_rs = median(rs_tree);
    constexpr const char* kRow = "{:<22} {:>10} {:>10} {:>10} {:>10} {:>8} {:>12} {:>12} {:>8}\n";
    fmt::print(fmt::runtime(kRow), "workload", "iz p50 ms", "iz p99 ms", "rs p50 ms", "rs p99 ms", "ratio", "iz bytes",
               "rsync bytes", "ratio");
    fmt::print(fmt::runtime(kRow), fmt::format("single 4 KiB file x{}", singles), fmt::format("{:.1f}", p50),
               fmt::format("{:.1f}", p99), fmt::format("{:.1f}", rs50), fmt::format("{:.1f}", rs99),
               fmt::format("{:.3f}", p50 / rs50), fmt::format("{:.0f}", iz_single_per),
               fmt::format("{:.0f}", rs_single_per), fmt::format("{:.3f}", iz_single_per / rs_single_per));
    fmt::print(fmt::runtime(kRow), fmt::format("tree copy, {} files", tree.size()), fmt::format("{:.1f}", tree_iz), "-",
               fmt::format("{:.1f}", tree_rs), "-", fmt::format("{:.3f}", tree_iz / tree_rs),
               fmt::format("{}", iz_tree_bytes / kTreeRuns), fmt::format("{}", rs_tree_bytes / kTreeRuns),
               fmt::format("{:.3f}", static_cast<double>(iz_tree_bytes) / static_cast<double>(rs_tree_bytes)));
    fmt::print(
        "single: a new 4 KiB file on A until B holds it (iz: polled every 200 us; rsync: {} rounds of push then pull).\n"
        "tree copy: median of {} runs of `cp -a` until every file is on B at its size. bytes: the namespace's loopback\n"
        "(IP and TCP headers included), per change for single files and per copy for the tree. Manifests afterwards:\n"
        "intermezzo A/B/server differ in {} lines, rsync source/copy in {} (rsync compares directory mtimes to the second).\n",
        rsync_singles, kTreeRuns, iz_diff, rs_diff);
    double bytes_ratio = (iz_single_per * rsync_singles + static_cast<double>(iz_tree_bytes)) /
                         (rs_single_per * rsync_singles + static_cast<double>(rs_tree_bytes));
    fmt::print("share: p50_ms={:.1f} p99_ms={:.1f} vs_rsync={:.3f} bytes_ratio={:.3f}\n", p50, p99, p50 / rs50,
               bytes_ratio);
    return iz_diff == 0 ? 0 : 2;
}
