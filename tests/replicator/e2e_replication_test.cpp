// End to end: the real izwatch in one network namespace ships to real
// izreplicate servers in others, over veth. After every scenario the
// replica's manifest equals the source's.
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>  // renameat2
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <cstdlib>

#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "e2e_hosts.hpp"
#include "e2e_workload.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace iz::test::e2e {
namespace {

std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

class Replication : public ::testing::Test {
protected:
    void SetUp() override {
        agent_ns_ = must(Netns::make("agent"));
        for (int i = 0; i < 2; ++i) server_ns_.push_back(must(Netns::make(fmt::format("srv{}", i))));
        for (int i = 0; i < 2; ++i) links_.push_back(must(VethLink::make(*agent_ns_, *server_ns_[i], 1 + i)));
        key_ = make_key(keys_);
        agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src");
    }

    void TearDown() override {
        if (HasFailure()) keep_logs();
        agent_.reset();  // stops izwatch before its servers, links and journal go
        journal_fs_.reset();
        servers_.clear();
        links_.clear();
        server_ns_.clear();
        agent_ns_.reset();
    }

    template <class T>
    static std::unique_ptr<T> must(Result<std::unique_ptr<T>> r) {
        if (!r) throw std::runtime_error(r.error().message);
        return std::move(*r);
    }

    ServerHost& add_server() {
        auto i = servers_.size();
        servers_.push_back(
            std::make_unique<ServerHost>(*server_ns_[i], links_[i]->address_b(), key_, fmt::format("e2e-dst{}", i)));
        servers_.back()->start();
        return *servers_.back();
    }

    std::vector<std::string> endpoints() const {
        std::vector<std::string> out;
        for (auto& s : servers_) out.push_back(s->endpoint());
        return out;
    }

    void start_agent() {
        auto r = agent_->start(endpoints());
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }

    void sync_ok(int timeout_s = 60) {
        auto r = agent_->sync(timeout_s);
        ASSERT_EQ(r.exit_code, 0) << "izwatch sync: " << r.err << "\nagent log:\n"
                                  << agent_->log() << "\nserver log:\n"
                                  << (servers_.empty() ? "" : servers_[0]->log());
    }

    static fs::path artifacts_base() {
        return fs::path(::testing::TempDir()) /
               fmt::format("iz-e2e-{}", file_name(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    }

    // Whatever failed, both logs, the operations done and the journal stay
    // for a look after the run (a failure in CI may not come back).
    void keep_logs() {
        if (!agent_) return;
        auto base = artifacts_base().string();
        std::error_code ec;
        fs::remove_all(base + ".journal", ec);
        fs::copy(agent_->journal(), base + ".journal", fs::copy_options::recursive, ec);
        if (!ops_.empty()) std::ofstream(base + ".ops") << ops_;
        std::ofstream(base + ".agent-log") << agent_->log();
        for (size_t i = 0; i < servers_.size(); ++i)
            std::ofstream(base + (i ? fmt::format(".server{}-log", i) : ".server-log")) << servers_[i]->log();
        fmt::print(stderr, "logs, the operations done and the agent's journal kept in {}.{{ops,agent-log,server-log,journal}}\n",
                   base);
    }

    void expect_converged(ServerHost& server) {
        auto src = manifest(agent_->dir());
        auto dst = manifest(server.replica("data"));
        if (src != dst) {
            // Both in full, for a look after the run.
            auto base = artifacts_base();
            std::ofstream(base.string() + ".source") << src;
            std::ofstream(base.string() + ".replica") << dst;
            std::error_code ec;
            for (auto& [from, suffix] : {std::pair{agent_->dir(), ".source-tree"}, std::pair{server.replica("data"), ".replica-tree"}}) {
                fs::remove_all(base.string() + suffix, ec);
                fs::copy(from, base.string() + suffix,
                         fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
            }
            ADD_FAILURE() << "both manifests and trees kept in " << base.string()
                          << ".{source,replica,source-tree,replica-tree}";
        }
        EXPECT_EQ(src, dst) << "replica differs from source on " << server.endpoint() << ":\n"
                            << manifest_diff(src, dst) << "server log tail:\n"
                            << tail(server.log());
    }

    // A parameterised test's name has a '/' in it.
    static std::string file_name(std::string name) {
        std::replace(name.begin(), name.end(), '/', '-');
        return name;
    }

    static std::string tail(const std::string& s, size_t n = 3000) {
        return s.size() > n ? s.substr(s.size() - n) : s;
    }

    std::string ops_;  // what a random workload did, kept when it diverges
    TempDir keys_{"e2e-key"};
    fs::path key_;
    std::unique_ptr<Netns> agent_ns_;
    std::vector<std::unique_ptr<Netns>> server_ns_;
    std::vector<std::unique_ptr<VethLink>> links_;
    std::vector<std::unique_ptr<ServerHost>> servers_;
    std::unique_ptr<AgentHost> agent_;
    std::unique_ptr<ScratchFs> journal_fs_;  // when a test puts the journal on a filesystem of its own
};

TEST_F(Replication, EveryOperationTypeConverges) {
    auto& server = add_server();
    std::ofstream(agent_->dir() / "before-start") << "baseline content\n";
    start_agent();
    every_operation(agent_->dir());
    sync_ok();
    expect_converged(server);
    auto s = agent_->status();
    ASSERT_EQ(s["servers"].size(), 1u);
    EXPECT_TRUE(s["servers"][0].value("connected", false));
    EXPECT_EQ(s["servers"][0].value("acked_lsn", 0), s.value("head_lsn", 1));
}

// Sequences the agent reads only after the kernel merged their events
// (one event per name and object still queued carries all of its
// changes, at the place of the first): the replica still ends as the
// source.
TEST_F(Replication, MergedEventsOfLinksAndMovedDirectoriesConverge) {
    auto put = [](const fs::path& p, const std::string& data) { std::ofstream(p, std::ios::binary) << data; };
    auto& server = add_server();
    start_agent();
    auto d = agent_->dir();
    fs::create_directories(d / "a");
    sync_ok();
    agent_->pause();
    // A file with an xattr, linked, its first name deleted: the second
    // name is the same file, content and xattr included.
    put(d / "first", "content of the first name");
    ASSERT_EQ(::setxattr((d / "first").c_str(), "user.tag", "v1", 2, 0), 0);
    ASSERT_EQ(::link((d / "first").c_str(), (d / "second").c_str()), 0);
    ASSERT_EQ(::unlink((d / "first").c_str()), 0);
    // A directory made, given a child that moves out, then removed: the
    // child's events need the directory until its removal.
    fs::create_directories(d / "a/tmpdir/child");
    put(d / "a/tmpdir/child/f", "moved out with its directory");
    fs::rename(d / "a/tmpdir/child", d / "child");
    fs::remove(d / "a/tmpdir");
    // A file cut and extended again: the bytes past the cut are zeros.
    put(d / "cut", std::string(10000, 'x'));
    ASSERT_EQ(::truncate((d / "cut").c_str(), 100), 0);
    ASSERT_EQ(::truncate((d / "cut").c_str(), 5000), 0);
    agent_->resume();
    sync_ok();
    expect_converged(server);
}

// Seeded random workloads: thousands of operations a second on a few
// hundred entries, the agent well behind the kernel queue, so fanotify
// merges events and entries are renamed, relinked or gone before their
// events are read. IZ_E2E_SEED runs another sequence instead.
class RandomWorkload : public Replication, public ::testing::WithParamInterface<std::tuple<FsType, uint32_t>> {};

TEST_P(RandomWorkload, TenThousandOperationsConverge) {
    auto [type, seed] = GetParam();
    if (type != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", type);
    auto& server = add_server();
    start_agent();
    if (const char* s = std::getenv("IZ_E2E_SEED")) seed = static_cast<uint32_t>(std::strtoul(s, nullptr, 10));
    random_operations(agent_->dir(), seed, 10'000, &ops_);
    sync_ok(120);
    expect_converged(server);
}

INSTANTIATE_TEST_SUITE_P(Seeds, RandomWorkload,
                         ::testing::Values(std::tuple{FsType::ext4, 20261125u}, std::tuple{FsType::ext4, 134u},
                                           std::tuple{FsType::ext4, 206u}, std::tuple{FsType::xfs, 20261125u},
                                           std::tuple{FsType::xfs, 280u}),
                         [](const auto& info) {
                             return fmt::format("{}_seed{}", std::get<0>(info.param) == FsType::xfs ? "xfs" : "ext4",
                                                std::get<1>(info.param));
                         });

// renameat2's flags. RENAME_EXCHANGE swaps two names (what every program
// that replaces a file or directory atomically does): both stay, each with
// the other's content. RENAME_NOREPLACE is a rename, or nothing when it
// fails. RENAME_WHITEOUT leaves a whiteout (a character device 0:0) at the
// old name.
class RenameFlagsReplication : public Replication, public ::testing::WithParamInterface<FsType> {
protected:
    static int rename2(const fs::path& from, const fs::path& to, unsigned flags) {
        return ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags);
    }
};

TEST_P(RenameFlagsReplication, ExchangesNoReplaceAndWhiteoutsConverge) {
    if (GetParam() != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", GetParam());
    auto put = [](const fs::path& p, const std::string& data) { std::ofstream(p, std::ios::binary) << data; };
    auto& server = add_server();
    auto d = agent_->dir();
    put(d / "f", "AAA");
    put(d / "g", "BB");
    fs::create_directories(d / "a");
    put(d / "a/x", "in a");
    fs::create_directories(d / "b/sub");
    put(d / "b/y", "in b");
    put(d / "t", "a file");
    fs::create_directories(d / "dd");
    put(d / "dd/inner", "in a directory");
    put(d / "cfg", "version 1");
    start_agent();
    sync_ok();

    ASSERT_EQ(rename2(d / "f", d / "g", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2(d / "a", d / "b", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2(d / "t", d / "dd", RENAME_EXCHANGE), 0) << std::strerror(errno);
    put(d / "a/sub/later", "written after the exchange");
    // Directories under different parents (XFS sets the mtime of both).
    fs::create_directories(d / "p1/q1/in");
    fs::create_directories(d / "p2/q2");
    sync_ok();
    ASSERT_EQ(rename2(d / "p1/q1", d / "p2/q2", RENAME_EXCHANGE), 0) << std::strerror(errno);
    // An atomic replacement that keeps the old version.
    put(d / "cfg.new", "version 2");
    ASSERT_EQ(rename2(d / "cfg.new", d / "cfg", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(::rename((d / "cfg.new").c_str(), (d / "cfg.old").c_str()), 0);
    ASSERT_EQ(rename2(d / "g", d / "t", RENAME_NOREPLACE), -1);
    ASSERT_EQ(rename2(d / "g", d / "g2", RENAME_NOREPLACE), 0) << std::strerror(errno);
    put(d / "w", "whited out");
    ASSERT_EQ(rename2(d / "w", d / "w2", RENAME_WHITEOUT), 0) << std::strerror(errno);
    fs::create_directories(d / "wd/inner");
    ASSERT_EQ(rename2(d / "wd", d / "wd2", RENAME_WHITEOUT), 0) << std::strerror(errno);
    sync_ok();
    expect_converged(server);
    EXPECT_EQ(read_all(server.replica("data") / "g2"), "AAA");
    EXPECT_EQ(read_all(server.replica("data") / "f"), "BB");
    EXPECT_EQ(read_all(server.replica("data") / "cfg"), "version 2");
    EXPECT_EQ(read_all(server.replica("data") / "cfg.old"), "version 1");
    // The manifest cannot show a device's number: the whiteouts are looked at.
    for (auto name : {"w", "wd"}) {
        struct stat st{};
        ASSERT_EQ(::lstat((server.replica("data") / name).c_str(), &st), 0) << name << ": " << std::strerror(errno);
        EXPECT_TRUE(S_ISCHR(st.st_mode)) << name << std::oct << ": mode " << st.st_mode;
        EXPECT_EQ(st.st_rdev, 0u) << name;
    }

    // Read late, after more changes to the same names.
    agent_->pause();
    ASSERT_EQ(rename2(d / "f", d / "g2", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(::unlink((d / "f").c_str()), 0);
    ASSERT_EQ(rename2(d / "a", d / "b", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(::rename((d / "b").c_str(), (d / "c").c_str()), 0);
    put(d / "a/new", "new in a");
    agent_->resume();
    sync_ok();
    expect_converged(server);
}

// A seeded burst of exchanges, renames, whiteouts, writes and removals
// among a few names, half of it made while the agent reads nothing (events
// merge, entries change again before their events are read).
// Disabled: it does not converge yet. With whiteouts alone it does (ext4
// and XFS), and with exchanges alone on ext4. With both, on ext4, a round
// read late leaves a file whose last append the replica misses (the
// journal names the object under two created names) and an empty
// directory with another mtime; on XFS, with exchanges alone, directory
// mtimes differ.
TEST_P(RenameFlagsReplication, DISABLED_ABurstOfExchangesAndWhiteoutsConverges) {
    if (GetParam() != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", GetParam());
    auto& server = add_server();
    auto d = agent_->dir();
    for (auto sub : {"d0", "d1", "d2"}) fs::create_directories(d / sub);
    start_agent();
    std::mt19937 rng(20261207);
    auto name = [&] {
        static const char* dirs[] = {"", "d0/", "d1/", "d2/"};
        return d / fmt::format("{}n{}", dirs[rng() % 4], rng() % 6);
    };
    for (int round = 0; round < 4; ++round) {
        SCOPED_TRACE(fmt::format("round {}", round));
        bool paused = round % 2 == 1;
        if (paused) agent_->pause();
        for (int i = 0; i < 150; ++i) {
            auto a = name(), b = name();
            switch (rng() % 8) {
                case 0:
                case 1: (void)rename2(a, b, RENAME_EXCHANGE); break;
                case 2: (void)rename2(a, b, 0); break;
                case 3: (void)rename2(a, b, RENAME_WHITEOUT); break;
                case 4: (void)rename2(a, b, RENAME_NOREPLACE); break;
                case 5: {
                    int fd = ::open(a.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                    if (fd >= 0) {
                        auto text = fmt::format("{} {}\n", round, i);
                        (void)!::write(fd, text.data(), text.size());
                        ::close(fd);
                    }
                    break;
                }
                case 6:
                    if (::unlink(a.c_str()) != 0) (void)::rmdir(a.c_str());
                    break;
                case 7: (void)::mkdir(a.c_str(), 0755); break;
            }
        }
        if (paused) agent_->resume();
        sync_ok();
        expect_converged(server);
    }
}

INSTANTIATE_TEST_SUITE_P(Filesystems, RenameFlagsReplication, ::testing::Values(FsType::ext4, FsType::xfs),
                         [](const auto& info) { return std::string(fs_name(info.param)); });

TEST_F(Replication, ServerKilledMidTransferThenRestarted) {
    auto& server = add_server();
    // 60 MiB of random data through a 40 Mbit/s link takes about 12 s, so
    // the kill lands mid-transfer however fast the machine is.
    ASSERT_TRUE(links_[0]->limit_rate_a_to_b("40mbit"));
    start_agent();
    bulk_files(agent_->dir(), 60, 1 << 20, 1);
    // Kill it once it has acknowledged part, not all, of the transfer.
    bool partway = eventually(
        [&] {
            auto s = agent_->status();
            auto acked = s["servers"][0].value("acked_lsn", 0);
            return acked > 0 && acked < s.value("head_lsn", 0);
        },
        20s);
    server.kill9();
    EXPECT_TRUE(partway) << "the transfer finished before the server could be killed";
    ASSERT_TRUE(links_[0]->limit_rate_a_to_b("10gbit"));
    every_operation(agent_->dir() / "while-down");  // the agent keeps journaling meanwhile
    server.start();
    sync_ok();
    expect_converged(server);
}

// Text that zstd shrinks several times over, unlike bulk_files' random bytes.
void compressible_files(const fs::path& dir, int files, size_t size) {
    fs::create_directories(dir);
    for (int f = 0; f < files; ++f) {
        std::string text;
        for (int line = 0; text.size() < size; ++line)
            text += fmt::format("file {} line {}: the quick brown fox jumps over the lazy dog\n", f, line);
        text.resize(size);
        std::ofstream(dir / fmt::format("text{}.txt", f), std::ios::binary) << text;
    }
}

// `--compress auto`: data is compressed while the link cannot take it as
// fast as it is offered (here 40 Mbit/s), and arrives intact.
TEST_F(Replication, DataIsCompressedWhileTheLinkIsTheBottleneck) {
    auto& server = add_server();
    ASSERT_TRUE(links_[0]->limit_rate_a_to_b("40mbit"));
    start_agent();
    compressible_files(agent_->dir() / "text", 24, 1 << 20);
    sync_ok();
    auto srv = agent_->status()["servers"][0];
    auto data = srv.value("data_bytes_sent", uint64_t{0});
    auto wire = srv.value("wire_bytes_sent", uint64_t{0});
    EXPECT_GE(data, uint64_t{24} << 20);
    EXPECT_LT(wire, data / 2) << "sent " << data << " bytes of data as " << wire << " bytes";
    expect_converged(server);
}

// ... but never for a server on the same machine, however far behind it is:
// its backlog is a lack of CPU, which compressing would only add to.
TEST_F(Replication, DataForAServerOnTheSameMachineIsNotCompressed) {
    servers_.push_back(std::make_unique<ServerHost>(*agent_ns_, "127.0.0.1", key_, "e2e-local"));
    auto& server = *servers_.back();
    server.start();
    start_agent();
    sync_ok();
    // Stopped, it reads nothing: the data offered backs up in the socket.
    server.pause();
    compressible_files(agent_->dir() / "text", 24, 1 << 20);
    std::this_thread::sleep_for(2s);
    server.resume();
    sync_ok();
    auto srv = agent_->status()["servers"][0];
    auto data = srv.value("data_bytes_sent", uint64_t{0});
    auto wire = srv.value("wire_bytes_sent", uint64_t{0});
    EXPECT_GE(data, uint64_t{24} << 20);
    EXPECT_GE(wire, data) << "sent " << data << " bytes of data as " << wire << " bytes";
    expect_converged(server);
}

TEST_F(Replication, AgentKilledThenRestartedCatchesUp) {
    auto& server = add_server();
    start_agent();
    every_operation(agent_->dir() / "before");
    bulk_files(agent_->dir(), 200, 10000, 11);
    agent_->kill9();
    // Changes made while no agent runs are found by the restart's rescan.
    every_operation(agent_->dir() / "while-down");
    fs::remove_all(agent_->dir() / "before/documents");
    fs::rename(agent_->dir() / "bulk", agent_->dir() / "bulk-moved");
    start_agent();
    sync_ok();
    expect_converged(server);
}

TEST_F(Replication, LinkCutForTwentySecondsDuringAWorkload) {
    auto& server = add_server();
    start_agent();
    // An exception must not leave the thread (it would end the process
    // before the fixture cleans up): it is reported after the join.
    std::string workload_error;
    std::thread workload([&] {
        try {
            for (int round = 0; round < 25; ++round) {
                every_operation(agent_->dir() / fmt::format("round{}", round));
                bulk_files(agent_->dir() / fmt::format("round{}", round), 20, 50000, round);
                std::this_thread::sleep_for(1s);
            }
        } catch (const std::exception& e) {
            workload_error = e.what();
        }
    });
    std::this_thread::sleep_for(2s);
    EXPECT_TRUE(links_[0]->set_up(false));
    std::this_thread::sleep_for(20s);
    auto s = agent_->status();
    EXPECT_TRUE(links_[0]->set_up(true));
    workload.join();
    ASSERT_EQ(workload_error, "");
    sync_ok(90);
    expect_converged(server);
    // While the cable was out the agent went on journaling.
    EXPECT_GT(s.value("head_lsn", 0), s["servers"][0].value("acked_lsn", 0));
}

TEST_F(Replication, TwoServersOneDownForAWhile) {
    auto& first = add_server();
    auto& second = add_server();
    start_agent();
    every_operation(agent_->dir() / "first");
    sync_ok();
    second.kill9();
    every_operation(agent_->dir() / "second");
    bulk_files(agent_->dir(), 100, 20000, 22);
    // sync waits for every server: with one down it must time out and say which.
    auto r = agent_->sync(3);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(second.endpoint()), std::string::npos) << r.err;
    // The live server did not wait for the dead one.
    auto s = agent_->status();
    EXPECT_EQ(s["servers"][0].value("acked_lsn", 0), s.value("head_lsn", 1));
    expect_converged(first);
    second.start();
    sync_ok();
    expect_converged(first);
    expect_converged(second);
}

// Takes every free block of the filesystem that holds `file` (root's
// reserve included: the server runs as root), as another tenant's data
// would.
void fill_filesystem(const fs::path& file) {
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("open " + file.string() + ": " + std::strerror(errno));
    off_t end = 0;
    for (off_t step = 64 << 20; step >= 4096; step /= 4)
        while (::fallocate(fd, 0, end, step) == 0) end += step;
    ::fsync(fd);
    ::close(fd);
}

// The server's disk fills up under a running workload: the agent is told
// why and shows it, nothing is acknowledged that is not on the disk, the
// server goes on serving, and once space returns the replica converges
// without anyone restarting anything.
TEST_F(Replication, ServerDiskFullThenSpaceReturns) {
    auto& server = add_server();
    start_agent();
    every_operation(agent_->dir() / "before");
    sync_ok();
    auto ballast = server.root() / "ballast";
    fill_filesystem(ballast);
    bulk_files(agent_->dir(), 40, 256 << 10, 5);  // 10 MiB that no longer fit
    every_operation(agent_->dir() / "after");
    auto r = agent_->sync(5);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err << "\nagent log:\n" << tail(agent_->log());
    auto s = agent_->status();
    ASSERT_EQ(s["servers"].size(), 1u);
    EXPECT_NE(s["servers"][0].value("last_error", "").find("No space left on device"), std::string::npos) << s.dump();
    EXPECT_LT(s["servers"][0].value("acked_lsn", 0), s.value("head_lsn", 0));
    EXPECT_TRUE(server.running());
    auto log = server.log();
    EXPECT_NE(log.find("No space left on device"), std::string::npos) << tail(log);
    // A failing server is retried at the backoff's pace, not flooded:
    // fewer than 20 attempts in these 5 seconds.
    auto attempts = [&] {
        size_t n = 0;
        for (size_t at = 0; (at = log.find("No space left on device", at)) != std::string::npos; ++at) ++n;
        return n;
    }();
    EXPECT_LT(attempts, 20u) << tail(log);
    fs::remove(ballast);
    sync_ok(60);
    expect_converged(server);
    EXPECT_EQ(agent_->status()["servers"][0].value("last_error", "?"), "");
}

// The agent's journal disk fills up: the journal fails and the agent says
// so; once space returns it reopens the journal and journals what changed
// meanwhile from a rescan, and the replica converges, deletes and renames
// made while nothing could be journaled included.
TEST_F(Replication, AgentJournalDiskFullThenSpaceReturns) {
    auto& server = add_server();
    auto small = ScratchFs::make(FsType::tmpfs, 8, "e2e-journal");
    ASSERT_TRUE(small) << small.error().message;
    journal_fs_ = std::move(*small);
    auto journal = journal_fs_->mount_point() / "journal";
    agent_->use_journal(journal);
    auto r = agent_->start(endpoints(), {"--segment-size", "256KiB"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    every_operation(agent_->dir() / "before");
    bulk_files(agent_->dir() / "before", 50, 1000, 3);
    sync_ok();

    auto ballast = journal_fs_->mount_point() / "ballast";
    fill_filesystem(ballast);
    bulk_files(agent_->dir(), 3000, 100, 4);  // records for several segments
    fs::remove_all(agent_->dir() / "before/documents");
    fs::rename(agent_->dir() / "before/bulk", agent_->dir() / "bulk-moved");
    every_operation(agent_->dir() / "during");
    bool failed = eventually([&] { return agent_->status().contains("journal_failure"); }, 10s);
    ASSERT_TRUE(failed) << agent_->status().dump();
    EXPECT_NE(agent_->status().value("journal_failure", "").find("No space left on device"), std::string::npos)
        << agent_->status().dump();
    // Failed for longer than the agent waits between saves of its tree
    // state (10 s, in a lull): a state saved now must not hold the changes
    // the journal missed, or the rescan would not find them.
    std::this_thread::sleep_for(12s);
    EXPECT_TRUE(agent_->status().contains("journal_failure"));
    auto waiting = agent_->sync(2);
    EXPECT_NE(waiting.exit_code, 0);
    EXPECT_NE(waiting.err.find("No space left on device"), std::string::npos) << waiting.err;

    auto records_before = agent_->status().value("records", 0);
    fs::remove(ballast);
    bool recovered = eventually([&] { return !agent_->status().contains("journal_failure"); }, 10s);
    ASSERT_TRUE(recovered) << agent_->status().dump() << "\n" << tail(agent_->log());
    EXPECT_GT(agent_->status().value("records", 0), records_before);  // counted on, not from zero
    every_operation(agent_->dir() / "after");
    sync_ok();
    expect_converged(server);
}

// The agent's journal is made anew (its disk lost) while the server keeps
// its record of the old one: resuming after the server's LSN would skip the
// new journal's records up to it, so the agent refuses, says what to do, and
// once the server starts the fileset afresh the replica converges.
TEST_F(Replication, AJournalMadeAnewIsRefusedUntilTheServerStartsAfresh) {
    auto& server = add_server();
    start_agent();
    bulk_files(agent_->dir(), 300, 100, 8);  // the old journal's LSNs outrun the new one's baseline
    every_operation(agent_->dir() / "old");
    sync_ok();
    ASSERT_EQ(agent_->stop().exit_code, 0);
    agent_->forget_journal_and_state();
    fs::remove_all(agent_->dir() / "bulk");  // a removal no new journal can know of
    std::ofstream(agent_->dir() / "new-file") << "made after the journal was lost\n";
    start_agent();
    auto r = agent_->sync(3);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("made anew"), std::string::npos) << r.err;
    EXPECT_NE(agent_->status()["servers"][0].value("last_error", "").find("made anew"), std::string::npos);
    EXPECT_FALSE(fs::exists(server.replica("data") / "new-file"));

    server.kill9();
    for (auto& agent : fs::directory_iterator(server.root() / ".intermezzo")) fs::remove_all(agent.path() / "data");
    fs::remove_all(server.replica("data"));
    server.start();
    sync_ok(30);
    expect_converged(server);
    EXPECT_EQ(agent_->status()["servers"][0].value("last_error", "?"), "");
}

TEST_F(Replication, WrongKeyIsRefusedAndNothingApplied) {
    auto& server = add_server();
    TempDir other("e2e-otherkey");
    auto wrong = make_key(other);
    AgentHost intruder(*agent_ns_, wrong, "e2e-intruder");
    std::ofstream(intruder.dir() / "secret") << "must not arrive\n";
    auto r = intruder.start({server.endpoint()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    bool refused = eventually([&] { return server.log().find("refused") != std::string::npos ||
                                           server.log().find("authentication") != std::string::npos; },
                              10s);
    EXPECT_TRUE(refused) << server.log();
    auto s = intruder.status();
    EXPECT_FALSE(s["servers"][0].value("connected", true));
    EXPECT_FALSE(s["servers"][0].value("last_error", "").empty());
    EXPECT_FALSE(fs::exists(server.replica("data") / "secret"));
    intruder.stop();
    // The honest agent is served all the same.
    start_agent();
    every_operation(agent_->dir());
    sync_ok();
    expect_converged(server);
}

}  // namespace
}  // namespace iz::test::e2e
