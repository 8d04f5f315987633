// End to end: the real izwatch in one network namespace ships to real
// izreplicate servers in others, over veth. After every scenario the
// replica's manifest equals the source's.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>  // renameat2
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <cstdlib>
#include <ctime>

#include <fstream>
#include <iterator>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "e2e_content_workload.hpp"
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
            // cp -a, not fs::copy: that stops at the first socket or path
            // beyond PATH_MAX and keeps only part of the tree.
            for (auto& [from, suffix] : {std::pair{agent_->dir(), ".source-tree"}, std::pair{server.replica("data"), ".replica-tree"}}) {
                fs::remove_all(base.string() + suffix, ec);
                run_process({"cp", "-a", "--", from.string(), base.string() + suffix});
            }
            ADD_FAILURE() << "both manifests and trees kept in " << base.string()
                          << ".{source,replica,source-tree,replica-tree}";
        }
        // Not EXPECT_EQ: both manifests in full are kept in files, and
        // printed they would bury the difference.
        EXPECT_TRUE(src == dst) << "replica differs from source on " << server.endpoint() << ":\n"
                            << manifest_diff(src, dst) << "server log tail:\n"
                            << tail(server.log());
        // Equal bytes are not enough: a replica that fills a source's holes
        // with zeros (or preallocates) can run out of room the source has.
        EXPECT_EQ(allocation_excess(agent_->dir(), server.replica("data")), "")
            << "replica files take more room than their sources on " << server.endpoint();
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

// A replica changed behind the replicator's back, in one property at a
// time: `izwatch verify` names every path and property and exits non-zero;
// `--repair` journals what makes the replica equal (repair records izlog
// shows, no conflict copies), after which the manifests are equal and
// verify and `sync --verify` exit 0.
TEST_F(Replication, VerifyNamesEveryDivergenceAndRepairConverges) {
    auto& server = add_server();
    start_agent();
    auto d = agent_->dir();
    fs::create_directories(d / "sub/deeper");
    std::ofstream(d / "bytes.txt") << "the quick brown fox jumps over the lazy dog\n";
    std::ofstream(d / "mode.txt") << "mode\n";
    std::ofstream(d / "grown.txt") << "appended to on the replica\n";
    std::ofstream(d / "xattr.txt") << "xattr\n";
    ASSERT_EQ(::setxattr((d / "xattr.txt").c_str(), "user.tag", "source", 6, 0), 0);
    std::ofstream(d / "sub/deeper/gone.txt") << "removed on the replica\n";
    fs::create_symlink("bytes.txt", d / "link");
    fs::create_directories(d / "tree/inner");
    std::ofstream(d / "tree/inner/leaf.txt") << "in a directory removed on the replica\n";
    ASSERT_EQ(::setxattr((d / "tree/inner").c_str(), "user.dir", "x", 1, 0), 0);
    std::ofstream(d / "kind") << "a file on the source, a directory on the replica\n";
    std::ofstream(d / "h1") << "two names of one file\n";
    ASSERT_EQ(::link((d / "h1").c_str(), (d / "h2").c_str()), 0);
    sync_ok();
    expect_converged(server);
    auto equal = agent_->izwatch("verify");
    EXPECT_EQ(equal.exit_code, 0) << equal.out << equal.err;
    EXPECT_NE(equal.out.find("the replica is equal"), std::string::npos) << equal.out;
    auto one = agent_->izwatch("verify", {"--server", server.endpoint()});
    EXPECT_EQ(one.exit_code, 0) << one.out << one.err;
    auto unknown = agent_->izwatch("verify", {"--server", "192.0.2.1:7411"});
    EXPECT_EQ(unknown.exit_code, 2) << unknown.out << unknown.err;
    EXPECT_NE(unknown.err.find("does not ship to '192.0.2.1:7411'"), std::string::npos) << unknown.err;

    auto r = server.replica("data");
    {
        auto mtime = mtime_ns(r / "bytes.txt");
        int fd = ::open((r / "bytes.txt").c_str(), O_WRONLY);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::pwrite(fd, "Q", 1, 4), 1);
        struct timespec ts[2] = {{0, UTIME_OMIT}, {mtime / 1'000'000'000, mtime % 1'000'000'000}};
        ASSERT_EQ(::futimens(fd, ts), 0);
        ::close(fd);
        ASSERT_EQ(mtime_ns(r / "bytes.txt"), mtime);
    }
    fs::permissions(r / "mode.txt", fs::perms(0600));
    // Size and mtime changed: the server's file memory sees a change behind
    // its back, which a repair must replace without a conflict copy.
    std::ofstream(r / "grown.txt", std::ios::app) << "more on the replica\n";
    ASSERT_EQ(::setxattr((r / "xattr.txt").c_str(), "user.tag", "replica", 7, 0), 0);
    std::ofstream(r / "sub/extra.txt") << "only on the replica\n";
    fs::remove(r / "sub/deeper/gone.txt");
    fs::remove(r / "link");
    fs::create_symlink("mode.txt", r / "link");
    fs::remove_all(r / "tree");
    fs::create_directories(r / "extradir/deep");
    std::ofstream(r / "extradir/deep/x") << "a whole subtree only on the replica\n";
    fs::remove(r / "kind");
    fs::create_directories(r / "kind/sub");
    // The link broken: h2 a copy of its own, equal in all else.
    fs::remove(r / "h2");
    fs::copy_file(r / "h1", r / "h2");
    {
        auto mtime = mtime_ns(r / "h1");
        struct timespec ts[2] = {{0, UTIME_OMIT}, {mtime / 1'000'000'000, mtime % 1'000'000'000}};
        ASSERT_EQ(::utimensat(AT_FDCWD, (r / "h2").c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);
    }

    auto found = agent_->izwatch("verify");
    EXPECT_EQ(found.exit_code, 1) << found.out << found.err;
    for (auto [path, what] : {std::pair{"bytes.txt:", "content:"}, {"mode.txt:", "mode: 0644 on the source, 0600 on the replica"},
                              {"xattr.txt:", "xattr user.tag: \"source\" on the source, \"replica\" on the replica"},
                              {"sub/extra.txt:", "extra on the replica"}, {"sub/deeper/gone.txt:", "missing on the replica"},
                              {"link:", "symlink target: 'bytes.txt' on the source, 'mode.txt' on the replica"},
                              {"grown.txt:", "size:"}, {"tree:", "missing on the replica"}, {"extradir:", "extra on the replica"},
                              {"kind:", "type: regular file on the source, directory on the replica"},
                              {"h2:", "hard-link group (its first name): 'h1' on the source, none on the replica"}}) {
        auto at = found.out.find(std::string("  ") + path + "\n");
        ASSERT_NE(at, std::string::npos) << path << " not named:\n" << found.out;
        EXPECT_NE(found.out.find(what, at), std::string::npos) << what << " not said of " << path << ":\n" << found.out;
    }
    auto sync_verify = agent_->izwatch("sync", {"--verify"});
    EXPECT_NE(sync_verify.exit_code, 0) << "sync --verify passed with a diverged replica:\n" << sync_verify.out;

    auto repaired = agent_->izwatch("verify", {"--repair"});
    EXPECT_EQ(repaired.exit_code, 1) << repaired.out << repaired.err;
    EXPECT_NE(repaired.out.find("the replica is now equal"), std::string::npos) << repaired.out;
    expect_converged(server);
    auto again = agent_->izwatch("verify");
    EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
    auto synced = agent_->izwatch("sync", {"--verify"});
    EXPECT_EQ(synced.exit_code, 0) << synced.out << synced.err;
    EXPECT_EQ(server.log().find("conflict on"), std::string::npos) << "a repair was taken for a conflict:\n"
                                                                  << tail(server.log());

    auto log = run_process({bin_path("izlog").string(), "-D", agent_->journal().string(), "--op", "repair", "-o", "cat",
                            "--no-pager", "--no-color"});
    ASSERT_EQ(log.exit_code, 0) << log.err;
    for (auto path : {"bytes.txt", "grown.txt", "mode.txt", "xattr.txt", "sub/extra.txt", "sub/deeper/gone.txt", "link", "tree",
                      "extradir", "kind", "h2"})
        EXPECT_NE(log.out.find(std::string("repair ") + path + "\n"), std::string::npos) << path << " has no repair record:\n"
                                                                                  << log.out;
}

// A file the source keeps changing while it is verified is not a
// divergence: what differs is checked again after another sync, and a path
// the journal shows changing meanwhile is listed apart.
TEST_F(Replication, VerifyDoesNotReportAFileChangingMeanwhile) {
    auto& server = add_server();
    start_agent();
    auto busy = agent_->dir() / "busy.log";
    std::ofstream(busy) << "start\n";
    sync_ok();
    expect_converged(server);
    std::atomic<bool> stop{false};
    std::jthread writer([&] {
        for (int i = 0; !stop; ++i) {
            std::ofstream(busy, std::ios::app) << "line " << i << "\n";
            std::this_thread::sleep_for(200us);
        }
    });
    auto v = agent_->izwatch("verify");
    stop = true;
    writer.join();
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
    EXPECT_EQ(v.out.find("DIFFERS"), std::string::npos) << v.out;
}

// A verification that finds a file whose name is not UTF-8 names it in its
// reply with U+FFFD for the byte JSON cannot carry; the agent lives on (the
// reply was once written strictly on the request's own thread, and the
// exception ended the process).
TEST_F(Replication, AVerifyReplyNamingAPathThatIsNotUtf8ReachesTheUserAndTheAgentLives) {
    auto& server = add_server();
    start_agent();
    const std::string name = "caf\xe9.txt";
    std::ofstream(agent_->dir() / name) << "content the replica must keep\n";
    sync_ok();
    auto replica_file = server.replica("data") / name;
    ASSERT_TRUE(eventually([&] { return fs::exists(replica_file); }));
    auto mtime = mtime_ns(replica_file);
    std::ofstream(replica_file, std::ios::in | std::ios::out) << "CONTENT";
    struct timespec ts[2] = {{0, UTIME_OMIT}, {mtime / 1'000'000'000, mtime % 1'000'000'000}};
    ASSERT_EQ(::utimensat(AT_FDCWD, replica_file.c_str(), ts, 0), 0);
    auto v = agent_->izwatch("verify");
    EXPECT_NE(v.exit_code, 0) << v.out << v.err;
    auto s = agent_->status();
    ASSERT_TRUE(s.is_object()) << agent_->log();
    EXPECT_EQ(s.value("ok", false), true) << s.dump(2);
    // The name's byte that is not UTF-8 is shown as U+FFFD.
    EXPECT_NE((v.out + v.err).find("caf\xef\xbf\xbd.txt"), std::string::npos) << v.out << v.err;
}

// A utimes of the mtime alone reaches fanotify as a modify. On a fifo, a
// whiteout or a symlink that was journaled as a write, which ships nothing:
// the replica kept the mtime its own mknod gave it, and the agent, whose
// tree had the new mtime, found nothing to send after a restart either.
TEST_F(Replication, AnMtimeSetAloneOnASpecialFileReachesTheReplicaAcrossARestart) {
    auto& server = add_server();
    auto dir = agent_->dir();
    ASSERT_EQ(::mkfifo((dir / "p").c_str(), 0640), 0);
    std::ofstream(dir / "f") << "moved away with a whiteout left at its name\n";
    ASSERT_EQ(::symlink("p", (dir / "l").c_str()), 0);
    start_agent();
    ASSERT_EQ(::renameat2(AT_FDCWD, (dir / "f").c_str(), AT_FDCWD, (dir / "g").c_str(), RENAME_WHITEOUT), 0);
    sync_ok();
    constexpr int64_t mtime = 1'540'690'543'757'475'122;
    struct timespec ts[2] = {{0, UTIME_OMIT}, {mtime / 1'000'000'000, mtime % 1'000'000'000}};
    for (const char* name : {"p", "f", "l"})
        ASSERT_EQ(::utimensat(AT_FDCWD, (dir / name).c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << name;
    sync_ok();
    agent_->kill9();
    auto r = agent_->start(endpoints());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    sync_ok();
    expect_converged(server);
    EXPECT_EQ(mtime_ns(server.replica("data") / "p"), mtime);
}

// The scrub finds a divergence on its own, repairs it, logs it as a
// warning with the path, and says so in `izwatch status`.
TEST_F(Replication, ScrubFindsAndRepairsADivergenceOnItsOwn) {
    auto& server = add_server();
    auto r = agent_->start(endpoints(), {"--scrub-interval", "2s"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::ofstream(agent_->dir() / "file.txt") << "content the replica must keep\n";
    sync_ok();
    auto replica_file = server.replica("data") / "file.txt";
    ASSERT_TRUE(eventually([&] { return fs::exists(replica_file); }));
    auto mtime = mtime_ns(replica_file);
    std::ofstream(replica_file, std::ios::in | std::ios::out) << "CONTENT";
    struct timespec ts[2] = {{0, UTIME_OMIT}, {mtime / 1'000'000'000, mtime % 1'000'000'000}};
    ASSERT_EQ(::utimensat(AT_FDCWD, replica_file.c_str(), ts, 0), 0);
    bool repaired = eventually(
        [&] {
            auto s = agent_->status();
            return s.is_object() && s["scrub"].value("repaired_total", 0) >= 1;
        },
        std::chrono::seconds(60));
    ASSERT_TRUE(repaired) << agent_->status().dump(2) << "\n" << agent_->log();
    auto s = agent_->status();
    EXPECT_FALSE(s["scrub"].value("last_run", "").empty());
    EXPECT_EQ(s["scrub"]["last_found_paths"], nlohmann::json::array({"file.txt"})) << s.dump(2);
    EXPECT_GE(s["scrub"].value("found_total", 0), 1) << s.dump(2);
    auto human = agent_->izwatch("status");
    EXPECT_NE(human.out.find("scrub:       every 2 s; last run "), std::string::npos) << human.out;
    EXPECT_NE(human.out.find("SCRUB FOUND: "), std::string::npos)
        << human.out;
    EXPECT_NE(human.out.find(": file.txt\n"), std::string::npos) << human.out;
    expect_converged(server);
    auto log = agent_->log();
    auto warn = log.find("[warning] scrub: the replica on");
    ASSERT_NE(warn, std::string::npos) << log;
    EXPECT_NE(log.find("file.txt: content:", warn), std::string::npos) << log;
}

// The scrub is due an interval after the last one, whichever agent ran it:
// an agent restarted more often than the interval scrubs all the same.
TEST_F(Replication, ScrubIsDueAnIntervalAfterTheLastEvenAcrossRestarts) {
    add_server();
    fs::create_directories(agent_->state_dir());
    auto day_ago = std::chrono::duration_cast<std::chrono::seconds>(
                       (std::chrono::system_clock::now() - std::chrono::hours(24)).time_since_epoch())
                       .count();
    std::ofstream(agent_->state_dir() / "scrub.last") << day_ago << "\n";
    auto r = agent_->start(endpoints(), {"--scrub-interval", "1h"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    bool ran = eventually([&] { return agent_->status()["scrub"].value("runs", 0) >= 1; }, std::chrono::seconds(30));
    ASSERT_TRUE(ran) << agent_->status().dump(2);
    // And the next is an hour after this one, across a restart.
    std::ifstream in(agent_->state_dir() / "scrub.last");
    int64_t last = 0;
    in >> last;
    EXPECT_GT(last, day_ago + 3600);
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
    auto v = agent_->izwatch("verify");
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

INSTANTIATE_TEST_SUITE_P(Seeds, RandomWorkload,
                         ::testing::Values(std::tuple{FsType::ext4, 20261125u}, std::tuple{FsType::ext4, 134u},
                                           std::tuple{FsType::ext4, 206u}, std::tuple{FsType::xfs, 20261125u},
                                           std::tuple{FsType::xfs, 280u}),
                         [](const auto& info) {
                             return fmt::format("{}_seed{}", std::get<0>(info.param) == FsType::xfs ? "xfs" : "ext4",
                                                std::get<1>(info.param));
                         });

// Holes travel as holes, whether the agent knows the written ranges (eBPF)
// or not (fanotify alone: whole-file writes, sent as the blocks that differ
// from the server's copy), from ext4 and from XFS. Each file ends with the source's bytes, using no
// more room on the replica than the source's blocks plus one block per data
// extent, and costs its data on the wire, not its size.
class SparseFiles : public Replication, public ::testing::WithParamInterface<std::tuple<FsType, bool>> {
protected:
    static constexpr uint64_t kMiB = 1 << 20;

    uint64_t data_sent() {
        auto s = agent_->status();
        if (!s.is_object() || s["servers"].empty()) return 0;
        return s["servers"][0].value("data_bytes_sent", uint64_t{0});
    }

    // The data extents of a file (SEEK_DATA/SEEK_HOLE).
    static int data_extents(const fs::path& p) {
        int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return -1;
        int n = 0;
        for (off_t at = 0;;) {
            off_t data = ::lseek(fd, at, SEEK_DATA);
            if (data < 0) break;
            at = ::lseek(fd, data, SEEK_HOLE);
            ++n;
            if (at < 0) break;
        }
        ::close(fd);
        return n;
    }

    // Compared a megabyte at a time: the files may be hundreds of them.
    static bool same_bytes(const fs::path& a, const fs::path& b) {
        std::ifstream x(a, std::ios::binary), y(b, std::ios::binary);
        std::string bx(kMiB, '\0'), by(kMiB, '\0');
        while (x && y) {
            x.read(bx.data(), static_cast<std::streamsize>(bx.size()));
            y.read(by.data(), static_cast<std::streamsize>(by.size()));
            if (x.gcount() != y.gcount() || std::memcmp(bx.data(), by.data(), static_cast<size_t>(x.gcount())) != 0)
                return false;
        }
        return !x && !y;
    }

    static struct stat lstat_of(const fs::path& p) {
        struct stat st{};
        EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
        return st;
    }

    // Same size, same bytes, and no more blocks than the source's plus one
    // per extent; and at most `wire` bytes of data sent since `sent_before`.
    void expect_sparse_replica(ServerHost& server, const std::string& name, uint64_t sent_before, uint64_t wire) {
        SCOPED_TRACE(name);
        auto src = agent_->dir() / name, dst = server.replica("data") / name;
        auto s = lstat_of(src), d = lstat_of(dst);
        ASSERT_EQ(d.st_size, s.st_size);
        EXPECT_TRUE(same_bytes(src, dst)) << "contents differ";
        int extents = data_extents(src);
        uint64_t allowed = static_cast<uint64_t>(s.st_blocks) * 512 + static_cast<uint64_t>(extents) * 4096;
        EXPECT_LE(static_cast<uint64_t>(d.st_blocks) * 512, allowed)
            << "the replica uses " << d.st_blocks * 512 << " bytes of disk, the source " << s.st_blocks * 512
            << " in " << extents << " extents";
        uint64_t sent = data_sent() - sent_before;
        EXPECT_LE(sent, wire) << sent << " bytes of data sent for " << s.st_size << " bytes with "
                              << s.st_blocks * 512 << " allocated";
    }

    static void pwrite_all(int fd, const std::string& data, uint64_t off) {
        ASSERT_EQ(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)), static_cast<ssize_t>(data.size()));
    }

    static std::string pattern(size_t n, char seed) {
        std::string s(n, '\0');
        for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 23 + 1);
        return s;
    }
};

TEST_P(SparseFiles, HolesTravelAsHoles) {
    auto [type, bpf] = GetParam();
    if (type != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", type);
    auto& server = add_server();
    auto r = agent_->start(endpoints(), bpf ? std::vector<std::string>{} : std::vector<std::string>{"--no-bpf"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto d = agent_->dir();
    // Replicated first, changed later.
    {
        std::ofstream(d / "punched", std::ios::binary) << pattern(4 * kMiB, 'p');
        std::ofstream(d / "extended", std::ios::binary) << pattern(kMiB, 'e');
    }
    sync_ok();

    // A new file with two 4 KiB writes 10 MiB apart.
    uint64_t before = data_sent();
    {
        int fd = ::open((d / "two-writes").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0);
        pwrite_all(fd, pattern(4096, 'a'), 0);
        pwrite_all(fd, pattern(4096, 'b'), 10 * kMiB);
        ::close(fd);
    }
    sync_ok();
    expect_sparse_replica(server, "two-writes", before, 64 << 10);

    // 700 MiB, 4 KiB of data: ftruncate, then one write.
    before = data_sent();
    {
        int fd = ::open((d / "sparse-700m").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(700 * kMiB)), 0);
        pwrite_all(fd, pattern(4096, 's'), 300 * kMiB);
        ::close(fd);
    }
    sync_ok();
    expect_sparse_replica(server, "sparse-700m", before, 64 << 10);

    // A hole punched into a replicated file.
    before = data_sent();
    {
        int fd = ::open((d / "punched").c_str(), O_WRONLY | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(kMiB),
                              static_cast<off_t>(2 * kMiB)),
                  0);
        ::close(fd);
    }
    sync_ok();
    expect_sparse_replica(server, "punched", before, 64 << 10);

    // A replicated file extended by truncate.
    before = data_sent();
    ASSERT_EQ(::truncate((d / "extended").c_str(), static_cast<off_t>(64 * kMiB)), 0);
    sync_ok();
    expect_sparse_replica(server, "extended", before, 64 << 10);

    expect_converged(server);
}

INSTANTIATE_TEST_SUITE_P(Capture, SparseFiles,
                         ::testing::Values(std::tuple{FsType::ext4, true}, std::tuple{FsType::ext4, false},
                                           std::tuple{FsType::xfs, true}),
                         [](const auto& info) {
                             return fmt::format("{}_{}", std::get<0>(info.param) == FsType::xfs ? "xfs" : "ext4",
                                                std::get<1>(info.param) ? "bpf" : "fanotify_only");
                         });

// A hole punched while no agent ran, where the replica holds zeros as data
// (the source wrote them, and they travelled with the bytes around them):
// the start sends the file by block hashes, and the block's hash matched
// (holes hash as zeros), so nothing was sent for it and the replica kept
// blocks its source had freed. A matching block still gets the source's
// holes punched.
TEST_F(Replication, AHolePunchedWhereTheReplicaHasZerosIsPunchedAfterARestart) {
    auto& server = add_server();
    start_agent();
    auto f = agent_->dir() / "zeros";
    {
        std::string data(256 << 10, '\0');
        std::fill_n(data.begin(), 4096, 'z');
        std::ofstream(f, std::ios::binary) << data;
    }
    sync_ok();
    ASSERT_EQ(agent_->stop().exit_code, 0);
    int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, (256 << 10) - 4096), 0);
    ::close(fd);
    start_agent();
    sync_ok();
    expect_converged(server);
}

// Seeded workloads over every interface a program changes files through
// (renameat2's flags, mmap, libaio, io_uring, O_DIRECT, O_TMPFILE,
// copy_file_range, clones, fallocate's modes, splice, sparse files, deep
// paths, ACLs, special files: see random_interface_operations), on ext4 and
// XFS. The replica must equal the source by the full manifest and take no
// more room than it. IZ_E2E_SEED runs another sequence instead,
// IZ_E2E_OPERATIONS another length, IZ_E2E_ONLY_OPS / IZ_E2E_SKIP_OPS
// (comma-separated kinds, see OperationKinds) narrow it to find which kind
// of operation makes a replica diverge.
// InterfaceWorkloadMoreSeeds (ext4 seed 3, XFS seed 4) runs in the suite:
// it passed every run of a long series on the final code. The runs that do
// not pass every time yet are disabled (run them with
// --gtest_also_run_disabled_tests): with every interface mixed and events
// read late, a few divergences remain, each seen in fewer than one run in
// twenty of a series: an extra hard-link name or a link
// group taken for another object (after kill -9 of the agent; and on ext4
// with seed 3 a link group's count differs, or a symlink stays at its old
// name on the replica with a regular file at its new one), an entry known
// from its create event only reaching the replica without its type or mode
// (a device as an empty file), a directory renamed away whose new name the
// replica never learns (ext4 seed 1, now and then), a file's content
// sent to a name where the replica holds a device or symlink (XFS seed 2
// and ext4 seed 1, rarely), a file with its size and other bytes (XFS
// seed 4, rarely).
// With `izwatch sync` called meanwhile, the workload is paced and
// converges. Each interface alone converges (InterfaceGroupWorkload,
// below, runs in the suite).
class InterfaceWorkload : public Replication, public ::testing::WithParamInterface<std::tuple<FsType, uint32_t>> {
protected:
    static constexpr int kOperations = 1500;
    // Long enough (about 7 s at 2 ms an operation) that two restarts of the
    // agent (a rescan each) still leave the server's kills inside it.
    static constexpr int kOperationsKilled = 3000;

    void SetUp() override {
        Replication::SetUp();
        auto [type, seed] = GetParam();
        seed_ = seed;
        if (const char* s = std::getenv("IZ_E2E_SEED")) seed_ = static_cast<uint32_t>(std::strtoul(s, nullptr, 10));
        if (type != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", type);
        log_.add(fmt::format("# seed {} on {}", seed_, fs_name(type)));
    }

    // The workload; an operation that failed unexpectedly is reported after
    // the fact (this may run on a thread of its own). `pace` stretches it
    // over a few seconds for what happens beside it.
    void workload(std::chrono::microseconds pace = {}, int count = kOperations) {
        try {
            if (const char* n = std::getenv("IZ_E2E_OPERATIONS")) count = std::atoi(n);
            random_interface_operations(agent_->dir(), seed_, count, log_, OperationKinds::from_environment(), pace);
        } catch (const std::exception& e) {
            std::lock_guard lock(error_mutex_);
            workload_error_ = e.what();
        }
    }

    // Synced and compared even when the sync fails: the manifests say what
    // went missing. A healthy run syncs in about a second; a replication
    // stalled on one record would otherwise cost the suite its timeout.
    void settle_and_compare(ServerHost& server) {
        ops_ = log_.text();
        EXPECT_EQ(workload_error_, "");
        auto r = agent_->sync(20);
        EXPECT_EQ(r.exit_code, 0) << "izwatch sync: " << r.err << "\nagent log tail:\n"
                                  << tail(agent_->log()) << "\nserver log tail:\n"
                                  << tail(server.log());
        expect_converged(server);
        ops_ = log_.text();
    }

    uint32_t seed_ = 0;
    OpLog log_;
    std::mutex error_mutex_;
    std::string workload_error_;
};

TEST_P(InterfaceWorkload, DISABLED_Converges) {
    auto& server = add_server();
    start_agent();
    workload();
    settle_and_compare(server);
}

// `izwatch sync` called over and over from another thread while the
// workload runs: every call returns once what was journaled before it is
// durable on the server, and none disturbs the capture.
TEST_P(InterfaceWorkload, ConvergesWithSyncsDuringTheWorkload) {
    auto& server = add_server();
    start_agent();
    std::atomic<bool> done{false};
    int syncs = 0;
    std::vector<std::string> failed;
    std::jthread syncer([&] {
        while (!done) {
            auto r = agent_->sync(15);
            log_.add(fmt::format("----- izwatch sync {} -> exit {}", syncs++, r.exit_code));
            if (r.exit_code != 0) failed.push_back(r.err);
        }
    });
    workload(2ms);
    done = true;
    syncer.join();
    EXPECT_GE(syncs, 2);
    EXPECT_TRUE(failed.empty()) << failed.size() << " of " << syncs << " syncs failed, the first: " << failed[0];
    settle_and_compare(server);
}

// kill -9 of the agent twice and of the server twice, at moments drawn
// from the seed while the workload runs, each restarted right after.
// Still disabled until a longer series passes every time. The last causes
// found were in the server's replay after a kill (ApplyReplayChain): a
// create or mkdir made again, whose replayed rename left it or moved it
// over the first (extra entries, a directory kept as a conflict copy), and
// a creation replayed over what a later rename had put at its name (a link
// group split). Before those fixes 3 of 33 runs failed; after them 1 of
// 126 (ext4 seeds 1, 5, 25, XFS seeds 2, 3, 5): on ext4 seed 1 a whiteout
// that is a directory with entries on the replica and a link group one
// link larger. Seen before the fixes and not explained yet: a device's
// mtime newer on the replica (XFS), content for a name where the replica
// holds a character device (XFS), a link group taken for another object
// after exchanges (XFS seed 3).
// Later series (seeds from 1000, ext4 and XFS alternately, about 12 s a
// run) found, and these fixes removed: content replayed by an agent that
// resumed below what the server applied, rejected where a whiteout now
// stands (sync failed; ApplyReplayContent), a hole to a file's unaligned
// end keeping its last block (SparseTail), an mmap store into a dirty
// page lost with a killed agent (RestartMapped), a block whose hash
// matched keeping zeros the source had punched
// (AHolePunchedWhereTheReplicaHasZerosIsPunchedAfterARestart). Replayed
// operations found done now set their directories' times
// (ApplyReplayDirTimes). On the final code a series of 40 runs per
// filesystem (seeds 5000 to 5039) passed 39 on ext4 and 39 on XFS: on
// ext4 3 KiB of a file's content old on the replica after exchanges and
// whiteouts (seed 5031), on XFS zeros held as data where the source has a
// hole (seed 5029). Seen once each before the last fixes: a file linked
// into another object's link group on the replica (ext4 seed 3003), a link
// group with another object's xattr (XFS seed 4003). Since explained and
// fixed: a link replayed after a rename had given one of its names to
// another object (ApplyReplayLinks), a setattr or xattr record replayed
// onto what a later rename put at its name (ApplyReplayAttrs), and an mmap
// store into a dirty page closed within a second of the file's last flush,
// journaled with that flush's ranges (MappedClose; seed 5031, which failed
// every time). Seed 5029 (XFS) still failed 2 of 6 runs after them: a
// link group, cloned, punched and written in ranges, held zeros as data
// where the source has a hole. The shipper took a small file whose blocks
// added up to its size for all data, and XFS counts the copy-on-write
// reservation of a write after a clone among them (a 40 KiB file with a
// 20 KiB hole showed 148 KiB of blocks): the hole travelled as zeros
// (ASmallFileDenseByItsBlocksKeepsItsHole). Since, it passed 19 of 19
// runs (and XFS seeds 5000 to 5002 and 5031, ext4 seeds 5029 and 5031).
// A link killed between its note and making room at its second name left
// the entry there for good on the replay
// (ALinkKilledBetweenItsNoteAndMakingRoomIsMadeByTheReplay).
// The next series (seeds from 6000, ext4 and XFS alternately, one run at a
// time, 9 to 18 s a run; run one with IZ_E2E_SEED and a filter such as
// '*ConvergesAfterAgentAndServerAreKilled*xfs*'): seeds 6000 to 6059
// passed 60 of 60 on ext4 and 59 of 60 on XFS. Seed 6050 (XFS): a file
// made, renamed, and its new name then given to a symlink by an exchange,
// all applied before the server's kill; the replay made the file again
// and its replayed rename moved that copy over the symlink
// (ApplyReplayChain, AFileMadeAgainIsNotRenamedOverWhatALaterExchange...;
// fixed, and the seed then passed 3 of 3). After that fix seeds 6060 to
// 6089 passed 30 of 30 on XFS and 28 of 30 on ext4. Seed 6065 (ext4,
// fails every time): 801 bytes an mmap store (msync MS_ASYNC) put into a
// page a truncate had just left dirty are old on the replica. After the
// store a utimensat set the mtime back before the run, and a directory
// above the file was renamed while the agent was down; the start looked
// only at dirty files with a recent mtime, at their saved paths. It now
// goes by the ctime and the handle (RestartMapped, ...MtimeWasSetBack...,
// ...MovedWhileNoAgentRan...), and the seed still fails 3 of 3, most
// likely because the kernel wrote the page back while no agent ran, with
// no capture there to report it and nothing dirty left for the start to
// find (not fixed).
// Seed 6076 (ext4, passed when run again), not explained yet: a
// character device held as a directory with entries on the replica, a
// block device as a directory holding a subtree the source has elsewhere,
// a file as a symlink (the namespace mix-up exchanges and replays made
// before). Still disabled: no series of 30 runs per filesystem on the
// final code has passed whole yet.
TEST_P(InterfaceWorkload, DISABLED_ConvergesAfterAgentAndServerAreKilled) {
    auto& server = add_server();
    start_agent();
    std::atomic<bool> done{false};
    std::jthread runner([&] {
        workload(2ms, kOperationsKilled);
        done = true;
    });
    // Each kill when the workload reaches an operation drawn from the seed
    // (at once when a restart took longer than the way there).
    std::mt19937 rng(seed_);
    std::vector<bool> agent_first{true, true, false, false};  // true: the agent, false: the server
    std::shuffle(agent_first.begin(), agent_first.end(), rng);
    std::vector<size_t> at;
    for (size_t k = 0; k < agent_first.size(); ++k) at.push_back(100 + rng() % (kOperationsKilled * 2 / 3));
    std::sort(at.begin(), at.end());
    int late = 0;
    for (size_t k = 0; k < agent_first.size(); ++k) {
        while (!done && log_.lines() < at[k]) std::this_thread::sleep_for(1ms);
        if (done) ++late;
        if (agent_first[k]) {
            log_.add("----- kill -9 izwatch");
            agent_->kill9();
            auto r = agent_->start(endpoints());
            log_.add(fmt::format("----- izwatch started again -> exit {}", r.exit_code));
            EXPECT_EQ(r.exit_code, 0) << r.err;
        } else {
            log_.add("----- kill -9 izreplicate");
            server.kill9();
            server.start();
            log_.add("----- izreplicate started again");
        }
    }
    runner.join();
    if (late > 0) fmt::print(stderr, "note: {} of the kills came after the workload had ended\n", late);
    settle_and_compare(server);
}

auto interface_workload_name = [](const auto& info) {
    return fmt::format("{}_seed{}", std::get<0>(info.param) == FsType::xfs ? "xfs" : "ext4", std::get<1>(info.param));
};
INSTANTIATE_TEST_SUITE_P(Seeds, InterfaceWorkload,
                         ::testing::Values(std::tuple{FsType::ext4, 1u}, std::tuple{FsType::xfs, 2u}),
                         interface_workload_name);

// More sequences of the workload alone (the sync and kill variants above
// cost several times as much). In the suite: about 4 s each.
class InterfaceWorkloadMoreSeeds : public InterfaceWorkload {};

TEST_P(InterfaceWorkloadMoreSeeds, Converges) {
    auto& server = add_server();
    start_agent();
    workload();
    settle_and_compare(server);
}

INSTANTIATE_TEST_SUITE_P(Seeds, InterfaceWorkloadMoreSeeds,
                         ::testing::Values(std::tuple{FsType::ext4, 3u}, std::tuple{FsType::xfs, 4u}),
                         interface_workload_name);

// Each interface on its own (with creates to work on): when a mixed run
// diverges, these say whether one way of changing files is missed outright
// or only its meeting with another. Groups keep the count down; a group's
// kinds share a capture path.
struct InterfaceGroup {
    const char* name;
    std::vector<std::string> kinds;
};

const std::vector<InterfaceGroup>& interface_groups() {
    static const std::vector<InterfaceGroup> groups = {
        {"plain", {"write", "mkdir", "rename", "rename-dir", "unlink", "rmdir", "symlink", "chmod", "chown", "utimes"}},
        {"exchange", {"exchange"}},
        {"noreplace", {"noreplace"}},
        {"whiteout", {"whiteout"}},
        {"mmap", {"mmap"}},
        {"aio", {"aio", "aio-direct"}},
        {"uring", {"uring", "uring-direct"}},
        {"tmpfile", {"tmpfile"}},
        {"copy_clone", {"copy-range", "clone"}},
        {"fallocate", {"fallocate", "fallocate-refused"}},
        {"splice", {"splice", "sendfile"}},
        {"truncate_sparse", {"truncate", "sparse"}},
        {"deep", {"deep"}},
        {"xattr_acl", {"xattr", "acl"}},
        {"link_special", {"link", "special"}},
    };
    return groups;
}

class InterfaceGroupWorkload : public Replication, public ::testing::WithParamInterface<std::tuple<FsType, size_t>> {
protected:
    void SetUp() override {
        Replication::SetUp();
        if (std::get<0>(GetParam()) != FsType::ext4)
            agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", std::get<0>(GetParam()));
    }
};

TEST_P(InterfaceGroupWorkload, Converges) {
    auto& group = interface_groups()[std::get<1>(GetParam())];
    auto& server = add_server();
    start_agent();
    OpLog log;
    std::string error;
    try {
        random_interface_operations(agent_->dir(), 7 + static_cast<uint32_t>(std::get<1>(GetParam())), 400, log,
                                    OperationKinds{.only = group.kinds, .skip = {}});
    } catch (const std::exception& e) {
        error = e.what();
    }
    ops_ = log.text();
    EXPECT_EQ(error, "");
    sync_ok(20);
    expect_converged(server);
}

INSTANTIATE_TEST_SUITE_P(Each, InterfaceGroupWorkload,
                         ::testing::Combine(::testing::Values(FsType::ext4, FsType::xfs),
                                            ::testing::Range(size_t{0}, size_t{15})),
                         [](const auto& info) {
                             return fmt::format("{}_{}", std::get<0>(info.param) == FsType::xfs ? "xfs" : "ext4",
                                                interface_groups()[std::get<1>(info.param)].name);
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

// A directory exchanged with a file under another parent: XFS gives the
// directory a new mtime (its ".." changed), which the exchange's record
// does not carry; the directory, now at the file's old name, gets it
// afterwards, not the file now at the directory's old name.
TEST_P(RenameFlagsReplication, ADirectoryExchangedWithAFileUnderAnotherParentKeepsItsMtime) {
    if (GetParam() != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", GetParam());
    auto& server = add_server();
    auto d = agent_->dir();
    fs::create_directories(d / "p1/dir/inner");
    fs::create_directories(d / "p2");
    std::ofstream(d / "p2/file") << "a file";
    start_agent();
    sync_ok();
    std::this_thread::sleep_for(20ms);  // a later mtime than the one the replica has
    ASSERT_EQ(rename2(d / "p1/dir", d / "p2/file", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2(d / "p2/file", d / "p1/dir", RENAME_EXCHANGE), 0) << std::strerror(errno);
    sync_ok();
    expect_converged(server);
    ASSERT_EQ(rename2(d / "p1/dir", d / "p2/file", RENAME_EXCHANGE), 0) << std::strerror(errno);
    sync_ok();
    expect_converged(server);
}

// A whiteout is made without an event of its own: the agent looks for it
// when it reads the rename. Read late, after the directory holding the old
// name was renamed, the whiteout is where the directory went, not at the
// old path.
TEST_P(RenameFlagsReplication, AWhiteoutInADirectoryMovedBeforeTheRenameIsReadConverges) {
    if (GetParam() != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", GetParam());
    auto put = [](const fs::path& p, const std::string& data) { std::ofstream(p, std::ios::binary) << data; };
    auto& server = add_server();
    auto d = agent_->dir();
    fs::create_directories(d / "dir");
    put(d / "dir/w", "whited out");
    start_agent();
    sync_ok();
    agent_->pause();
    ASSERT_EQ(rename2(d / "dir/w", d / "dir/w2", RENAME_WHITEOUT), 0) << std::strerror(errno);
    ASSERT_EQ(rename2(d / "dir", d / "moved", 0), 0) << std::strerror(errno);
    agent_->resume();
    sync_ok();
    expect_converged(server);
    struct stat st{};
    ASSERT_EQ(::lstat((server.replica("data") / "moved/w").c_str(), &st), 0) << std::strerror(errno);
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << std::oct << "mode " << st.st_mode;
    EXPECT_EQ(st.st_rdev, 0u);
}

// Entries made and then exchanged or renamed before their create events
// are read: each event's name holds another object of the same type by
// then (a symlink, a file, a directory), which must not be taken for the
// one created.
TEST_P(RenameFlagsReplication, EntriesExchangedBeforeTheirCreatesAreReadConverge) {
    if (GetParam() != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", GetParam());
    auto put = [](const fs::path& p, const std::string& data) { std::ofstream(p, std::ios::binary) << data; };
    auto& server = add_server();
    auto d = agent_->dir();
    start_agent();
    sync_ok();
    agent_->pause();
    ASSERT_EQ(::symlink("somewhere", (d / "s1").c_str()), 0);
    ASSERT_EQ(::symlink("elsewhere", (d / "s2").c_str()), 0);
    put(d / "f1", "first file");
    put(d / "f2", "second");
    ASSERT_EQ(::symlink("away", (d / "s3").c_str()), 0);
    put(d / "f3", "third file");
    fs::create_directories(d / "d1/in1");
    fs::create_directories(d / "d2");
    put(d / "d2/x", "in d2");
    ASSERT_EQ(rename2(d / "s1", d / "s2", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2(d / "f1", d / "f2", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2(d / "s3", d / "f3", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2(d / "d1", d / "d2", RENAME_EXCHANGE), 0) << std::strerror(errno);
    put(d / "f3.new", "replaces the symlink");
    ASSERT_EQ(rename2(d / "f3", d / "f3.old", 0), 0) << std::strerror(errno);
    ASSERT_EQ(rename2(d / "f3.new", d / "f3", 0), 0) << std::strerror(errno);
    put(d / "d1/x", "written through the exchanged name");
    agent_->resume();
    sync_ok();
    expect_converged(server);
    EXPECT_EQ(read_all(server.replica("data") / "f1"), "second");
    EXPECT_EQ(read_all(server.replica("data") / "f3"), "replaces the symlink");
    EXPECT_EQ(read_all(server.replica("data") / "s3"), "third file");
}

// A file exchanged with one from outside the watched directory: the name
// holds another file, which the replica must not take for the one it has
// there (a creation over its own file reads as a replay of it, keeping
// its xattrs).
TEST_P(RenameFlagsReplication, AFileExchangedWithOneFromOutsideKeepsNoneOfTheOldOnesXattrs) {
    if (GetParam() != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", GetParam());
    auto put = [](const fs::path& p, const std::string& data) { std::ofstream(p, std::ios::binary) << data; };
    auto& server = add_server();
    auto d = agent_->dir();
    auto outside = d.parent_path() / "outside";
    fs::create_directories(outside);
    put(outside / "o", "from outside");
    put(d / "f", "inside, with an xattr");
    ASSERT_EQ(::setxattr((d / "f").c_str(), "user.tag", "inside", 6, 0), 0);
    start_agent();
    sync_ok();
    ASSERT_EQ(rename2(outside / "o", d / "f", RENAME_EXCHANGE), 0) << std::strerror(errno);
    sync_ok();
    expect_converged(server);
    EXPECT_EQ(read_all(server.replica("data") / "f"), "from outside");
}

// A seeded burst of exchanges, renames, whiteouts, writes and removals
// among a few names, half of it made while the agent reads nothing (events
// merge, entries change again before their events are read). IZ_E2E_SEED
// runs another burst.
TEST_P(RenameFlagsReplication, ABurstOfExchangesAndWhiteoutsConverges) {
    if (GetParam() != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", GetParam());
    auto& server = add_server();
    auto d = agent_->dir();
    for (auto sub : {"d0", "d1", "d2"}) fs::create_directories(d / sub);
    start_agent();
    uint32_t seed = 20261207;  // IZ_E2E_SEED runs another burst
    if (const char* s = std::getenv("IZ_E2E_SEED")) seed = static_cast<uint32_t>(std::strtoul(s, nullptr, 10));
    std::mt19937 rng(seed);
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

// The shipper reads a directory's mtime through its path when a record of
// an entry in it ships. Renames made before that read but journaled after
// it (the agent was behind) put another directory at the path: its mtime
// went to this one on the replica, and nothing later set it right.
TEST_P(RenameFlagsReplication, ADirectoryMovedAwayBeforeItsEntryShippedKeepsItsOwnMtime) {
    if (GetParam() != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", GetParam());
    auto& server = add_server();
    auto d = agent_->dir();
    fs::create_directories(d / "a/s");
    fs::create_directories(d / "b/s");
    start_agent();
    std::ofstream(d / "b/s/e") << "made in b/s";
    sync_ok();

    agent_->pause();
    // a/s gets an mtime later than b/s's (a sync apart).
    std::ofstream(d / "a/s/f") << "made in a/s";
    ASSERT_EQ(rename2(d / "a", d / "x", 0), 0) << std::strerror(errno);
    ASSERT_EQ(rename2(d / "b", d / "a", 0), 0) << std::strerror(errno);
    agent_->resume();
    sync_ok();
    expect_converged(server);
}

// XFS sets the mtime of a directory an exchange moves to another parent.
// With one side moved on before the agent read the events, the exchange
// cannot be told from a rename that replaced the other side, and is
// journaled as one: the directory moved must still get its new mtime.
TEST_P(RenameFlagsReplication, AnExchangeJournaledAsARenameCarriesTheMovedDirectorysMtime) {
    if (GetParam() != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", GetParam());
    auto& server = add_server();
    auto d = agent_->dir();
    fs::create_directories(d / "d0/p");
    fs::create_directories(d / "d1/q");
    start_agent();
    sync_ok();

    agent_->pause();
    ASSERT_EQ(rename2(d / "d0/p", d / "d1/q", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2(d / "d0/p", d / "d0/r", 0), 0) << std::strerror(errno);
    agent_->resume();
    sync_ok();
    expect_converged(server);
}

// Two chains of directories with the same names, made while the agent was
// down, journaled by its rescan and exchanged before the shipper reached
// them (the server was away): every mkdir read its parent's mtime through
// a path that named the other chain by then.
TEST_P(RenameFlagsReplication, ChainsMadeWhileTheAgentWasDownThenExchangedKeepTheirOwnMtimes) {
    if (GetParam() != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", GetParam());
    auto& server = add_server();
    auto d = agent_->dir();
    fs::create_directories(d / "A");
    fs::create_directories(d / "B");
    start_agent();
    sync_ok();

    server.kill9();
    uint64_t before = agent_->status().value("head_lsn", uint64_t{0});
    ASSERT_GT(before, 0u);
    ASSERT_EQ(agent_->stop().exit_code, 0);
    fs::create_directories(d / "A/l0/l1/l2/l3");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // B's chain gets later mtimes
    fs::create_directories(d / "B/l0/l1/l2/l3");
    start_agent();
    // The rescan journals both chains.
    ASSERT_TRUE(eventually([&] { return agent_->status().value("head_lsn", uint64_t{0}) >= before + 8; }, std::chrono::seconds(20)));
    ASSERT_EQ(rename2(d / "A", d / "B", RENAME_EXCHANGE), 0) << std::strerror(errno);
    server.start();
    sync_ok();
    expect_converged(server);
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

// A program that makes each file under a temporary name and publishes it
// with a rename: create, three pwrites, close, chmod, rename. The server is
// killed (-9) and restarted again and again meanwhile, each kill landing
// somewhere else in that sequence: between a commit and its ack, while a
// file's content is staged but not linked, between a rename and the next
// syncfs. Once `izwatch sync` says the server has everything, it must.
TEST_F(Replication, ServerKilledRepeatedlyWhileFilesArePublishedByRename) {
    auto& server = add_server();
    // The link is slower than the workload: the server always has a backlog
    // arriving, so every kill lands in the middle of something.
    ASSERT_TRUE(links_[0]->limit_rate_a_to_b("100mbit"));
    start_agent();
    std::atomic<bool> stop{false};
    std::atomic<int> made{0};
    std::string workload_error;
    std::jthread workload([&] {
        try {
            auto dir = agent_->dir() / "pub";
            fs::create_directories(dir);
            for (int i = 0; !stop && i < 2500; ++i) {  // 280 MB at most: the server has 512
                auto tmp = dir / fmt::format("f{}", i);
                int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                if (fd < 0) throw std::runtime_error("create " + tmp.string() + ": " + std::strerror(errno));
                for (int part = 0; part < 3; ++part) {
                    std::string bytes(37000 + 17 * i % 4096, static_cast<char>('a' + (i + part) % 26));
                    for (size_t k = 0; k < bytes.size(); k += 101) bytes[k] = static_cast<char>(i * 7 + k);
                    off_t at = static_cast<off_t>(part) * 37000;
                    if (::pwrite(fd, bytes.data(), bytes.size(), at) != static_cast<ssize_t>(bytes.size()))
                        throw std::runtime_error("pwrite " + tmp.string() + ": " + std::strerror(errno));
                }
                ::close(fd);
                fs::permissions(tmp, fs::perms(0644));
                fs::rename(tmp, dir / fmt::format("g{}", i));
                made = i + 1;
                std::this_thread::sleep_for(2ms);
            }
        } catch (const std::exception& e) {
            workload_error = e.what();
        }
    });
    // Kills at irregular moments, each at another point of the stream.
    for (int kill = 0; kill < 10; ++kill) {
        std::this_thread::sleep_for(std::chrono::milliseconds(kill == 0 ? 1500 : 300 + 397 * kill % 900));
        server.kill9();
        std::this_thread::sleep_for(150ms);
        server.start();
    }
    std::this_thread::sleep_for(500ms);
    stop = true;
    workload.join();
    ASSERT_EQ(workload_error, "");
    ASSERT_GT(made.load(), 100);
    ASSERT_TRUE(links_[0]->limit_rate_a_to_b("10gbit"));
    sync_ok(120);
    expect_converged(server);
}

// Walks `rel` one component at a time from `root` (no path of more than
// one name is ever handed to the kernel) and opens what it ends at with
// `flags`; -1 when any step fails.
int open_deep(const fs::path& root, const std::string& rel, int flags) {
    int dir = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (size_t start = 0; dir >= 0;) {
        size_t slash = rel.find('/', start);
        auto name = rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        int next = ::openat(dir, name.c_str(), (slash == std::string::npos ? flags : O_RDONLY | O_DIRECTORY) |
                                                   O_NOFOLLOW | O_CLOEXEC, 0644);
        ::close(dir);
        if (slash == std::string::npos) return next;
        dir = next;
        start = slash + 1;
    }
    return -1;
}

std::string read_fd(int fd) {
    std::string out;
    char buf[65536];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    return out;
}

// What a deep directory holds, as the test's manifest would list it (it
// cannot: its paths are longer than PATH_MAX): each entry's name, type,
// mode, size, mtime and content, read through descriptors.
std::string deep_manifest(const fs::path& root, const std::string& rel) {
    int dir = open_deep(root, rel, O_RDONLY | O_DIRECTORY);
    if (dir < 0) return "(cannot open the deep directory: " + std::string(std::strerror(errno)) + ")";
    std::string out;
    struct stat st{};
    ::fstat(dir, &st);
    out += fmt::format(". mode={:o} mtime={}.{}\n", st.st_mode, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    DIR* d = ::fdopendir(dir);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d))
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
    std::sort(names.begin(), names.end());
    for (auto& n : names) {
        ::fstatat(::dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW);
        out += fmt::format("{} mode={:o} size={} mtime={}.{}", n, st.st_mode, st.st_size, st.st_mtim.tv_sec,
                           st.st_mtim.tv_nsec);
        if (S_ISREG(st.st_mode)) {
            int fd = ::openat(::dirfd(d), n.c_str(), O_RDONLY | O_CLOEXEC);
            out += " content=" + (fd < 0 ? std::string("?") : read_fd(fd));
            if (fd >= 0) ::close(fd);
        }
        out += "\n";
    }
    ::closedir(d);
    return out;
}

// A tree deeper than PATH_MAX (40 levels of 200-byte names, 8 KB of path)
// with files at the bottom and along the way. The server refused the first
// path over 4095 bytes and dropped the connection; the agent sent the same
// record again for ever, and nothing after it arrived.
TEST_F(Replication, PathsLongerThanPathMaxReachTheReplica) {
    auto& server = add_server();
    start_agent();
    std::string rel = "deep";
    ASSERT_EQ(::mkdir((agent_->dir() / rel).c_str(), 0755), 0);
    for (int level = 0; level < 40; ++level) {
        rel += "/" + std::string(199, static_cast<char>('a' + level % 26)) + static_cast<char>('0' + level % 10);
        int parent = open_deep(agent_->dir(), rel.substr(0, rel.rfind('/')), O_RDONLY | O_DIRECTORY);
        ASSERT_GE(parent, 0) << std::strerror(errno);
        ASSERT_EQ(::mkdirat(parent, rel.substr(rel.rfind('/') + 1).c_str(), 0750), 0) << std::strerror(errno);
        ::close(parent);
        if (level % 10 == 9 || level == 39) {
            int fd = open_deep(agent_->dir(), rel + "/file.txt", O_WRONLY | O_CREAT | O_EXCL);
            ASSERT_GE(fd, 0) << std::strerror(errno);
            auto text = fmt::format("at level {}, {} bytes deep\n", level, rel.size());
            ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
            ::close(fd);
        }
    }
    ASSERT_GT(rel.size(), 8000u);
    // Renamed and written to while deep, and records after them must follow.
    {
        int dir = open_deep(agent_->dir(), rel, O_RDONLY | O_DIRECTORY);
        ASSERT_GE(dir, 0);
        ASSERT_EQ(::renameat(dir, "file.txt", dir, "renamed.txt"), 0);
        int fd = ::openat(dir, "renamed.txt", O_WRONLY | O_APPEND | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::write(fd, "appended\n", 9), 9);
        ::close(fd);
        ASSERT_EQ(::fchmod(dir, 0700), 0);
        ::close(dir);
    }
    every_operation(agent_->dir() / "after");
    sync_ok();
    for (size_t at = rel.find('/', 1000); at != std::string::npos; at = rel.find('/', at + 2000)) {
        auto part = rel.substr(0, at);
        EXPECT_EQ(deep_manifest(server.replica("data"), part), deep_manifest(agent_->dir(), part))
            << "at " << part.size() << " bytes deep";
    }
    auto bottom_src = deep_manifest(agent_->dir(), rel);
    EXPECT_NE(bottom_src.find("renamed.txt"), std::string::npos) << bottom_src;
    EXPECT_EQ(deep_manifest(server.replica("data"), rel), bottom_src);
    // The rest of the tree, by the test's manifest (which cannot go deep).
    EXPECT_EQ(manifest(server.replica("data") / "after"), manifest(agent_->dir() / "after"));

    // Changed while no agent runs: the next start's scan finds it at depth.
    agent_->kill9();
    {
        int dir = open_deep(agent_->dir(), rel, O_RDONLY | O_DIRECTORY);
        ASSERT_GE(dir, 0);
        int fd = ::openat(dir, "renamed.txt", O_WRONLY | O_TRUNC | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::write(fd, "rewritten while down\n", 21), 21);
        ::close(fd);
        fd = ::openat(dir, "new.txt", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::write(fd, "new\n", 4), 4);
        ::close(fd);
        ::close(dir);
    }
    start_agent();
    sync_ok();
    bottom_src = deep_manifest(agent_->dir(), rel);
    EXPECT_NE(bottom_src.find("rewritten while down"), std::string::npos) << bottom_src;
    EXPECT_EQ(deep_manifest(server.replica("data"), rel), bottom_src);
}

// The source holds a name this server can never apply: the one it keeps
// its own state under, inside the fileset's directory. Refused as an
// attack, it dropped the connection and the agent sent the same record
// again for ever, nothing after it arriving. Now it is left out and
// reported (the server's log, izwatch status, and izwatch sync fails
// naming it), and everything after it arrives.
TEST_F(Replication, ARecordTheServerCannotApplyDoesNotHoldUpTheRest) {
    servers_.push_back(std::make_unique<ServerHost>(*server_ns_[0], links_[0]->address_b(), key_, "e2e-dst0"));
    auto& server = *servers_.back();
    server.start({"--state-dir", (server.replica("data") / ".state").string()});
    start_agent();
    every_operation(agent_->dir() / "before");
    fs::create_directories(agent_->dir() / ".state/sub");
    write_file(agent_->dir() / ".state/sub/file", "a name the server keeps for itself\n");
    every_operation(agent_->dir() / "after");
    bulk_files(agent_->dir() / "after", 20, 5000, 3);
    auto r = agent_->sync(20);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("cannot apply '.state"), std::string::npos) << r.err;
    auto s = agent_->status();
    ASSERT_EQ(s["servers"].size(), 1u);
    auto rejected = s["servers"][0].value("rejected", nlohmann::json::array());
    ASSERT_FALSE(rejected.empty()) << s.dump();
    EXPECT_EQ(rejected[0].value("path", "").substr(0, 6), ".state") << s.dump();
    EXPECT_EQ(s["servers"][0].value("acked_lsn", 0), s.value("head_lsn", 1)) << s.dump();
    EXPECT_NE(server.log().find("cannot apply mkdir '.state'"), std::string::npos) << tail(server.log());
    // Everything else is there, before and after it.
    EXPECT_EQ(manifest(server.replica("data"), ".state"), manifest(agent_->dir(), ".state"));
    EXPECT_FALSE(fs::exists(server.replica("data") / ".state/sub"));
}

// On the server, a directory of the replica is replaced by a symlink to a
// directory outside it (behind the replicator's back), and the source then
// writes into that directory. Those records meet the symlink: nothing is
// reached through it, but they were refused as an attack, which dropped
// the connection; the agent sent the same record again on the next one for
// ever and nothing after it arrived. Now they are left out and reported
// (the server's log, izwatch status and sync), and everything after them
// arrives.
TEST_F(Replication, ARecordThroughASymlinkOnTheReplicaDoesNotHoldUpTheRest) {
    auto& server = add_server();
    start_agent();
    fs::create_directories(agent_->dir() / "sub");
    write_file(agent_->dir() / "sub/first", "before the link\n");
    sync_ok();
    const fs::path outside = server.root() / "outside";
    fs::create_directories(outside);
    fs::remove_all(server.replica("data") / "sub");
    fs::create_symlink(outside, server.replica("data") / "sub");
    write_file(agent_->dir() / "sub/second", "meets the link on the replica\n");
    every_operation(agent_->dir() / "after");
    bulk_files(agent_->dir() / "after", 20, 5000, 7);
    auto r = agent_->sync(30);
    // Everything else is there, and nothing went through the link.
    EXPECT_EQ(manifest(server.replica("data") / "after"), manifest(agent_->dir() / "after"));
    EXPECT_TRUE(fs::is_empty(outside));
    EXPECT_TRUE(fs::is_symlink(server.replica("data") / "sub"));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("goes through a symlink, which is never followed"), std::string::npos) << r.err;
    auto s = agent_->status();
    ASSERT_EQ(s["servers"].size(), 1u);
    auto rejected = s["servers"][0].value("rejected", nlohmann::json::array());
    ASSERT_FALSE(rejected.empty()) << s.dump();
    EXPECT_EQ(rejected[0].value("path", "").substr(0, 4), "sub/") << s.dump();
    EXPECT_EQ(s["servers"][0].value("acked_lsn", 0), s.value("head_lsn", 1)) << s.dump();
    EXPECT_NE(server.log().find("goes through a symlink, which is never followed; left out"), std::string::npos)
        << tail(server.log());
}

// What a server can never apply as it stands, found only when applying
// (the replica's filesystem, its mounts, its flags, its user namespace):
// each record was either retried for ever (the connection dropped and the
// same record sent again, nothing after it arriving, izwatch sync never
// returning) or skipped with nobody told. Now each is left out and
// reported: sync fails naming the path and the reason, status lists it,
// the server logs it, and everything after it arrives.
class ApplyOutcomes : public Replication {
protected:
    // `r` is the sync after the record; `path` what status names, `why` a
    // part of the reason, `logged` a part of the server's line.
    void expect_left_out(const ProcessResult& r, ServerHost& server, const std::string& path, const std::string& why,
                         const std::string& logged) {
        EXPECT_EQ(manifest(server.replica("data") / "after"), manifest(agent_->dir() / "after"));
        EXPECT_NE(r.exit_code, 0) << r.out;
        EXPECT_NE(r.err.find(fmt::format("cannot apply '{}'", path)), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
        auto s = agent_->status();
        ASSERT_EQ(s["servers"].size(), 1u);
        auto rejected = s["servers"][0].value("rejected", nlohmann::json::array());
        auto named = std::find_if(rejected.begin(), rejected.end(),
                                  [&](const nlohmann::json& j) { return j.value("path", "") == path; });
        ASSERT_NE(named, rejected.end()) << s.dump();
        EXPECT_NE(named->value("error", "").find(why), std::string::npos) << s.dump();
        EXPECT_EQ(s["servers"][0].value("acked_lsn", 0), s.value("head_lsn", 1)) << s.dump();
        EXPECT_NE(server.log().find(logged), std::string::npos) << tail(server.log());
        EXPECT_EQ(server.log().find("dropping the connection"), std::string::npos) << tail(server.log());
    }

    // Everything after the record, to show it does not hold up the rest
    // (`owners`: every_operation, which gives files owners of their own).
    void then_more(bool owners = true) {
        if (owners) every_operation(agent_->dir() / "after");
        bulk_files(agent_->dir() / "after", 20, 5000, 5);
    }
};

// Something is mounted inside the replica (here a tmpfs on "mnt"), and the
// source moves a file out of that directory: on the replica the rename
// crosses filesystems (EXDEV).
TEST_F(ApplyOutcomes, ARenameAcrossAMountInsideTheReplicaIsRejected) {
    servers_.push_back(std::make_unique<ServerHost>(*server_ns_[0], links_[0]->address_b(), key_, "e2e-dst0"));
    auto& server = *servers_.back();
    // Before the server starts: its mount namespace is a copy made then.
    const fs::path mnt = server.replica("data") / "mnt";
    fs::create_directories(mnt);
    ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=16m"), 0) << std::strerror(errno);
    struct Unmount {
        fs::path at;
        ~Unmount() { ::umount2(at.c_str(), MNT_DETACH); }
    } unmount{mnt};
    server.start();
    start_agent();
    fs::create_directories(agent_->dir() / "mnt");
    write_file(agent_->dir() / "mnt/file", "moved out of the mount\n");
    sync_ok();
    ASSERT_EQ(read_all(mnt / "file"), "moved out of the mount\n");
    fs::rename(agent_->dir() / "mnt/file", agent_->dir() / "moved");
    then_more();
    auto r = agent_->sync(30);
    expect_left_out(r, server, "mnt/file", "different filesystems of the replica", "cannot apply rename 'mnt/file'");
    EXPECT_EQ(read_all(mnt / "file"), "moved out of the mount\n");
}

// The replica's file already has as many links as ext4 takes (65000; the
// others are outside the fileset, on the same filesystem), and the source
// adds one: EMLINK, which was skipped with nobody told.
TEST_F(ApplyOutcomes, ALinkBeyondTheReplicasLinkLimitIsRejected) {
    auto& server = add_server();
    start_agent();
    write_file(agent_->dir() / "file", "linked too often\n");
    sync_ok();
    const fs::path others = server.root() / "other-links";
    fs::create_directories(others);
    const auto target = server.replica("data") / "file";
    for (int i = 0;; ++i) {
        if (::link(target.c_str(), (others / std::to_string(i)).c_str()) == 0) continue;
        ASSERT_EQ(errno, EMLINK) << std::strerror(errno);
        break;
    }
    fs::create_hard_link(agent_->dir() / "file", agent_->dir() / "second-name");
    then_more();
    auto r = agent_->sync(30);
    expect_left_out(r, server, "file", "more links than the replica's filesystem takes",
                    "cannot apply link 'file'");
    EXPECT_FALSE(fs::exists(server.replica("data") / "second-name"));
}

// A file changed on the server behind the replicator's back is kept aside
// as NAME.conflict-HOST-TIME[-N] before the source's version replaces it;
// here all hundred names of every second are taken. The server's version
// stays, and the source's is left out (it was retried for ever).
TEST_F(ApplyOutcomes, AConflictWithNoFreeNameForTheServersVersionIsRejected) {
    servers_.push_back(std::make_unique<ServerHost>(*server_ns_[0], links_[0]->address_b(), key_, "e2e-dst0"));
    auto& server = *servers_.back();
    server.start({"--host-name", "srv"});
    start_agent();
    write_file(agent_->dir() / "file", "the source's first version\n");
    sync_ok();
    write_file(server.replica("data") / "file", "the server's own version\n");
    std::time_t now = std::time(nullptr);
    for (std::time_t t = now - 2; t < now + 90; ++t) {
        struct tm tm{};
        gmtime_r(&t, &tm);
        char stamp[32];
        std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        for (int i = 0; i < 100; ++i) {
            auto name = fmt::format("file.conflict-srv-{}{}", stamp, i ? fmt::format("-{}", i) : "");
            std::ofstream(server.replica("data") / name) << "taken\n";
        }
    }
    write_file(agent_->dir() / "file", "the source's second version\n");
    then_more();
    auto r = agent_->sync(30);
    expect_left_out(r, server, "file", "no free name to keep the server's version", "'file' at LSN");
    EXPECT_EQ(read_all(server.replica("data") / "file"), "the server's own version\n");
}

// A directory of the replica is made immutable (chattr +i), and the source
// removes a name in it that the replica never got (its creation met the
// flag): the directory's new mtime cannot be set. That failed the batch,
// and the agent sent it again for ever.
TEST_F(ApplyOutcomes, ADirectoryMtimeTheReplicaForbidsIsRejected) {
    auto& server = add_server();
    start_agent();
    fs::create_directories(agent_->dir() / "frozen");
    write_file(agent_->dir() / "frozen/kept", "in a directory made immutable on the replica\n");
    sync_ok();
    const fs::path frozen = server.replica("data") / "frozen";
    ASSERT_EQ(run_process({"chattr", "+i", frozen.string()}).exit_code, 0);
    struct Thaw {
        fs::path at;
        ~Thaw() { run_process({"chattr", "-i", at.string()}); }
    } thaw{frozen};
    write_file(agent_->dir() / "frozen/new", "never reaches the replica\n");
    (void)agent_->sync(30);
    fs::remove(agent_->dir() / "frozen/new");
    then_more();
    auto r = agent_->sync(30);
    expect_left_out(r, server, "frozen", "set mtime of the directory 'frozen'", "on 'frozen': set mtime");
    EXPECT_EQ(read_all(frozen / "kept"), "in a directory made immutable on the replica\n");
}

// A directory of the replica is made immutable (chattr +i) and the source
// makes and removes entries in it: each was skipped with an info line in
// the server's log, and izwatch sync said done with the replica different.
// Now each is left out and reported. Once the flag is lifted, verify
// --repair makes the replica equal, the rejections leave status (they
// stayed until the agent restarted) and sync succeeds again.
TEST_F(ApplyOutcomes, EntriesInADirectoryImmutableOnTheReplicaAreRejectedUntilARepair) {
    auto& server = add_server();
    start_agent();
    fs::create_directories(agent_->dir() / "frozen");
    write_file(agent_->dir() / "frozen/old", "removed on the source\n");
    sync_ok();
    const fs::path frozen = server.replica("data") / "frozen";
    ASSERT_EQ(run_process({"chattr", "+i", frozen.string()}).exit_code, 0);
    struct Thaw {
        fs::path at;
        ~Thaw() { run_process({"chattr", "-i", at.string()}); }
    } thaw{frozen};
    write_file(agent_->dir() / "frozen/new", "reaches the replica only once the flag is lifted\n");
    fs::remove(agent_->dir() / "frozen/old");
    then_more();
    auto r = agent_->sync(30);
    const std::string eperm = std::strerror(EPERM);
    expect_left_out(r, server, "frozen/new", eperm, "'frozen/new' at LSN");
    expect_left_out(r, server, "frozen/old", eperm, "'frozen/old' at LSN");
    EXPECT_TRUE(fs::exists(frozen / "old"));
    EXPECT_FALSE(fs::exists(frozen / "new"));

    ASSERT_EQ(run_process({"chattr", "-i", frozen.string()}).exit_code, 0);
    auto repaired = agent_->izwatch("verify", {"--repair"});
    EXPECT_EQ(repaired.exit_code, 1) << repaired.out << repaired.err;
    EXPECT_NE(repaired.out.find("the replica is now equal"), std::string::npos) << repaired.out << repaired.err;
    expect_converged(server);
    auto s = agent_->status();
    EXPECT_TRUE(s["servers"][0].value("rejected", nlohmann::json::array()).empty()) << s.dump();
    sync_ok();
}

// The server applies again, after a reconnection, the records it had not
// acknowledged (here it is killed and restarted while a large file is on
// its way), and reports each rejection again as it meets it: status
// listed it once per replay, and every sync named it as often. The agent
// keeps each (record, part) once.
TEST_F(ApplyOutcomes, ARejectionReportedAgainAfterAReconnectionIsListedOnce) {
    auto& server = add_server();
    start_agent();
    fs::create_directories(agent_->dir() / "frozen");
    sync_ok();
    const fs::path frozen = server.replica("data") / "frozen";
    ASSERT_EQ(run_process({"chattr", "+i", frozen.string()}).exit_code, 0);
    struct Thaw {
        fs::path at;
        ~Thaw() { run_process({"chattr", "-i", at.string()}); }
    } thaw{frozen};
    // 3 MiB at 8 Mbit/s: the records before the file are applied (and the
    // rejection told) seconds before anything of them is acknowledged.
    ASSERT_TRUE(links_[0]->limit_rate_a_to_b("8mbit"));
    agent_->pause();  // all of it in one window of the shipper
    fs::create_directories(agent_->dir() / "a");  // where the server resumes after a kill
    fs::create_directories(agent_->dir() / "b");
    write_file(agent_->dir() / "frozen/new", "left out\n");
    bulk_files(agent_->dir() / "big", 1, 3 << 20, 11);
    agent_->resume();
    uint64_t lsn = 0, acked = 0;
    bool told = eventually(
        [&] {
            auto s = agent_->status();
            auto rejected = s["servers"][0].value("rejected", nlohmann::json::array());
            if (rejected.empty()) return false;
            lsn = rejected[0].value("lsn", uint64_t{0});
            acked = s["servers"][0].value("acked_lsn", uint64_t{0});
            return true;
        },
        20s);
    server.kill9();
    ASSERT_TRUE(told) << agent_->log();
    ASSERT_LT(acked, lsn) << "the record was acknowledged before the server could be killed";
    ASSERT_TRUE(links_[0]->limit_rate_a_to_b("10gbit"));
    server.start();
    auto r = agent_->sync(30);
    EXPECT_NE(r.exit_code, 0) << r.out;
    // Reported again by the server after its restart...
    auto count = [](const std::string& text, const std::string& what) {
        size_t n = 0;
        for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
        return n;
    };
    std::istringstream log(server.log());
    size_t reports = 0;
    for (std::string line; std::getline(log, line);)
        if (line.find("cannot apply") != std::string::npos && line.find("'frozen/new' at LSN") != std::string::npos)
            ++reports;
    // ... and listed once.
    auto s = agent_->status();
    auto rejected = s["servers"][0].value("rejected", nlohmann::json::array());
    ASSERT_FALSE(rejected.empty()) << s.dump();
    EXPECT_GT(reports, rejected.size()) << "the record was not replayed:\n" << tail(server.log());
    std::set<std::pair<uint64_t, std::string>> parts;
    for (auto& j : rejected) {
        EXPECT_EQ(j.value("path", ""), "frozen/new") << s.dump();
        EXPECT_TRUE(parts.emplace(j.value("lsn", uint64_t{0}), j.value("path", "")).second)
            << "listed twice: " << j.dump() << "\n" << s.dump();
    }
    EXPECT_EQ(s["servers"][0].value("rejected_total", uint64_t{0}), rejected.size()) << s.dump();
    EXPECT_EQ(s["servers"][0].value("acked_lsn", 0), s.value("head_lsn", 1)) << s.dump();
    EXPECT_EQ(count(r.err, "cannot apply 'frozen/new'"), rejected.size()) << r.err;
    // A repeat is dropped, not the connection's reading with it.
    EXPECT_EQ(agent_->log().find("no answer from the server"), std::string::npos) << agent_->log();
}

// The server runs in a user namespace of its own where only root is mapped
// (as a container would): an owner the source gives (70000) cannot be set
// there (EINVAL). The record was skipped with nobody told, its mode, times
// and content left out too. Now the rest is applied and the owner reported.
TEST_F(ApplyOutcomes, AnOwnerTheReplicaCannotTakeIsReportedAndTheRestApplied) {
    servers_.push_back(std::make_unique<ServerHost>(*server_ns_[0], links_[0]->address_b(), key_, "e2e-dst0"));
    auto& server = *servers_.back();
    server.run_under({"unshare", "--user", "--map-root-user"});
    server.start();
    start_agent();
    write_file(agent_->dir() / "owned", "owned by someone the replica does not know\n", 0640);
    ASSERT_EQ(::chown((agent_->dir() / "owned").c_str(), 70000, 70000), 0);
    ASSERT_EQ(::chmod((agent_->dir() / "owned").c_str(), 0604), 0);
    then_more(false);
    auto r = agent_->sync(30);
    expect_left_out(r, server, "owned", "chown 'owned' to 70000:70000", "on 'owned': chown");
    struct stat st{};
    ASSERT_EQ(::lstat((server.replica("data") / "owned").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0604u);
    EXPECT_EQ(read_all(server.replica("data") / "owned"), "owned by someone the replica does not know\n");
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

// A directory moved into a new directory of its old name, then removed
// while no agent runs: the state saved before the kill knew none of it, so
// the restart must compare with what the journal told the servers, and
// remove the subtree children first, as the directories the replica holds.
TEST_F(Replication, AgentKilledAfterNestedMovesThenTheSubtreeRemoved) {
    auto& server = add_server();
    start_agent();
    auto d = agent_->dir();
    fs::create_directories(d / "a/d/e");
    std::ofstream(d / "a/d/e/f") << "";
    fs::rename(d / "a/d", d / "a/d2");
    fs::create_directory(d / "a/d");
    fs::rename(d / "a/d2", d / "a/d/d2");
    sync_ok();
    agent_->kill9();
    fs::remove_all(d / "a/d/d2");
    start_agent();
    sync_ok();
    expect_converged(server);
}

// What was renamed while no agent ran travels as a rename: a 700 MiB file
// with 4 KiB of data and a directory with files in it. Compared by name,
// both were removed and created again, their content shipped anew.
TEST_F(Replication, EntriesRenamedWhileTheAgentIsDownTravelAsRenames) {
    auto& server = add_server();
    start_agent();
    auto d = agent_->dir();
    {
        int fd = ::open((d / "sparse").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::ftruncate(fd, 700ll << 20), 0);
        std::string data(4096, 'x');
        ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 300ll << 20), 4096);
        ::close(fd);
    }
    bulk_files(d, 50, 20000, 5);
    sync_ok();
    agent_->kill9();
    fs::create_directories(d / "moved");
    fs::rename(d / "sparse", d / "moved/sparse-renamed");
    fs::rename(d / "bulk", d / "moved/bulk-renamed");
    start_agent();
    sync_ok();
    auto records = journal_records(agent_->journal());
    size_t last_start = 0;
    for (size_t i = 0; i < records.size(); ++i)
        if (records[i].value("op", "") == "start") last_start = i;
    // Besides the renames, at most the times of a directory whose mtime the
    // state knew older (its mkdir was read before its files were made).
    std::vector<std::string> after_restart;
    for (size_t i = last_start; i < records.size(); ++i) {
        auto op = records[i].value("op", "");
        auto path = records[i].value("path", "");
        if (op == "start" || op == "rescan" || (op == "setattr" && fs::is_directory(d / path))) continue;
        after_restart.push_back(op + " " + path + " -> " + records[i].value("target", ""));
    }
    EXPECT_EQ(after_restart, (std::vector<std::string>{"mkdir moved -> ", "rename bulk -> moved/bulk-renamed",
                                                       "rename sparse -> moved/sparse-renamed"}));
    auto srv = agent_->status()["servers"][0];
    EXPECT_LT(srv.value("data_bytes_sent", uint64_t{1} << 40), uint64_t{64} << 10);
    expect_converged(server);
}

// A mixed workload, the agent killed twice at a random moment of it, and
// the tree worked on while it is down (files and directories renamed into
// each other, trees removed, links, chmod, chown, xattrs): each restart
// journals the differences from what the journal had said, and the
// replica ends as the source, without conflict copies.
class KilledTwice : public Replication, public ::testing::WithParamInterface<FsType> {};

TEST_P(KilledTwice, ChangesWhileTheAgentIsDownConverge) {
    if (GetParam() != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", GetParam());
    auto& server = add_server();
    start_agent();
    uint32_t seed = 4242;
    if (const char* s = std::getenv("IZ_E2E_SEED")) seed = static_cast<uint32_t>(std::strtoul(s, nullptr, 10));
    std::mt19937 rng(seed);
    auto d = agent_->dir();
    for (int round = 0; round < 2; ++round) {
        auto sub = d / fmt::format("w{}", round);
        fs::create_directories(sub);
        std::string log, error;
        std::jthread work([&] {
            try {
                random_operations(sub, seed + round, 2500, &log);
            } catch (const std::exception& e) {
                error = e.what();
            }
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 1000));
        agent_->kill9();
        work.join();
        ops_ += fmt::format("# round {}: agent killed during\n{}", round, log);
        ASSERT_EQ(error, "");
        ops_ += "# while the agent is down\n";
        ASSERT_NO_THROW(changes_to_existing(d, seed + 100 + round, 150, &ops_));
        start_agent();
    }
    sync_ok(120);
    expect_converged(server);
    // The rescans' records took the replica's tree to the source's by their own account too.
    EXPECT_EQ(agent_->log().find("rescan: "), std::string::npos) << agent_->log();
    // Capture goes on from the tree the restart found.
    fs::create_directories(d / "after");
    ASSERT_NO_THROW(random_operations(d / "after", seed + 300, 500, &ops_));
    sync_ok(120);
    expect_converged(server);
}

INSTANTIATE_TEST_SUITE_P(Filesystems, KilledTwice, ::testing::Values(FsType::ext4, FsType::xfs),
                         [](const auto& info) { return std::string(info.param == FsType::xfs ? "xfs" : "ext4"); });

TEST_F(Replication, LinkCutForTwentySecondsDuringAWorkload) {
    auto& server = add_server();
    start_agent();
    // An exception must not leave the thread (it would end the process
    // before the fixture cleans up): it is reported after the join.
    std::string workload_error;
    std::jthread workload([&] {
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

// Content that reaches a file without passing the buffered write
// tracepoints (or the fanotify modify event): each converges on ext4 and
// XFS, with eBPF and on fanotify alone.
class ContentPaths : public Replication, public ::testing::WithParamInterface<std::tuple<FsType, bool>> {
protected:
    void SetUp() override {
        Replication::SetUp();
        if (type() != FsType::ext4) agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src", type());
    }
    FsType type() const { return std::get<0>(GetParam()); }
    bool bpf() const { return std::get<1>(GetParam()); }
    void start_capture() {
        auto r = agent_->start(endpoints(), bpf() ? std::vector<std::string>{} : std::vector<std::string>{"--no-bpf"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(agent_->status().value("capture", ""), bpf() ? "fanotify+ebpf" : "fanotify only");
    }
};

TEST_P(ContentPaths, StoresThroughASharedMappingConverge) {
    if (!bpf()) GTEST_SKIP() << "stores through a mapping raise no fanotify event: only eBPF sees them";
    auto& server = add_server();
    put_file(agent_->dir() / "mapped", 256 * 1024, 'a');
    start_capture();
    sync_ok();
    store_through_mapping(agent_->dir() / "mapped", {100, 70000, 200000}, 300, 'M');
    sync_ok();
    expect_converged(server);
    // Written back by the msync, the pages fault again on the next store.
    store_through_mapping(agent_->dir() / "mapped", {110, 140000}, 50, 'N');
    sync_ok();
    expect_converged(server);
    // A store into a folio still dirty faults no more: made after the agent
    // read the file for the first one, it is found when writeback starts.
    int fd = ::open((agent_->dir() / "mapped").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    auto* map = static_cast<char*>(::mmap(nullptr, 256 * 1024, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    ::close(fd);
    ASSERT_NE(static_cast<void*>(map), MAP_FAILED);
    std::memset(map + 8192, 'P', 100);
    sync_ok();  // journaled and shipped with the first store only
    std::memset(map + 8192 + 200, 'Q', 100);
    ASSERT_EQ(::msync(map, 256 * 1024, MS_SYNC), 0);
    ::munmap(map, 256 * 1024);
    sync_ok();
    expect_converged(server);
}

// A store into a page that a write(2) has left dirty dirties no folio, so
// ext4 reports nothing for it: the agent had journaled only the write's
// bytes, and the rest of what the store changed in that page never shipped.
TEST_P(ContentPaths, AStoreIntoAPageAWriteLeftDirtyConverges) {
    if (!bpf()) GTEST_SKIP() << "stores through a mapping raise no fanotify event: only eBPF sees them";
    auto& server = add_server();
    start_capture();
    auto d = agent_->dir();
    // Written, then stored into through a fresh mapping: the store faults
    // into a folio still dirty from the write. No msync, and still mapped
    // (so still open: no close_write either) when the replica is compared.
    put_file(d / "written-then-mapped", 6000, 'w');
    sync_ok();  // the write journaled and shipped, its pages still dirty
    {
        int fd = ::open((d / "written-then-mapped").c_str(), O_RDWR | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        auto* map = static_cast<char*>(::mmap(nullptr, 6000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        ::close(fd);
        ASSERT_NE(static_cast<void*>(map), MAP_FAILED);
        std::memset(map + 1000, 'S', 300);
        std::memset(map + 5000, 'T', 300);
        sync_ok();
        expect_converged(server);
        ::munmap(map, 6000);
    }
    // Mapped and read first, then written, then stored into through the
    // same mapping: the store's write fault finds the folio dirty, and the
    // msync writes it back.
    put_file(d / "mapped-then-written", 6000, 'm');
    {
        int fd = ::open((d / "mapped-then-written").c_str(), O_RDWR | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::fdatasync(fd), 0);  // clean: the write below dirties the folio
        auto* map = static_cast<char*>(::mmap(nullptr, 6000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        ASSERT_NE(static_cast<void*>(map), MAP_FAILED);
        volatile char first = map[0];  // faulted in for reading only
        (void)first;
        sync_ok();
        std::string written(100, 'W');
        ASSERT_EQ(::pwrite(fd, written.data(), written.size(), 100), 100);
        ::close(fd);
        sync_ok();  // the write journaled and shipped, its page still dirty
        std::memset(map + 2000, 'X', 300);
        ASSERT_EQ(::msync(map, 6000, MS_SYNC), 0);
        ::munmap(map, 6000);
    }
    sync_ok();
    expect_converged(server);
}

// Mapped and read, written with write(2), then stored into through the
// older mapping, which is unmapped without msync: the store's write fault
// finds the folio dirty, so on ext4 nothing reports it before the kernel
// writes the page back (some 30 s later). A sync has that done first.
TEST_P(ContentPaths, AStoreThroughAnOlderMappingWithoutMsyncIsSynced) {
    if (!bpf()) GTEST_SKIP() << "stores through a mapping raise no fanotify event: only eBPF sees them";
    auto& server = add_server();
    auto d = agent_->dir();
    put_file(d / "synced-between", 6000, 'm');
    put_file(d / "synced-after", 6000, 'n');
    start_capture();
    sync_ok();
    auto map_read_write = [&](const fs::path& p, char fill) {
        int fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
        EXPECT_GE(fd, 0) << p;
        EXPECT_EQ(::fdatasync(fd), 0);  // clean: the write below dirties the folio
        auto* map = static_cast<char*>(::mmap(nullptr, 6000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        EXPECT_NE(static_cast<void*>(map), MAP_FAILED) << p;
        volatile char first = map[0];  // faulted in for reading only
        (void)first;
        std::string written(100, fill);
        EXPECT_EQ(::pwrite(fd, written.data(), written.size(), 100), 100);
        ::close(fd);
        return map;
    };
    // The write journaled and shipped before the store: only the store's
    // own report can bring its bytes.
    char* map = map_read_write(d / "synced-between", 'W');
    sync_ok();
    std::memset(map + 2000, 'X', 300);
    ::munmap(map, 6000);
    sync_ok();
    expect_converged(server);
    // And without a sync in between.
    map = map_read_write(d / "synced-after", 'V');
    std::memset(map + 3000, 'Y', 300);
    ::munmap(map, 6000);
    sync_ok();
    expect_converged(server);
}

TEST_P(ContentPaths, AsynchronousWritesConverge) {
    auto& server = add_server();
    start_capture();
    auto d = agent_->dir();
    write_with_libaio(d / "aio-buffered", 1600, 'b', false);
    write_with_libaio(d / "aio-direct", 8192, 'd', true);
    write_with_io_uring(d / "uring-buffered", 1600, 'u', false);
    write_with_io_uring(d / "uring-direct", 8192, 'U', true);
    sync_ok();
    expect_converged(server);
    // Rewritten in place: the files are known now, only the bytes change.
    write_with_libaio(d / "aio-buffered", 1000, 'B', false);
    write_with_libaio(d / "aio-direct", 4096, 'D', true);
    write_with_io_uring(d / "uring-buffered", 1000, 'v', false);
    write_with_io_uring(d / "uring-direct", 4096, 'V', true);
    sync_ok();
    expect_converged(server);
}

// libaio raises no modify event; a file kept open raises no close either:
// only eBPF's ranges tell of the writes, and a sync must journal them.
TEST_P(ContentPaths, AsynchronousWritesToAFileKeptOpenAreSynced) {
    if (!bpf()) GTEST_SKIP() << "fanotify alone learns of a libaio write only from the file's close";
    auto& server = add_server();
    auto d = agent_->dir();
    put_file(d / "aio-open-buffered", 16384, 'a');
    put_file(d / "aio-open-direct", 16384, 'a');
    start_capture();
    sync_ok();
    int buffered = ::open((d / "aio-open-buffered").c_str(), O_RDWR | O_CLOEXEC);
    int direct = ::open((d / "aio-open-direct").c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
    int fresh = ::open((d / "aio-open-new").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(buffered, 0);
    ASSERT_GE(direct, 0);
    ASSERT_GE(fresh, 0);
    write_with_libaio_at(buffered, 4096, 1000, 'B');
    write_with_libaio_at(direct, 8192, 4096, 'D');
    write_with_libaio_at(fresh, 0, 3000, 'N');
    sync_ok();
    expect_converged(server);
    // Again into the same open files, now known to the agent.
    write_with_libaio_at(buffered, 100, 500, 'C');
    write_with_libaio_at(direct, 0, 4096, 'E');
    write_with_libaio_at(fresh, 1000, 3000, 'O');
    sync_ok();
    expect_converged(server);
    // Their closes, whose writes were journaled already, change nothing.
    ::close(buffered);
    ::close(direct);
    ::close(fresh);
    sync_ok();
    expect_converged(server);
}

TEST_P(ContentPaths, ATmpfileLinkedInConverges) {
    auto& server = add_server();
    start_capture();
    link_in_tmpfile(agent_->dir(), "linked-in", 1600, 't');
    sync_ok();
    expect_converged(server);
}

TEST_P(ContentPaths, ACloneOrCopyAfterAWriteInTheSameOpenConverges) {
    auto& server = add_server();
    auto d = agent_->dir();
    put_file(d / "src", 256 * 1024, 's');
    put_file(d / "copied", 256 * 1024, 'c');
    put_file(d / "cloned", 256 * 1024, 'c');
    start_capture();
    sync_ok();
    write_then_copy_in_one_open(d / "src", d / "copied", 65536, 65536, 65536, 'A', false);
    bool cloned = write_then_copy_in_one_open(d / "src", d / "cloned", 65536, 65536, 65536, 'A', true);
    EXPECT_TRUE(cloned || type() == FsType::ext4) << "XFS clones (reflink=1 is mkfs.xfs's default)";
    sync_ok();
    expect_converged(server);
}

TEST_P(ContentPaths, AFailedFallocateThatMovesTheMtimeConverges) {
    auto& server = add_server();
    auto d = agent_->dir();
    put_file(d / "f", 1 << 20, 'f');
    start_capture();
    sync_ok();
    std::this_thread::sleep_for(20ms);
    int fd = ::open((d / "f").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    // Unaligned: EINVAL, and ext4 has moved the mtime all the same.
    EXPECT_NE(::fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 327231, 275591), 0);
    // eBPF sees the failure itself; fanotify alone learns of it only from
    // the close (a close_write that no modify event explains).
    if (!bpf()) ::close(fd);
    sync_ok();
    expect_converged(server);
    if (bpf()) ::close(fd);
}

// Appends beside random pwrites and truncates while `izwatch sync` runs in
// a loop: every appended line reaches the replica.
TEST_P(ContentPaths, AppendsDuringSyncsConverge) {
    auto& server = add_server();
    start_capture();
    auto d = agent_->dir();
    std::atomic<bool> done{false};
    std::jthread appender([&] {
        int fd = ::open((d / "log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        for (int i = 0; !done; ++i) {
            auto line = fmt::format("line {:014}\n", i);  // 20 bytes
            if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) break;
        }
        ::close(fd);
    });
    std::jthread pwriter([&] {
        int fd = ::open((d / "data").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        std::string block(4096, 'p');
        for (uint32_t i = 0; !done; ++i) {
            block[0] = static_cast<char>('a' + i % 26);
            (void)!::pwrite(fd, block.data(), block.size(), static_cast<off_t>((i * 2654435761u) % 256) * 4096);
            if (i % 500 == 499) (void)!::ftruncate(fd, static_cast<off_t>((i * 40503u) % (1 << 20)));
        }
        ::close(fd);
    });
    auto until = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < until) {
        auto r = agent_->sync(30);
        EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    done = true;
    appender.join();
    pwriter.join();
    sync_ok();
    expect_converged(server);
}

INSTANTIATE_TEST_SUITE_P(Filesystems, ContentPaths,
                         ::testing::Combine(::testing::Values(FsType::ext4, FsType::xfs), ::testing::Bool()),
                         [](const auto& info) {
                             return fmt::format("{}_{}", std::get<0>(info.param) == FsType::xfs ? "xfs" : "ext4",
                                                std::get<1>(info.param) ? "bpf" : "fanotify_only");
                         });

}  // namespace
}  // namespace iz::test::e2e
