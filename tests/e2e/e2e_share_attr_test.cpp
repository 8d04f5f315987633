// End to end, concurrent attribute changes in a shared fileset: two real
// izwatch agents in send-receive mode and one real izreplicate. Two agents
// change the mode, owner, times and extended attributes of one file (and a
// directory) without having seen each other's change: once both are quiet,
// A, B and the server are equal by the full manifest, each attribute
// holding the version the server journaled later. Also: the directory
// times of a directory both make entries in at once, and the directory
// times the agent's own applier sets, which must never come back from it
// as its own changes; and what the server sent back to an agent, which a
// server killed (-9) and started again still counts as that agent's.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <ctime>

#include "support/process.hpp"

#include "e2e_share_fixture.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace iz::test::e2e {
namespace {

void set_times(const fs::path& p, time_t seconds) {
    struct timespec ts[2] = {{seconds, 0}, {seconds, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << p << ": " << std::strerror(errno);
}

void set_xattr(const fs::path& p, const std::string& name, const std::string& value) {
    ASSERT_EQ(::setxattr(p.c_str(), name.c_str(), value.data(), value.size(), 0), 0) << p << ": " << std::strerror(errno);
}

// The records of `journal` captured on that agent itself (no origin) that
// set only the times of a directory: what an echo of the applier's
// directory times would be.
size_t own_directory_times(const fs::path& journal) {
    size_t n = 0;
    for (auto& r : journal_records(journal)) {
        if (r.value("op", "") != "setattr" || r.contains("origin")) continue;
        auto mode = r.value("mode", std::string());  // izlog prints it in octal
        if (!mode.empty() && S_ISDIR(std::stoul(mode, nullptr, 8))) ++n;
    }
    return n;
}

class ShareAttrs : public ShareFixture {
protected:
    ShareAttrs() : ShareFixture("attrs") {}

    // An attribute change concurrent with another goes back to its own
    // agent too: a round more than the fixture's.
    static constexpr int kSettleRounds = 4;

    // A and B share doc.txt (with two xattrs) and dir/, both started.
    void share_base() {
        start(*a_, "a");
        start(*b_, "b");
        fs::create_directory(a_->dir() / "dir");
        write_file(a_->dir() / "doc.txt", "shared\n");
        set_xattr(a_->dir() / "doc.txt", "user.k", "base");
        set_xattr(a_->dir() / "doc.txt", "user.gone", "base");
        sync(*a_);
        sync(*b_);
        ASSERT_EQ(read_file(b_->dir() / "doc.txt"), "shared\n");
    }

    // Every kind of attribute change of doc.txt and dir/ on `dir`. A file's
    // times changed while its agent is stopped look like a write to its
    // restart (a content conflict, kept aside): `file_times` leaves them.
    void change_attributes(const fs::path& dir, const std::string& tag, mode_t mode, uid_t owner, time_t when,
                           bool file_times = true) {
        ASSERT_EQ(::chmod((dir / "doc.txt").c_str(), mode), 0);
        ASSERT_EQ(::chown((dir / "doc.txt").c_str(), owner, owner), 0);
        set_xattr(dir / "doc.txt", "user.k", tag);
        if (tag == "A") {
            // Gone already when the last round's removal won.
            int rc = ::removexattr((dir / "doc.txt").c_str(), "user.gone");
            ASSERT_TRUE(rc == 0 || errno == ENODATA) << std::strerror(errno);
        } else {
            set_xattr(dir / "doc.txt", "user.gone", tag);
        }
        ASSERT_EQ(::chmod((dir / "dir").c_str(), mode | 0100), 0);
        set_xattr(dir / "dir", "user.d", tag);
        if (file_times) set_times(dir / "doc.txt", when);
        set_times(dir / "dir", when + 1);
    }
};

// A changes every attribute of a file and a directory while B is stopped;
// B changes the same ones in its directory meanwhile and starts again. B's
// changes are journaled by the server after A's, so B's win everywhere:
// before, B applied A's forwards over its own once its changes were
// acknowledged and kept A's version while A and the server had B's.
TEST_F(ShareAttrs, ConcurrentAttributeChangesWhileOneWasStoppedConverge) {
    ASSERT_NO_FATAL_FAILURE(share_base());
    ASSERT_EQ(b_->stop().exit_code, 0);
    ASSERT_NO_FATAL_FAILURE(change_attributes(a_->dir(), "A", 0600, 1111, 1500000000, false));
    sync(*a_);
    ASSERT_NO_FATAL_FAILURE(change_attributes(b_->dir(), "B", 0640, 2222, 1600000000, false));
    start(*b_, "b");
    settle(kSettleRounds);
    for (auto& dir : {a_->dir(), b_->dir(), replica()}) {
        struct stat st{};
        ASSERT_EQ(::lstat((dir / "doc.txt").c_str(), &st), 0) << dir;
        EXPECT_EQ(st.st_mode & 07777, 0640u) << dir;
        EXPECT_EQ(st.st_uid, 2222u) << dir;
        ASSERT_EQ(::lstat((dir / "dir").c_str(), &st), 0) << dir;
        EXPECT_EQ(st.st_mode & 07777, 0740u) << dir;
        EXPECT_EQ(st.st_mtim.tv_sec, 1600000001) << dir;
        EXPECT_EQ(xattr(dir / "doc.txt", "user.k"), "B") << dir;
        EXPECT_EQ(xattr(dir / "doc.txt", "user.gone"), "B") << dir;
        EXPECT_EQ(xattr(dir / "dir", "user.d"), "B") << dir;
    }
    expect_all_equal("after concurrent attribute changes");
}

// The same live: both agents change the same attributes at the same
// moment, several times; whichever the server journals later is what all
// three hold.
TEST_F(ShareAttrs, ConcurrentLiveAttributeChangesConverge) {
    ASSERT_NO_FATAL_FAILURE(share_base());
    for (int round = 0; round < 4; ++round) {
        ASSERT_NO_FATAL_FAILURE(change_attributes(a_->dir(), "A", 0600, 1111 + round, 1500000000 + round));
        ASSERT_NO_FATAL_FAILURE(change_attributes(b_->dir(), "B", 0640, 2222 + round, 1600000000 + round));
        settle(kSettleRounds);
        expect_all_equal(fmt::format("after live concurrent attribute changes, round {}", round));
        if (HasFailure()) return;
    }
}

// A and B make entries in one directory at once (B's made while it was
// stopped, so its receiver applies A's entries after B made its own): the
// directory's times end equal on all three.
TEST_F(ShareAttrs, EntriesMadeAtOnceInOneDirectoryLeaveItsTimesEqual) {
    start(*a_, "a");
    start(*b_, "b");
    fs::create_directory(a_->dir() / "inbox");
    sync(*a_);
    sync(*b_);
    for (int round = 0; round < 3; ++round) {
        ASSERT_EQ(b_->stop().exit_code, 0);
        for (int i = 0; i < 5; ++i) write_file(a_->dir() / "inbox" / fmt::format("a-{}-{}", round, i), "from A\n");
        fs::create_directory(a_->dir() / fmt::format("a-top-{}", round));
        sync(*a_);
        ::usleep(20000);  // a time of B's own after A's
        for (int i = 0; i < 5; ++i) write_file(b_->dir() / "inbox" / fmt::format("b-{}-{}", round, i), "from B\n");
        fs::create_directory(b_->dir() / fmt::format("b-top-{}", round));
        start(*b_, "b");
        // And live, at the same moment.
        for (int i = 0; i < 5; ++i) {
            write_file(a_->dir() / "inbox" / fmt::format("la-{}-{}", round, i), "live from A\n");
            write_file(b_->dir() / "inbox" / fmt::format("lb-{}-{}", round, i), "live from B\n");
        }
        settle(kSettleRounds);
        expect_all_equal(fmt::format("after entries made at once, round {}", round));
        if (HasFailure()) return;
    }
}

// The directory times the receiver's applier sets are never journaled as
// the agent's own setattr (nor sent back): B only receives, on a live
// agent and after a restart.
TEST_F(ShareAttrs, DirectoryTimesTheApplierSetsAreNotCapturedAsLocalChanges) {
    start(*a_, "a");
    start(*b_, "b");
    fs::create_directories(a_->dir() / "tree/one/two");
    sync(*a_);
    sync(*b_);
    auto before = own_directory_times(b_->journal());
    for (int i = 0; i < 20; ++i) {
        write_file(a_->dir() / "tree/one" / fmt::format("f{}", i), "x");
        write_file(a_->dir() / "tree/one/two" / fmt::format("g{}", i), "y");
        fs::create_directory(a_->dir() / "tree" / fmt::format("d{}", i));
        set_times(a_->dir() / "tree" / fmt::format("d{}", i), 1500000000 + i);
        if (i % 5 == 4) {
            sync(*a_);
            sync(*b_);
        }
    }
    settle(kSettleRounds);
    expect_all_equal("after B received");
    EXPECT_EQ(own_directory_times(b_->journal()), before) << "live: B journaled directory times it applied as its own";
    // After a restart of B, with more received while it was stopped.
    ASSERT_EQ(b_->stop().exit_code, 0);
    for (int i = 0; i < 10; ++i) write_file(a_->dir() / "tree/one/two" / fmt::format("h{}", i), "z");
    sync(*a_);
    start(*b_, "b");
    settle(kSettleRounds);
    ASSERT_EQ(b_->stop().exit_code, 0);
    start(*b_, "b");
    settle(kSettleRounds);
    expect_all_equal("after B's restarts");
    EXPECT_EQ(own_directory_times(b_->journal()), before) << "restart: B journaled directory times it applied as its own";
    // And the server's journal has no setattr from B.
    size_t from_b = 0;
    for (auto& r : journal_records(server_journal()))
        if (r.value("op", "") == "setattr" && r.value("origin", "") == "b") ++from_b;
    EXPECT_EQ(from_b, 0u);
}

// B's chmod, made while B was stopped, is concurrent with A's: the server
// applies it and journals it again for B (the later value wins). B cannot
// apply what follows A's chmod yet (its filesystem has no room for A's
// next file, which comes before B's chmod sent back), and the server is
// killed (-9) and started again. B then writes the file, having seen
// neither its chmod back nor A's file: that write follows B's own change.
// The restarted server used to take the chmod it had journaled for B for
// a change of its own, concurrent with B's write, and kept the write
// aside as a conflict copy (the name keeping the old content).
TEST_F(ShareAttrs, WhatTheServerSentBackToAnAgentSurvivesItsKill) {
    ASSERT_NO_FATAL_FAILURE(share_base());
    ASSERT_EQ(b_->stop().exit_code, 0);
    ASSERT_EQ(::chmod((b_->dir() / "doc.txt").c_str(), 0640), 0);
    ASSERT_EQ(::chmod((a_->dir() / "doc.txt").c_str(), 0600), 0);
    const std::string blocker = pattern(4 << 20, 11);
    write_file(a_->dir() / "blocker.bin", blocker);
    sync(*a_);

    // B's filesystem with room for its own small writes, not for A's file.
    const fs::path filler = b_->dir().parent_path() / "filler";
    fs::create_directories(filler);
    write_file(filler / "slack", pattern(512 << 10, 12));
    ::sync();
    ASSERT_GT(fill_filesystem(filler), 0u);
    fs::remove(filler / "slack");
    ::sync();

    start(*b_, "b");
    auto receive_error = [&] {
        auto st = b_->status();
        if (!st.is_object() || !st.contains("servers") || st["servers"].empty()) return std::string();
        return st["servers"][0].value("receive_error", std::string());
    };
    // B's chmod was acknowledged (journaled and sent back) before A's
    // chmod, and then A's file, were forwarded to it.
    ASSERT_TRUE(eventually([&] { return receive_error().find("blocker.bin") != std::string::npos; }, 60s))
        << b_->status().dump() << "\n" << b_->log();

    server_->kill9();
    server_->start();
    {
        // In place: the same length as before, no block to allocate.
        int fd = ::open((b_->dir() / "doc.txt").c_str(), O_WRONLY);
        ASSERT_GE(fd, 0) << std::strerror(errno);
        ASSERT_EQ(::pwrite(fd, "B-own!\n", 7, 0), 7) << std::strerror(errno);
        ::close(fd);
    }
    fs::remove_all(filler);
    ::sync();
    settle(kSettleRounds);
    for (auto& dir : {a_->dir(), b_->dir(), replica()}) {
        EXPECT_EQ(read_file(dir / "doc.txt"), "B-own!\n") << dir;
        struct stat st{};
        ASSERT_EQ(::lstat((dir / "doc.txt").c_str(), &st), 0) << dir;
        // B's write carries the mode B had then: A's, applied before
        // blocker.bin failed; it is the last record of the file.
        EXPECT_EQ(st.st_mode & 07777, 0600u) << dir;
        EXPECT_TRUE(read_file(dir / "blocker.bin") == blocker) << dir;
        for (auto& e : fs::directory_iterator(dir))
            EXPECT_EQ(e.path().filename().string().find(".conflict-"), std::string::npos) << e.path();
    }
    expect_all_equal("after the server's kill between concurrent changes");
}

}  // namespace
}  // namespace iz::test::e2e
