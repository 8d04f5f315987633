// End to end: what a server can never apply as it stands (a rejection) is
// not forgotten. `izwatch sync` fails naming it, whatever happened to
// either daemon since the server reported it, until it is outgrown.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>

#include "e2e_hosts.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace iz::test::e2e {
namespace {

class Rejections : public ::testing::Test {
protected:
    void SetUp() override {
        agent_ns_ = must(Netns::make("agent"));
        server_ns_ = must(Netns::make("srv0"));
        link_ = must(VethLink::make(*agent_ns_, *server_ns_, 1));
        key_ = make_key(keys_);
        agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-src");
        server_ = std::make_unique<ServerHost>(*server_ns_, link_->address_b(), key_, "e2e-dst0");
        server_->start();
    }

    void TearDown() override {
        if (HasFailure()) fmt::print(stderr, "agent log:\n{}\nserver log:\n{}\n", agent_->log(), server_->log());
        agent_.reset();
        server_.reset();
        link_.reset();
        server_ns_.reset();
        agent_ns_.reset();
    }

    void start_agent() {
        auto r = agent_->start({server_->endpoint()});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }

    void sync_ok() {
        auto r = agent_->sync(30);
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }

    nlohmann::json rejected() {
        auto s = agent_->status();
        if (!s.contains("servers") || s["servers"].empty()) return nlohmann::json::array();
        return s["servers"][0].value("rejected", nlohmann::json::array());
    }

    // A sync fails naming `path` and `why`, and status lists it.
    void expect_outstanding(const std::string& when, const std::string& path, const std::string& why) {
        SCOPED_TRACE(when);
        auto r = agent_->sync(30);
        EXPECT_NE(r.exit_code, 0) << r.out;
        EXPECT_NE(r.err.find(fmt::format("cannot apply '{}'", path)), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
        auto list = rejected();
        auto named = std::find_if(list.begin(), list.end(), [&](auto& j) { return j.value("path", "") == path; });
        ASSERT_NE(named, list.end()) << list.dump();
        EXPECT_NE(named->value("error", "").find(why), std::string::npos) << list.dump();
    }

    TempDir keys_;
    std::unique_ptr<Netns> agent_ns_, server_ns_;
    std::unique_ptr<VethLink> link_;
    fs::path key_;
    std::unique_ptr<AgentHost> agent_;
    std::unique_ptr<ServerHost> server_;
};

struct Thaw {
    fs::path at;
    ~Thaw() { run_process({"chattr", "-i", at.string()}); }
};

// A directory of the replica is immutable, so the entry the source makes in
// it is rejected. The rejection was kept in the agent's memory only: after
// the agent stopped and started again, or was killed, `izwatch sync`
// returned 0 with the replica lacking the entry (the server reports a
// rejection once, and never again once the record is durable there). Now
// it is kept in the agent's state directory: every sync fails naming it,
// across restarts of either daemon, until a verification finds the replica
// equal, and the cleared list stays cleared across a restart.
TEST_F(Rejections, ARejectionOutlivesRestartsOfTheAgentAndTheServerUntilOutgrown) {
    start_agent();
    fs::create_directories(agent_->dir() / "frozen");
    sync_ok();
    const fs::path frozen = server_->replica("data") / "frozen";
    ASSERT_EQ(run_process({"chattr", "+i", frozen.string()}).exit_code, 0);
    Thaw thaw{frozen};
    write_file(agent_->dir() / "frozen/new", "reaches the replica only once the flag is lifted\n");
    write_file(agent_->dir() / "after", "applied\n");
    const std::string eperm = std::strerror(EPERM);
    expect_outstanding("first report", "frozen/new", eperm);
    ASSERT_TRUE(fs::exists(server_->replica("data") / "after"));

    ASSERT_EQ(agent_->stop().exit_code, 0);
    start_agent();
    expect_outstanding("after izwatch stop and start", "frozen/new", eperm);

    agent_->kill9();
    start_agent();
    expect_outstanding("after kill -9 of izwatch", "frozen/new", eperm);

    server_->kill9();
    server_->start();
    expect_outstanding("after kill -9 of izreplicate", "frozen/new", eperm);
    // Listed once, however often it was restored and reported again. (The
    // directory's own mtime, journaled at each start, meets the flag too.)
    auto list = rejected();
    EXPECT_EQ(std::count_if(list.begin(), list.end(), [](auto& j) { return j.value("path", "") == "frozen/new"; }), 1)
        << list.dump();

    ASSERT_EQ(run_process({"chattr", "-i", frozen.string()}).exit_code, 0);
    // The sync above may have been answered before the agent had found the
    // server gone: a verification needs it connected again.
    ASSERT_TRUE(eventually([&] { return agent_->status()["servers"][0].value("connected", false); }, 20s));
    auto repaired = agent_->izwatch("verify", {"--repair"});
    EXPECT_EQ(repaired.exit_code, 1) << repaired.out << repaired.err;
    EXPECT_NE(repaired.out.find("the replica is now equal"), std::string::npos) << repaired.out << repaired.err;
    EXPECT_TRUE(rejected().empty()) << rejected().dump();
    sync_ok();
    agent_->kill9();
    start_agent();
    EXPECT_TRUE(rejected().empty()) << rejected().dump();
    sync_ok();
    EXPECT_EQ(manifest(server_->replica("data")), manifest(agent_->dir()));
}

// A program on the server runs the replica's copy of a file (here a copy
// of sleep), which makes its bytes unchangeable in place (ETXTBSY).
class BusyOnTheServer : public Rejections {
protected:
    void SetUp() override {
        Rejections::SetUp();
        start_agent();
        fs::copy_file("/bin/sleep", agent_->dir() / "prog");
        fs::permissions(agent_->dir() / "prog", fs::perms(0755));
        write_file(agent_->dir() / "other", "before\n");
        sync_ok();
        running_ = std::make_unique<ChildProcess>(std::vector<std::string>{(server_->replica("data") / "prog").string(), "60"});
        ASSERT_TRUE(eventually([&] {
            int fd = ::open((server_->replica("data") / "prog").c_str(), O_WRONLY | O_CLOEXEC);
            if (fd >= 0) ::close(fd);
            return fd < 0 && errno == ETXTBSY;
        })) << "the replica's prog is not running";
    }
    void TearDown() override {
        running_.reset();
        Rejections::TearDown();
    }
    // Changes bytes of the source's prog through `fd`, then `other`.
    void change(int fd) {
        ASSERT_EQ(::pwrite(fd, "CHANGED", 7, 1024), 7) << std::strerror(errno);
        write_file(agent_->dir() / "other", "after\n");
    }
    std::unique_ptr<ChildProcess> running_;
};

// The source changes bytes of the file: the range travels, to be written in
// place, and the server met ETXTBSY and skipped it as if the tree were not
// yet what the record expected: `izwatch sync` said done and the replica
// kept the old bytes (content sent whole met it too: the file it replaces
// was opened for writing only to be read). Now the replica's file is
// replaced by a rename, as a package manager replaces a running program,
// which keeps running its old copy.
TEST_F(BusyOnTheServer, BytesWrittenIntoAFileTheServerRunsReplaceIt) {
    int fd = ::open((agent_->dir() / "prog").c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    change(fd);
    ::close(fd);
    sync_ok();
    EXPECT_EQ(manifest(server_->replica("data")), manifest(agent_->dir()));
    EXPECT_TRUE(running_->running());
    EXPECT_TRUE(rejected().empty()) << rejected().dump();
}

// The same with a second name of the file: replacing one name would split
// them, so the bytes can only change in place, which the running program
// forbids. Skipped, the replica stayed different with sync saying done. It
// is a rejection now, not retried (the program may run for days, and
// everything after it would wait): sync fails naming it and why, the rest
// is applied, and once the program has ended, verify --repair makes the
// replica equal and clears it.
TEST_F(BusyOnTheServer, AFileTheServerRunsWithTwoNamesIsRejectedUntilRepaired) {
    fs::create_hard_link(agent_->dir() / "prog", agent_->dir() / "prog-link");
    sync_ok();
    int fd = ::open((agent_->dir() / "prog").c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    change(fd);
    ::close(fd);
    expect_outstanding("with two names", "prog", "a program on the server is running the replica's file");
    EXPECT_EQ(read_file(server_->replica("data") / "other"), "after\n");
    EXPECT_TRUE(running_->running());
    running_.reset();
    auto repaired = agent_->izwatch("verify", {"--repair"});
    EXPECT_EQ(repaired.exit_code, 1) << repaired.out << repaired.err;
    EXPECT_NE(repaired.out.find("the replica is now equal"), std::string::npos) << repaired.out << repaired.err;
    EXPECT_TRUE(rejected().empty()) << rejected().dump();
    sync_ok();
    EXPECT_EQ(manifest(server_->replica("data")), manifest(agent_->dir()));
}

// The agent dies (as kill -9 would, through a test-only knob that raises
// SIGKILL in it) the moment it reads the server's report that it cannot
// apply prog, before keeping it anywhere: the server had applied the
// record (left it out) and went on, and resumes after it. Before, the
// server kept no list, so after the agent's restart nobody knew, and
// `izwatch sync` returned 0 with the replica different. Now the server
// keeps the rejection until the agent confirms it stored it, and sends it
// again after the handshake: the sync fails naming prog.
TEST_F(BusyOnTheServer, ARejectionTheAgentDiedBeforeReadingIsToldAgainAfterItsRestart) {
    fs::create_hard_link(agent_->dir() / "prog", agent_->dir() / "prog-link");
    sync_ok();
    ASSERT_EQ(agent_->stop().exit_code, 0);
    {
        // The agent inherits this process's environment.
        ::setenv("IZ_TEST_DIE_AT_REJECTED", "prog", 1);
        start_agent();
        ::unsetenv("IZ_TEST_DIE_AT_REJECTED");
    }
    const int pid = agent_->status().value("pid", 0);
    ASSERT_GT(pid, 0);
    int fd = ::open((agent_->dir() / "prog").c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    change(fd);
    ::close(fd);
    ASSERT_TRUE(eventually([&] { return process_exited(pid); }, 30s)) << "the agent did not die at the report";
    // The server went on past the rejected record.
    ASSERT_TRUE(eventually([&] { return read_file(server_->replica("data") / "other") == "after\n"; }, 20s));

    start_agent();
    expect_outstanding("after the agent died reading the report", "prog",
                       "a program on the server is running the replica's file");
    // Kept by the agent now, and confirmed: a second restart still knows it.
    ASSERT_EQ(agent_->stop().exit_code, 0);
    start_agent();
    expect_outstanding("after a restart once it was stored", "prog", "a program on the server is running the replica's file");
    // Each rejection once, however often it was told.
    auto list = rejected();
    std::set<uint64_t> lsns;
    for (auto& j : list) EXPECT_TRUE(lsns.insert(j.value("lsn", uint64_t{0})).second) << list.dump();

    running_.reset();
    ASSERT_TRUE(eventually([&] { return agent_->status()["servers"][0].value("connected", false); }, 20s));
    auto repaired = agent_->izwatch("verify", {"--repair"});
    EXPECT_EQ(repaired.exit_code, 1) << repaired.out << repaired.err;
    EXPECT_TRUE(rejected().empty()) << rejected().dump();
    // The server forgot it once the agent stored it: cleared, it does not
    // come back after another restart.
    agent_->kill9();
    start_agent();
    sync_ok();
    EXPECT_TRUE(rejected().empty()) << rejected().dump();
    EXPECT_EQ(manifest(server_->replica("data")), manifest(agent_->dir()));
}

}  // namespace
}  // namespace iz::test::e2e
