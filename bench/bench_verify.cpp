// What `izwatch verify` costs on a 100,000-file tree whose replica is
// identical: its time and the bytes it puts on the wire, against baselines
// in the same run that read the same trees (plain XXH3 hashing of the
// source tree on one thread, and `rsync -an --checksum --delete` between
// the source and the replica, which reads both).
//
// The source and the replica live on their own ext4 images in /dev/shm;
// izwatch ships to an izreplicate on 127.0.0.1. The tree is made before the
// agent starts (its baseline scan journals it), replicated, and then
// verified twice: cold (nothing hashed before on either side) and warm
// (both sides' content hashes cached by inode, size, mtime and ctime).
// Both trees are in the page cache, as they are
// right after they were written: dropping caches would be everybody's on
// this machine.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

#include <fmt/format.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_images.hpp"
#include "support/process.hpp"
#include "support/scratch_fs.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kDirs = 100;
constexpr int kFilesPerDir = 1000;

struct Run {
    fs::path bin, tmp, log;
    std::vector<std::unique_ptr<iz::test::ScratchFs>> images;
    fs::path watched;
    std::unique_ptr<iz::test::ChildProcess> server;
};
Run g;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Runs argv (searched in PATH) to its end; stdout into `out` when given,
// everything else into the run's log.
int run(const std::vector<std::string>& argv, std::string* out = nullptr) {
    auto r = iz::test::run_process(argv, {}, std::chrono::hours(1));
    std::ofstream(g.log, std::ios::app) << (out ? "" : r.out) << r.err;
    if (out) *out = std::move(r.out);
    return r.exit_code;
}

void cleanup() {
    if (!g.watched.empty()) run({(g.bin / "izwatch").string(), "stop", g.watched.string()});
    g.server.reset();
    while (!g.images.empty()) g.images.pop_back();  // the last mounted first
    std::error_code ec;
    if (!g.tmp.empty()) fs::remove_all(g.tmp, ec);
}

[[noreturn]] void die(const std::string& msg) {
    std::fflush(stdout);
    fmt::print(stderr, "bench-verify: {}\n{}\n", msg, iz::bench::log_tail(g.log));
    cleanup();
    std::exit(1);
}

fs::path mount_image(const std::string& name) {
    auto at = iz::bench::mount_ext4_image(g.images, 1024, "bench-verify", name, {"-N", "250000"});
    if (!at) die(at.error().message);
    return *at;
}

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

// 100 directories of 1,000 files of 0 to 3 KiB (deterministic), some with
// an xattr, some symlinks. Returns the bytes of file data.
uint64_t make_tree(const fs::path& root) {
    std::mt19937_64 rng(20261207);
    uint64_t bytes = 0;
    std::string data;
    for (int d = 0; d < kDirs; ++d) {
        auto dir = root / fmt::format("dir{:03}", d);
        fs::create_directories(dir);
        for (int f = 0; f < kFilesPerDir; ++f) {
            auto p = dir / fmt::format("file{:04}.dat", f);
            if (f % 100 == 99) {
                fs::create_symlink(fmt::format("file{:04}.dat", f - 1), p);
                continue;
            }
            data.resize(rng() % 3072);
            for (auto& c : data) c = static_cast<char>('a' + rng() % 26);
            int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0 || ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size()))
                die(fmt::format("writing {}: {}", p.string(), std::strerror(errno)));
            if (f % 50 == 0) ::fsetxattr(fd, "user.tag", "bench", 5, 0);
            ::close(fd);
            bytes += data.size();
        }
    }
    return bytes;
}

// The baseline: every regular file's content hashed with XXH3-128 on one thread.
double plain_hash(const fs::path& root) {
    auto t = Clock::now();
    std::string buf(1 << 20, '\0');
    XXH128_hash_t acc{0, 0};
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
        std::error_code ec;
        if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;
        int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = ::read(fd, buf.data(), buf.size());
        ::close(fd);
        auto h = XXH3_128bits(buf.data(), n > 0 ? static_cast<size_t>(n) : 0);
        acc.low64 ^= h.low64;
        acc.high64 ^= h.high64;
    }
    if (acc.low64 == 42) fmt::print("");  // keeps the hashing from being optimised away
    return since(t);
}

struct Verify {
    double seconds = 0;
    uint64_t wire_bytes = 0;
    bool equal = false;
};

Verify verify() {
    Verify v;
    std::string out;
    auto t = Clock::now();
    int code = run({(g.bin / "izwatch").string(), "verify", g.watched.string(), "--json"}, &out);
    v.seconds = since(t);
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_discarded() || !j.contains("servers")) die(fmt::format("izwatch verify (exit {}) gave no verdict: {}", code, out));
    for (auto& s : j["servers"]) {
        v.wire_bytes += s.value("wire_bytes", uint64_t{0});
        v.equal = s.value("equal", false);
    }
    if (code != 0 || !v.equal) die("izwatch verify found the replica different: " + out);
    return v;
}

}  // namespace

int main() {
    if (::geteuid() != 0) {
        fmt::print(stderr, "bench-verify: needs root (loop mounts, fanotify)\n");
        return 1;
    }
    // Mounts in a mount namespace of our own: they go away with this run.
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        fmt::print(stderr, "bench-verify: a private mount namespace: {}\n", std::strerror(errno));
        return 1;
    }
    g.bin = fs::canonical("/proc/self/exe").parent_path();
    g.tmp = fs::temp_directory_path() / fmt::format("iz-bench-verify-{}", ::getpid());
    fs::create_directories(g.tmp / "run");
    g.log = g.tmp / "commands.log";
    ::setenv("IZ_RUN_DIR", (g.tmp / "run").c_str(), 1);
    for (auto* p : {"izwatch", "izreplicate"})
        if (!fs::exists(g.bin / p)) die(fmt::format("{} is not built next to this benchmark", p));
    bool have_rsync = run({"rsync", "--version"}) == 0;

    auto src = mount_image("src") / "data";
    auto dst_root = mount_image("dst");
    fs::create_directories(src);
    auto t = Clock::now();
    uint64_t data_bytes = make_tree(src);
    fmt::print("bench-verify: {} files in {} directories, {:.1f} MiB of data, made in {:.1f} s\n", kDirs * kFilesPerDir,
               kDirs, static_cast<double>(data_bytes) / 1048576.0, since(t));
    std::fflush(stdout);

    auto key = g.tmp / "key";
    if (run({(g.bin / "izreplicate").string(), "keygen", key.string()}) != 0) die("izreplicate keygen failed");
    auto port = free_port();
    g.server = std::make_unique<iz::test::ChildProcess>(
        std::vector<std::string>{(g.bin / "izreplicate").string(), "--root", dst_root.string(), "--listen",
                                 fmt::format("127.0.0.1:{}", port), "--key", key.string(), "--foreground", "--log-file",
                                 (g.tmp / "izreplicate.log").string()},
        g.tmp / "izreplicate.out", g.tmp / "izreplicate.err");
    ::usleep(300000);
    auto state = g.tmp / "agent";
    t = Clock::now();
    if (run({(g.bin / "izwatch").string(), "start", src.string(), "--server", fmt::format("127.0.0.1:{}", port), "--key",
             key.string(), "--state-dir", (state / "state").string(), "--journal", (state / "journal").string(),
             "--scrub-interval", "0"}) != 0)
        die("izwatch start failed");
    g.watched = src;
    if (run({(g.bin / "izwatch").string(), "sync", src.string(), "--timeout", "600"}) != 0) die("izwatch sync failed");
    fmt::print("replicated in {:.1f} s\n", since(t));
    std::fflush(stdout);

    auto cold = verify();
    auto warm = verify();
    double hash_s = plain_hash(src);
    double rsync_s = -1;
    if (have_rsync) {
        t = Clock::now();
        if (run({"rsync", "-an", "--checksum", "--delete", src.string() + "/", (dst_root / "data").string() + "/"}) != 0)
            die("rsync -an --checksum failed");
        rsync_s = since(t);
    }
    cleanup();

    fmt::print("izwatch verify, cold (both sides hash every file): {:6.2f} s, {} bytes on the wire\n", cold.seconds,
               cold.wire_bytes);
    fmt::print("izwatch verify, warm (content hashes cached):      {:6.2f} s, {} bytes on the wire\n", warm.seconds,
               warm.wire_bytes);
    fmt::print("baseline: XXH3-128 of the source's files, one thread: {:6.2f} s\n", hash_s);
    if (rsync_s >= 0) fmt::print("baseline: rsync -an --checksum --delete (local):   {:6.2f} s\n", rsync_s);
    else fmt::print("baseline: rsync is not installed\n");
    fmt::print("wire bytes are {:.5f}% of the tree's data\n", 100.0 * static_cast<double>(cold.wire_bytes) / static_cast<double>(data_bytes));
    fmt::print("verify: verify_s={:.2f} wire_bytes={} data_bytes={}\n", cold.seconds, cold.wire_bytes, data_bytes);
    return 0;
}
