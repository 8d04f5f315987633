// End to end, concurrent namespace changes in a shared fileset: a change
// beneath a directory another agent removed, moves that would make a
// cycle, one entry moved to two names, a directory moved while an entry
// is made inside it. As in e2e_share_conflict_test.cpp, concurrency is
// made deterministic by stopping agent B, changing the tree on A (which
// reaches the server), changing B's directory meanwhile and starting B
// again: its restart captures B's changes with what B had seen before it
// stopped. Whatever the case, A, B and the server end equal by the full
// manifest, and every byte either agent wrote is still somewhere.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "e2e_share_fixture.hpp"
#include "support/posix_acl.hpp"

namespace fs = std::filesystem;

namespace iz::test::e2e {
namespace {

// Every regular file's bytes beneath `dir`, by path relative to it.
std::map<std::string, std::string> contents(const fs::path& dir) {
    std::map<std::string, std::string> out;
    for (auto& e : fs::recursive_directory_iterator(dir)) {
        std::error_code ec;
        if (e.is_symlink(ec) || !e.is_regular_file(ec)) continue;
        out[fs::relative(e.path(), dir).string()] = read_file(e.path());
    }
    return out;
}

void set_xattr(const fs::path& p, const std::string& name, const std::string& value) {
    ASSERT_EQ(::setxattr(p.c_str(), name.c_str(), value.data(), value.size(), 0), 0) << p << ": " << std::strerror(errno);
}

void make_node(const fs::path& p, mode_t mode, dev_t rdev = 0) {
    ASSERT_EQ(::mknod(p.c_str(), mode, rdev), 0) << p << ": " << std::strerror(errno);
}

class ShareMoveConflict : public ShareFixture {
protected:
    ShareMoveConflict() : ShareFixture("mvconf") {}

    // Both started and sharing what `make` made in A's directory; then B
    // is stopped (cut off).
    template <class Make>
    void share_then_cut_b(Make make) {
        start(*a_, "a");
        start(*b_, "b");
        make(a_->dir());
        sync(*a_);
        sync(*b_);
        ASSERT_EQ(contents(b_->dir()), contents(a_->dir()));
        ASSERT_EQ(b_->stop().exit_code, 0);
    }

    // B comes back and sends what it did while cut off; then A is stopped
    // (cut off in turn).
    void b_back_then_cut_a() {
        start(*b_, "b");
        sync(*b_);
        ASSERT_EQ(a_->stop().exit_code, 0);
    }

    // A comes back: it sends what it did while cut off and gets B's; B then
    // gets what the server made of A's, and A what came of that.
    void a_back() {
        start(*a_, "a");
        sync(*a_);
        sync(*b_);
        sync(*a_);
    }

    // The server's fileset journal's conflict records.
    std::vector<nlohmann::json> conflicts_journaled() {
        std::vector<nlohmann::json> out;
        for (auto& r : journal_records(server_journal()))
            if (r.value("op", "") == "conflict") out.push_back(r);
        return out;
    }

    std::vector<fs::path> replicas() { return {a_->dir(), b_->dir(), replica()}; }
};

// A removes d with everything in it while B, cut off, writes a file that
// was in d and makes a new one there: the updates win. d, B's version of
// d/f and B's d/new are on every replica; what A removed and B did not
// touch (d/other) stays removed.
TEST_F(ShareMoveConflict, AChangeBeneathADirectoryRemovedConcurrentlyKeepsTheDirectory) {
    share_then_cut_b([](const fs::path& dir) {
        fs::create_directories(dir / "d" / "sub");
        write_file(dir / "d" / "f", "f v1\n");
        write_file(dir / "d" / "other", "other v1\n");
        write_file(dir / "d" / "sub" / "deep", "deep v1\n");
        write_file(dir / "keep", "keep\n");
    });
    fs::remove_all(a_->dir() / "d");
    sync(*a_);
    write_file(b_->dir() / "d" / "f", "f v2, written by B cut off\n");
    write_file(b_->dir() / "d" / "new", "new, made by B cut off\n");
    start(*b_, "b");
    settle();

    for (auto& dir : replicas()) {
        EXPECT_EQ(read_file(dir / "d" / "f"), "f v2, written by B cut off\n") << dir;
        EXPECT_EQ(read_file(dir / "d" / "new"), "new, made by B cut off\n") << dir;
        EXPECT_FALSE(fs::exists(dir / "d" / "other")) << dir;
        EXPECT_FALSE(fs::exists(dir / "d" / "sub")) << dir;
        EXPECT_EQ(read_file(dir / "keep"), "keep\n") << dir;
    }
    expect_all_equal("after a change beneath a removed directory");
}

// The other order: B makes d/new and the server has it when A, cut off
// meanwhile, removes d with everything in it. The update wins: A's rmdir
// is not applied and A gets d and d/new back; what A removed that B did
// not touch (d/f, d/sub) stays removed.
TEST_F(ShareMoveConflict, ARemovalThatDidNotSeeAChangeBeneathItKeepsTheDirectory) {
    share_then_cut_b([](const fs::path& dir) {
        fs::create_directories(dir / "d" / "sub");
        write_file(dir / "d" / "f", "f v1\n");
        write_file(dir / "d" / "sub" / "deep", "deep v1\n");
    });
    // B is the one cut off by the fixture: start it again, cut A off.
    b_back_then_cut_a();
    write_file(b_->dir() / "d" / "new", "new, made by B while A was cut off\n");
    sync(*b_);
    fs::remove_all(a_->dir() / "d");
    a_back();

    for (auto& dir : replicas()) {
        EXPECT_EQ(read_file(dir / "d" / "new"), "new, made by B while A was cut off\n") << dir;
        EXPECT_FALSE(fs::exists(dir / "d" / "f")) << dir;
        EXPECT_FALSE(fs::exists(dir / "d" / "sub")) << dir;
    }
    expect_all_equal("after a removal that did not see a change beneath it");
}

// As above, with what B made in d while A was cut off being of every kind:
// a FIFO, a socket and a device, a symlink, a second name of a file in d
// and one of a file outside it, an owner, mode, times, xattrs and ACLs on
// a file B changed (so A's removal of it is not applied) and on a
// directory. The kept directory comes back to A equal by the full
// manifest: the same entry types, one object with several names, the
// attributes.
TEST_F(ShareMoveConflict, ADirectoryKeptAgainstARemovalComesBackWhole) {
    share_then_cut_b([](const fs::path& dir) {
        fs::create_directories(dir / "d" / "sub");
        write_file(dir / "d" / "f", "f v1\n");
        write_file(dir / "d" / "h1", "one object, two names\n");
        write_file(dir / "d" / "gone", "removed by A, untouched by B\n");
        write_file(dir / "x", "a file outside d\n");
    });
    b_back_then_cut_a();
    const fs::path d = b_->dir() / "d";
    make_node(d / "fifo", S_IFIFO | 0640);
    make_node(d / "sock", S_IFSOCK | 0600);
    make_node(d / "null", S_IFCHR | 0620, makedev(1, 3));
    fs::create_symlink("../x", d / "sub" / "to-x");
    fs::create_hard_link(d / "h1", d / "sub" / "h2");
    fs::create_hard_link(b_->dir() / "x", d / "x2");
    set_xattr(d / "f", "user.note", "kept with d/f");
    set_xattr(d / "f", "system.posix_acl_access", acl_granting_user(4321));
    ASSERT_EQ(::chown((d / "f").c_str(), 1234, 5678), 0) << std::strerror(errno);
    ASSERT_EQ(::chmod((d / "f").c_str(), 0640), 0) << std::strerror(errno);
    set_xattr(d / "sub", "user.dir", "a directory's xattr");
    set_xattr(d / "sub", "system.posix_acl_default", acl_granting_user(4321));
    struct timespec old[2] = {{1'500'000'000, 0}, {1'500'000'000, 123'456'789}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (d / "f").c_str(), old, AT_SYMLINK_NOFOLLOW), 0) << std::strerror(errno);
    sync(*b_);
    fs::remove_all(a_->dir() / "d");
    a_back();

    for (auto& dir : replicas()) {
        EXPECT_EQ(read_file(dir / "d" / "f"), "f v1\n") << dir;
        EXPECT_EQ(read_file(dir / "d" / "sub" / "h2"), "one object, two names\n") << dir;
        EXPECT_EQ(fs::hard_link_count(dir / "d" / "h1"), 2u) << dir;
        EXPECT_EQ(fs::hard_link_count(dir / "x"), 2u) << dir;
        EXPECT_EQ(fs::status(dir / "d" / "fifo").type(), fs::file_type::fifo) << dir;
        EXPECT_EQ(fs::symlink_status(dir / "d" / "sock").type(), fs::file_type::socket) << dir;
        EXPECT_EQ(fs::symlink_status(dir / "d" / "null").type(), fs::file_type::character) << dir;
        EXPECT_EQ(xattr(dir / "d" / "f", "user.note"), "kept with d/f") << dir;
        EXPECT_EQ(xattr(dir / "d" / "sub", "system.posix_acl_default"), acl_granting_user(4321)) << dir;
        EXPECT_FALSE(fs::exists(dir / "d" / "gone")) << dir;
    }
    expect_all_equal("after a directory holding every kind of entry was kept against a removal");
}

// A removes d with everything in it while B, cut off, moves a file and a
// directory out of it (d/f to g, d/sub to h): the rename wins over the
// removal for what it moves. The server had applied A's removal first, so
// it makes the sources again at their targets from what it kept of them:
// g and h/deep hold their bytes and xattr on every replica; what A removed
// and B did not move (d/other, d itself) stays removed.
TEST_F(ShareMoveConflict, WhatIsMovedOutOfADirectoryRemovedConcurrentlyIsKept) {
    share_then_cut_b([](const fs::path& dir) {
        fs::create_directories(dir / "d" / "sub");
        write_file(dir / "d" / "f", "f, moved out by B\n");
        set_xattr(dir / "d" / "f", "user.note", "moved with f");
        write_file(dir / "d" / "other", "other, removed by A\n");
        write_file(dir / "d" / "sub" / "deep", "deep, moved out with sub by B\n");
    });
    fs::remove_all(a_->dir() / "d");
    sync(*a_);
    fs::rename(b_->dir() / "d" / "f", b_->dir() / "g");
    fs::rename(b_->dir() / "d" / "sub", b_->dir() / "h");
    start(*b_, "b");
    settle();

    for (auto& dir : replicas()) {
        EXPECT_EQ(read_file(dir / "g"), "f, moved out by B\n") << dir;
        EXPECT_EQ(xattr(dir / "g", "user.note"), "moved with f") << dir;
        EXPECT_EQ(read_file(dir / "h" / "deep"), "deep, moved out with sub by B\n") << dir;
        EXPECT_FALSE(fs::exists(dir / "d")) << dir;
    }
    expect_all_equal("after a rename out of a directory removed concurrently");
}

// The other order: B's move of d/f to g is on the server when A, cut off
// meanwhile, removes d with everything in it. The move wins: A's removal
// of f is not applied and A gets g; the rest of d stays removed.
TEST_F(ShareMoveConflict, ARemovalThatDidNotSeeAMoveLeavesTheMovedEntry) {
    share_then_cut_b([](const fs::path& dir) {
        fs::create_directories(dir / "d");
        write_file(dir / "d" / "f", "f, moved out by B\n");
        write_file(dir / "d" / "other", "other, removed by A\n");
    });
    b_back_then_cut_a();
    fs::rename(b_->dir() / "d" / "f", b_->dir() / "g");
    sync(*b_);
    fs::remove_all(a_->dir() / "d");
    a_back();

    for (auto& dir : replicas()) {
        EXPECT_EQ(read_file(dir / "g"), "f, moved out by B\n") << dir;
        EXPECT_FALSE(fs::exists(dir / "d")) << dir;
    }
    expect_all_equal("after a removal that did not see a move out of it");
}

// A moves x into y while B, cut off, moves y into x: applying both would
// make a cycle. The move the server journals later (B's) is skipped and
// reported as a conflict record; nothing is lost and all replicas agree.
TEST_F(ShareMoveConflict, MovesThatWouldMakeACycleKeepTheFirstAndReportTheSecond) {
    share_then_cut_b([](const fs::path& dir) {
        fs::create_directories(dir / "x");
        fs::create_directories(dir / "y");
        write_file(dir / "x" / "in-x", "in x\n");
        write_file(dir / "y" / "in-y", "in y\n");
    });
    fs::rename(a_->dir() / "x", a_->dir() / "y" / "x");
    sync(*a_);
    fs::rename(b_->dir() / "y", b_->dir() / "x" / "y");
    start(*b_, "b");
    settle();

    for (auto& dir : replicas()) {
        EXPECT_EQ(read_file(dir / "y" / "x" / "in-x"), "in x\n") << dir;
        EXPECT_EQ(read_file(dir / "y" / "in-y"), "in y\n") << dir;
        EXPECT_FALSE(fs::exists(dir / "x")) << dir;
    }
    expect_all_equal("after moves that would make a cycle");
    auto conflicts = conflicts_journaled();
    ASSERT_EQ(conflicts.size(), 1u);
    EXPECT_EQ(conflicts[0].value("path", ""), "y");
    EXPECT_EQ(conflicts[0].value("origin", ""), "b");
}

// A renames f to g while B, cut off, renames f to h: B's rename, which
// the server journals later, follows the entry (g to h), so the later
// move wins: one name, h, with the bytes, on every replica; no f, no g.
TEST_F(ShareMoveConflict, OneEntryMovedToTwoNamesEndsAtTheLaterNameEverywhere) {
    share_then_cut_b([](const fs::path& dir) { write_file(dir / "f", "the one file\n"); });
    fs::rename(a_->dir() / "f", a_->dir() / "g");
    sync(*a_);
    fs::rename(b_->dir() / "f", b_->dir() / "h");
    start(*b_, "b");
    settle();

    for (auto& dir : replicas()) {
        EXPECT_EQ(read_file(dir / "h"), "the one file\n") << dir;
        EXPECT_FALSE(fs::exists(dir / "f")) << dir;
        EXPECT_FALSE(fs::exists(dir / "g")) << dir;
    }
    expect_all_equal("after one entry moved to two names");
}

// A moves d to e while B, cut off, makes d/n: n ends inside the moved
// directory (e/n) on every replica, and no d is left anywhere.
TEST_F(ShareMoveConflict, AnEntryMadeInADirectoryMovedConcurrentlyFollowsIt) {
    share_then_cut_b([](const fs::path& dir) {
        fs::create_directories(dir / "d");
        write_file(dir / "d" / "old", "old\n");
    });
    fs::rename(a_->dir() / "d", a_->dir() / "e");
    sync(*a_);
    write_file(b_->dir() / "d" / "n", "n, made by B cut off\n");
    start(*b_, "b");
    settle();

    for (auto& dir : replicas()) {
        EXPECT_EQ(read_file(dir / "e" / "n"), "n, made by B cut off\n") << dir;
        EXPECT_EQ(read_file(dir / "e" / "old"), "old\n") << dir;
        EXPECT_FALSE(fs::exists(dir / "d")) << dir;
    }
    expect_all_equal("after a create inside a directory moved concurrently");
}

}  // namespace
}  // namespace iz::test::e2e
