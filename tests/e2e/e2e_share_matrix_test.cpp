// End to end, shared filesets between separate hosts: three real izwatch
// agents in send-receive mode, each in a network namespace of its own with a
// veth pair to the server's, on filesystems of different types (one XFS, two
// ext4), share one fileset through one real izreplicate. Each makes its own
// changes of every kind, to paths no other touches at the same time; once
// each has synced twice round, the full manifests of the three agents and of
// the server's replica are equal. Then the same while one agent is cut off
// (it keeps working, and on its return sends what it did and receives what
// it missed) and while the server is killed and comes back.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <fstream>

#include "e2e_hosts.hpp"

namespace fs = std::filesystem;

namespace iz::test::e2e {
namespace {

constexpr const char* kFileset = "team";

void append(const fs::path& p, const std::string& bytes) {
    int fd = ::open(p.c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0) << p << ": " << std::strerror(errno);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
}

void write_at(const fs::path& p, off_t offset, const std::string& bytes) {
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0) << p << ": " << std::strerror(errno);
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), offset), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
}

// Every kind of change, beneath `top` (a directory of this agent's own):
// create, write, truncate, rename, exchange, hard links, symlinks, xattrs,
// chmod, chown, mkdir, rmdir, unlink and a sparse file. `tag` makes the
// contents differ from agent to agent.
void every_kind_of_change(const fs::path& top, const std::string& tag) {
    fs::create_directories(top / "sub/deep");
    write_file(top / "created.txt", "created on " + tag + "\n");
    write_file(top / "appended.txt", "first line of " + tag + "\n");
    append(top / "appended.txt", "second line of " + tag + "\n");
    write_file(top / "overwritten.bin", std::string(200000, 'o') + tag);
    write_at(top / "overwritten.bin", 4096, "patched in the middle by " + tag);
    write_file(top / "shrunk.txt", std::string(10000, 's'));
    ASSERT_EQ(::truncate((top / "shrunk.txt").c_str(), 1234), 0);
    write_file(top / "grown.txt", tag);
    ASSERT_EQ(::truncate((top / "grown.txt").c_str(), 70000), 0);
    write_file(top / "old-name.txt", "renamed by " + tag);
    ASSERT_EQ(::rename((top / "old-name.txt").c_str(), (top / "sub/new-name.txt").c_str()), 0);
    write_file(top / "left.txt", "left of " + tag);
    write_file(top / "sub/right.txt", "right of " + tag);
    ASSERT_EQ(::renameat2(AT_FDCWD, (top / "left.txt").c_str(), AT_FDCWD, (top / "sub/right.txt").c_str(),
                          RENAME_EXCHANGE),
              0)
        << std::strerror(errno);
    write_file(top / "linked.txt", "hard-linked on " + tag);
    ASSERT_EQ(::link((top / "linked.txt").c_str(), (top / "sub/deep/second-link.txt").c_str()), 0);
    ASSERT_EQ(::link((top / "linked.txt").c_str(), (top / "third-link.txt").c_str()), 0);
    ASSERT_EQ(::symlink("sub/new-name.txt", (top / "to-new-name").c_str()), 0);
    ASSERT_EQ(::symlink(("/nowhere/" + tag).c_str(), (top / "dangling").c_str()), 0);
    ASSERT_EQ(::setxattr((top / "created.txt").c_str(), "user.owner", tag.data(), tag.size(), 0), 0);
    ASSERT_EQ(::setxattr((top / "created.txt").c_str(), "user.gone", "x", 1, 0), 0);
    ASSERT_EQ(::removexattr((top / "created.txt").c_str(), "user.gone"), 0);
    ASSERT_EQ(::setxattr((top / "sub").c_str(), "user.dir", "yes", 3, 0), 0);
    ASSERT_EQ(::chmod((top / "created.txt").c_str(), 0600), 0);
    ASSERT_EQ(::chmod((top / "sub/deep").c_str(), 0750), 0);
    ASSERT_EQ(::chown((top / "appended.txt").c_str(), 1234, 5678), 0);
    ASSERT_EQ(::lchown((top / "dangling").c_str(), 4321, 8765), 0);
    fs::create_directories(top / "empty-then-gone/inner");
    ASSERT_EQ(::rmdir((top / "empty-then-gone/inner").c_str()), 0);
    ASSERT_EQ(::rmdir((top / "empty-then-gone").c_str()), 0);
    write_file(top / "doomed.txt", "unlinked by " + tag);
    ASSERT_EQ(::unlink((top / "doomed.txt").c_str()), 0);
    write_at(top / "sparse.img", 0, "head of " + tag);
    write_at(top / "sparse.img", 8 << 20, "tail of " + tag);
}

// A second round, on paths another agent made in the first (one agent per
// subtree, so no two agents touch one path at the same time).
void change_anothers(const fs::path& top, const std::string& tag) {
    append(top / "appended.txt", "third line, by " + tag + "\n");
    ASSERT_EQ(::truncate((top / "overwritten.bin").c_str(), 5000), 0);
    ASSERT_EQ(::rename((top / "sub/new-name.txt").c_str(), (top / "renamed-again.txt").c_str()), 0);
    ASSERT_EQ(::renameat2(AT_FDCWD, (top / "created.txt").c_str(), AT_FDCWD, (top / "grown.txt").c_str(),
                          RENAME_EXCHANGE),
              0)
        << std::strerror(errno);
    ASSERT_EQ(::unlink((top / "third-link.txt").c_str()), 0);
    ASSERT_EQ(::link((top / "sub/deep/second-link.txt").c_str(), (top / "fourth-link.txt").c_str()), 0);
    ASSERT_EQ(::unlink((top / "to-new-name").c_str()), 0);
    ASSERT_EQ(::symlink("renamed-again.txt", (top / "to-new-name").c_str()), 0);
    ASSERT_EQ(::setxattr((top / "sub").c_str(), "user.dir", tag.data(), tag.size(), 0), 0);
    ASSERT_EQ(::chmod((top / "sub").c_str(), 0711), 0);
    ASSERT_EQ(::chown((top / "sub/right.txt").c_str(), 2222, 3333), 0);
    ASSERT_EQ(::unlink((top / "dangling").c_str()), 0);
    fs::create_directories(top / ("made-by-" + tag));
    write_file(top / ("made-by-" + tag) / "note.txt", "from " + tag);
    write_at(top / "sparse.img", 4 << 20, "middle of " + tag);
}

// Three agents in namespaces of their own, each joined to the server's by a
// veth pair of its own; the server listens on all of its addresses.
class ShareMatrix : public ::testing::Test {
protected:
    static constexpr std::array<const char*, 3> kIds{"a", "b", "c"};

    void SetUp() override {
        server_ns_ = must(Netns::make("mx-srv"));
        key_ = make_key(keys_);
        const std::array<FsType, 3> types{FsType::xfs, FsType::ext4, FsType::ext4};
        for (int i = 0; i < 3; ++i) {
            agent_ns_[i] = must(Netns::make(fmt::format("mx-{}", kIds[i])));
            links_[i] = must(VethLink::make(*agent_ns_[i], *server_ns_, 1 + i));
            agents_[i] = std::make_unique<AgentHost>(*agent_ns_[i], key_, fmt::format("mx-{}", kIds[i]), types[i]);
        }
        server_ = std::make_unique<ServerHost>(*server_ns_, "0.0.0.0", key_, "mx-srv");
        server_->start();
    }

    void TearDown() override {
        if (HasFailure()) {
            auto base = (fs::path(::testing::TempDir()) /
                         fmt::format("iz-e2e-{}", ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                            .string();
            std::error_code ec;
            for (int i = 0; i < 3; ++i) {
                std::ofstream(fmt::format("{}.{}-log", base, kIds[i])) << agents_[i]->log();
                fs::remove_all(fmt::format("{}.{}-journal", base, kIds[i]), ec);
                fs::copy(agents_[i]->journal(), fmt::format("{}.{}-journal", base, kIds[i]), fs::copy_options::recursive, ec);
            }
            std::ofstream(base + ".server-log") << server_->log();
            fs::remove_all(base + ".server-journal", ec);
            fs::copy(server_journal(), base + ".server-journal", fs::copy_options::recursive, ec);
            fmt::print(stderr, "logs and journals kept in {}.{{a,b,c,server}}-{{log,journal}}\n", base);
        }
        for (auto& a : agents_) a.reset();
        server_.reset();
        for (auto& l : links_) l.reset();
        for (auto& n : agent_ns_) n.reset();
        server_ns_.reset();
    }

    // The server as agent i reaches it: its end of agent i's link.
    std::string endpoint(int i) const { return fmt::format("{}:{}", links_[i]->address_b(), kServerPort); }

    void start(int i) {
        auto r = agents_[i]->start({endpoint(i)}, {"--mode", "send-receive", "--agent-id", kIds[i], "--fileset", kFileset});
        ASSERT_EQ(r.exit_code, 0) << r.err << "\n" << agents_[i]->log();
    }

    void sync(int i) {
        auto r = agents_[i]->sync(60);
        ASSERT_EQ(r.exit_code, 0) << "izwatch sync on " << kIds[i] << ": " << r.err << "\nagent log:\n"
                                  << agents_[i]->log() << "\nserver log:\n"
                                  << server_->log();
    }

    // sync returns once the agent sent everything and holds the server's
    // head as it was when called: twice round, every agent holds what every
    // other sent.
    void sync_twice_round() {
        for (int round = 0; round < 2; ++round)
            for (int i = 0; i < 3; ++i) {
                sync(i);
                if (HasFatalFailure()) return;
            }
    }

    // Starts the three agents; each makes its own subtree in the root at the
    // same moment: entries that several agents make at once in one
    // directory change its mtime concurrently, and every replica must end
    // with the same.
    void start_with_subtrees() {
        for (int i = 0; i < 3; ++i) {
            start(i);
            if (HasFatalFailure()) return;
        }
        for (int i = 0; i < 3; ++i) fs::create_directory(dir(i) / kIds[i]);
        sync_twice_round();
    }

    fs::path dir(int i) const { return agents_[i]->dir(); }
    fs::path replica() const { return server_->replica(kFileset); }
    fs::path server_journal() const { return server_->root() / ".intermezzo" / ".filesets" / kFileset / "journal"; }

    void expect_all_equal(const std::string& when) {
        auto ms = manifest(replica());
        EXPECT_NE(ms.find("\n"), std::string::npos) << when << ": the replica is empty";
        for (int i = 0; i < 3; ++i) {
            auto mi = manifest(dir(i));
            EXPECT_TRUE(mi == ms) << when << ": " << kIds[i] << " differs from the server's replica:\n"
                                  << manifest_diff(mi, ms);
        }
    }

    TempDir keys_{"mx-key"};
    fs::path key_;
    std::unique_ptr<Netns> server_ns_;
    std::array<std::unique_ptr<Netns>, 3> agent_ns_;
    std::array<std::unique_ptr<VethLink>, 3> links_;
    std::unique_ptr<ServerHost> server_;
    std::array<std::unique_ptr<AgentHost>, 3> agents_;
};

// Every agent makes every kind of change in a subtree of its own, then
// changes the subtree the next agent made; each time, all four trees end
// equal by the full manifest.
TEST_F(ShareMatrix, ThreeHostsEveryOperationTypeConverge) {
    ASSERT_NO_FATAL_FAILURE(start_with_subtrees());
    for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(every_kind_of_change(dir(i) / kIds[i], kIds[i]));
    ASSERT_NO_FATAL_FAILURE(sync_twice_round());
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            EXPECT_EQ(read_file(dir(j) / kIds[i] / "created.txt"), fmt::format("created on {}\n", kIds[i]))
                << "agent " << kIds[j] << ", subtree of " << kIds[i];
    // What the manifests compare is there to compare, on a receiver of each.
    struct stat st {};
    ASSERT_EQ(::lstat((dir(2) / "a/appended.txt").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1234u);
    EXPECT_EQ(st.st_gid, 5678u);
    ASSERT_EQ(::lstat((dir(0) / "b/sub/deep/second-link.txt").c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 3u);
    ASSERT_EQ(::lstat((dir(1) / "c/sparse.img").c_str(), &st), 0);
    EXPECT_EQ(st.st_size, (8 << 20) + 9);  // "tail of c"
    EXPECT_EQ(xattr(dir(1) / "a/created.txt", "user.owner"), "a");
    EXPECT_EQ(read_file(dir(0) / "c/sub/right.txt"), "left of c");
    EXPECT_EQ(fs::read_symlink(dir(2) / "b/dangling"), "/nowhere/b");
    expect_all_equal("after each agent's own changes");

    for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(change_anothers(dir(i) / kIds[(i + 1) % 3], kIds[i]));
    ASSERT_NO_FATAL_FAILURE(sync_twice_round());
    EXPECT_EQ(read_file(dir(1) / "a/made-by-c/note.txt"), "from c");
    EXPECT_EQ(read_file(dir(2) / "b/renamed-again.txt"), "renamed by b");
    expect_all_equal("after each agent changed the next one's subtree");
}

// B's link is cut while A, B and C go on working, each in its own subtree
// (B's changes stay in its journal). A and C converge without B; once the
// link is back, B sends what it did and receives what it missed, and all
// four trees are equal.
TEST_F(ShareMatrix, AnAgentCutOffReintegratesWhatItDidAndReceivesWhatItMissed) {
    ASSERT_NO_FATAL_FAILURE(start_with_subtrees());
    ASSERT_TRUE(links_[1]->set_up(false));
    for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(every_kind_of_change(dir(i) / kIds[i], kIds[i]));
    for (int round = 0; round < 2; ++round) {
        ASSERT_NO_FATAL_FAILURE(sync(0));
        ASSERT_NO_FATAL_FAILURE(sync(2));
    }
    EXPECT_EQ(read_file(dir(2) / "a/created.txt"), "created on a\n");
    EXPECT_FALSE(fs::exists(dir(1) / "a/created.txt")) << "B received while cut off";
    EXPECT_FALSE(fs::exists(replica() / "b/created.txt")) << "B sent while cut off";
    // B goes on while away: a second round on A's subtree it has not seen yet
    // would conflict, so on its own.
    ASSERT_NO_FATAL_FAILURE(change_anothers(dir(1) / "b", "b"));
    ASSERT_TRUE(links_[1]->set_up(true));
    ASSERT_NO_FATAL_FAILURE(sync_twice_round());
    EXPECT_EQ(read_file(dir(1) / "a/created.txt"), "created on a\n");
    EXPECT_EQ(read_file(dir(0) / "b/made-by-b/note.txt"), "from b");
    expect_all_equal("after B came back");
}

// B is stopped; A and C go on, and so does B's directory without its agent.
// Started again, B finds what changed while it was stopped, sends it, and
// receives what it missed.
TEST_F(ShareMatrix, AnAgentStoppedAndStartedAgainReintegrates) {
    ASSERT_NO_FATAL_FAILURE(start_with_subtrees());
    auto stopped = agents_[1]->stop();
    ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
    for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(every_kind_of_change(dir(i) / kIds[i], kIds[i]));
    for (int round = 0; round < 2; ++round) {
        ASSERT_NO_FATAL_FAILURE(sync(0));
        ASSERT_NO_FATAL_FAILURE(sync(2));
    }
    EXPECT_FALSE(fs::exists(dir(1) / "c/created.txt"));
    ASSERT_NO_FATAL_FAILURE(start(1));
    ASSERT_NO_FATAL_FAILURE(sync_twice_round());
    EXPECT_EQ(read_file(dir(1) / "c/created.txt"), "created on c\n");
    EXPECT_EQ(read_file(dir(2) / "b/created.txt"), "created on b\n");
    expect_all_equal("after B was started again");
}

// The server is killed (-9) while the agents are connected and one is in the
// middle of sending; the agents go on working while it is away and converge
// once it is back.
TEST_F(ShareMatrix, AgentsKeepWorkingThroughAServerKillAndConvergeAfterItReturns) {
    ASSERT_NO_FATAL_FAILURE(start_with_subtrees());
    ASSERT_NO_FATAL_FAILURE(every_kind_of_change(dir(0) / "a", "a"));
    server_->kill9();
    ASSERT_NO_FATAL_FAILURE(every_kind_of_change(dir(1) / "b", "b"));
    ASSERT_NO_FATAL_FAILURE(every_kind_of_change(dir(2) / "c", "c"));
    ASSERT_NO_FATAL_FAILURE(change_anothers(dir(0) / "a", "a"));
    server_->start();
    ASSERT_NO_FATAL_FAILURE(sync_twice_round());
    EXPECT_EQ(read_file(dir(1) / "a/made-by-a/note.txt"), "from a");
    EXPECT_EQ(read_file(dir(0) / "c/created.txt"), "created on c\n");
    expect_all_equal("after the server came back");
    // And they go on sharing: A changes B's subtree, B changes C's.
    ASSERT_NO_FATAL_FAILURE(change_anothers(dir(0) / "b", "a"));
    ASSERT_NO_FATAL_FAILURE(change_anothers(dir(1) / "c", "b"));
    ASSERT_NO_FATAL_FAILURE(sync_twice_round());
    expect_all_equal("after a round of changes since");
}

}  // namespace
}  // namespace iz::test::e2e
