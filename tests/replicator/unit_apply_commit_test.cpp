// Commits made in the background (begin_commit / finish_commits): operations
// go on being applied during the sync, each commit is reported once, in
// order, and a server killed during one replays what followed it without
// taking its own changes for someone else's.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

using test::mtime_ns;
using test::read_file;

class ApplyCommit : public ApplyTest {
protected:
    // Begins a commit of `lsn`; wait_woken() then waits for its callback.
    void begin(uint64_t lsn) {
        applier_->begin_commit(lsn, [this] {
            std::lock_guard lock(mu_);
            ++woken_;
            cv_.notify_all();
        });
    }
    bool wait_woken(int count) {
        std::unique_lock lock(mu_);
        return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return woken_ >= count; });
    }

    std::mutex mu_;
    std::condition_variable cv_;
    int woken_ = 0;
};

TEST_F(ApplyCommit, OperationsGoOnWhileACommitIsMadeDurable) {
    ok(content_ops(1, "a", "first", t(1)));
    begin(1);
    // Applied while the sync may still run.
    ok(content_ops(2, "b", "second", t(2)));
    ok(OpMsg{.lsn = 3, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    ASSERT_TRUE(wait_woken(1));
    auto done = applier_->finish_commits();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].lsn, 1u);
    EXPECT_TRUE(done[0].status);
    EXPECT_EQ(applier_->durable_lsn(), 1u);
    EXPECT_EQ(applier_->resume_lsn(), 3u);
    EXPECT_TRUE(applier_->finish_commits().empty()) << "a commit is reported once";

    // The next one covers what was applied meanwhile.
    begin(3);
    ASSERT_TRUE(wait_woken(2));
    done = applier_->finish_commits();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].lsn, 3u);
    EXPECT_EQ(applier_->durable_lsn(), 3u);
    reopen();
    EXPECT_EQ(applier_->durable_lsn(), 3u);
    EXPECT_EQ(read_file(at("b")), "second");
}

TEST_F(ApplyCommit, BeginningAnotherFinishesTheOneInFlightFirst) {
    ok(content_ops(1, "a", "first", t(1)));
    begin(1);
    ok(content_ops(2, "b", "second", t(2)));
    begin(2);
    ASSERT_TRUE(wait_woken(2));
    auto done = applier_->finish_commits();
    ASSERT_EQ(done.size(), 2u);
    EXPECT_EQ(done[0].lsn, 1u);
    EXPECT_EQ(done[1].lsn, 2u);
    EXPECT_EQ(applier_->durable_lsn(), 2u);
}

// The directory mtimes deferred in a batch are set before a commit makes
// the batch durable.
TEST_F(ApplyCommit, DirectoryMtimesDeferredInABatchAreSetBeforeTheCommit) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    for (uint64_t i = 2; i <= 9; ++i)
        ok(OpMsg{.lsn = i, .kind = OpKind::create, .path = "d/f" + std::to_string(i), .mode = 0100644u,
                 .parent_mtime_ns = t(static_cast<int>(i))});
    begin(9);
    ASSERT_TRUE(wait_woken(1));
    auto done = applier_->finish_commits();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_TRUE(done[0].status);
    EXPECT_EQ(mtime_ns(at("d")), t(9));
}

// Forgets and first records wait in the file memory, directory mtimes in
// the directory cache. Killed with them unwritten, the server resumes at the
// first operation after the commit, whose own share was written before
// progress named it, and replays the rest without false conflicts.
TEST_F(ApplyCommit, KilledWithDeferredWorkReplaysItWithoutConflicts) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    ok(content_ops(2, "d/f", "one", t(2)));
    settle();
    ok(OpMsg{.lsn = 3, .kind = OpKind::create, .path = "d/g", .mode = 0100644u, .parent_mtime_ns = t(3)});
    EXPECT_EQ(mtime_ns(at("d")), t(3)) << "the operation progress names is not wholly on disk";
    ok(OpMsg{.lsn = 4, .kind = OpKind::unlink, .path = "d/f", .parent_mtime_ns = t(4)});
    auto again = content_ops(5, "d/f", "two", t(5));
    ok(again);
    auto killed = std::move(applier_);  // as a kill -9 leaves it
    auto a = Applier::open(ApplierOptions{root_, state_, "testhost", {}});
    ASSERT_TRUE(a) << a.error().message;
    applier_ = std::move(*a);
    EXPECT_EQ(applier_->resume_lsn(), 3u);
    auto r = applier_->apply(OpMsg{.lsn = 4, .kind = OpKind::unlink, .path = "d/f", .parent_mtime_ns = t(4)});
    EXPECT_TRUE(r.conflicts.empty()) << "a false conflict on replay";
    for (auto& op : again) EXPECT_TRUE(applier_->apply(op).conflicts.empty()) << "a false conflict on replay";
    ASSERT_TRUE(applier_->commit(5));
    OpMsg w{.lsn = 6, .kind = OpKind::write, .path = "d/f", .mtime_ns = t(6), .extents = {proto::make_extent(0, "T", false)}};
    EXPECT_TRUE(applier_->apply(w).conflicts.empty()) << "the replicator's own file taken for a change behind its back";
    EXPECT_EQ(read_file(at("d/f")), "Two");
    ASSERT_TRUE(applier_->commit(6));
    EXPECT_EQ(test::listing(root_), "d\nd/f\nd/g\n");
    (void)killed.release();  // its destructor would write to the state as if it still ran
}

// Killed during the sync: the state on disk says to resume after the commit's
// LSN, in the unclean state, so what followed is replayed as the server's own
// work although the file memory held its records back.
TEST_F(ApplyCommit, KilledDuringACommitReplaysWhatFollowedWithoutConflicts) {
    ok(content_ops(1, "f", "one", t(1)));
    settle();
    ok(content_ops(2, "f", "two", t(2)));
    begin(2);
    auto three = content_ops(3, "f", "three", t(3));
    ok(three);
    ok(OpMsg{.lsn = 4, .kind = OpKind::truncate, .path = "f", .mtime_ns = t(4), .size = 2});
    ASSERT_TRUE(wait_woken(1));
    // Not finished and not destroyed: as a kill -9 leaves it (the process
    // would be gone; here it is left alone).
    auto killed = std::move(applier_);
    auto a = Applier::open(ApplierOptions{root_, state_, "testhost", {}});
    ASSERT_TRUE(a) << a.error().message;
    applier_ = std::move(*a);
    EXPECT_GE(applier_->resume_lsn(), 2u);
    EXPECT_LE(applier_->resume_lsn(), 2u) << "what followed the commit must be replayed";
    for (auto& op : three) EXPECT_TRUE(applier_->apply(op).conflicts.empty()) << "a false conflict on replay";
    auto r = applier_->apply(OpMsg{.lsn = 4, .kind = OpKind::truncate, .path = "f", .mtime_ns = t(4), .size = 2});
    EXPECT_TRUE(r.conflicts.empty());
    EXPECT_EQ(read_file(at("f")), "th");
    ASSERT_TRUE(applier_->commit(4));
    EXPECT_EQ(test::listing(root_), "f\n");
    (void)killed.release();  // its destructor would write to the state as if it still ran
}

// Resumed after an unclean stop, the agent replays from the last resume
// point: a write whose file a later operation (applied before the stop,
// replayed after the write) renamed away made a file of those bytes alone,
// and that rename then put it over the whole file.
TEST_F(ApplyCommit, AReplayedWriteToAFileRenamedSinceLeavesTheWholeFileAlone) {
    ok(content_ops(1, "f", std::string(100, 'a'), t(1)));
    settle();
    OpMsg w{.lsn = 2, .kind = OpKind::write, .path = "f", .mtime_ns = t(2), .size = 100,
            .extents = {proto::make_extent(50, "BBBB", false)}};
    ok(w);
    OpMsg rename{.lsn = 3, .kind = OpKind::rename, .path = "f", .target = "g"};
    ok(rename);
    auto killed = std::move(applier_);  // as a kill -9 leaves it
    auto a = Applier::open(ApplierOptions{root_, state_, "testhost", {}});
    ASSERT_TRUE(a) << a.error().message;
    applier_ = std::move(*a);
    ASSERT_EQ(applier_->resume_lsn(), 2u);
    // Say progress had named only the commit: both are replayed.
    expect(Outcome::skipped, w);
    ok(rename);
    ASSERT_TRUE(applier_->commit(3));
    EXPECT_EQ(test::listing(root_), "g\n");
    EXPECT_EQ(read_file(at("g")), std::string(50, 'a') + "BBBB" + std::string(46, 'a'));
    (void)killed.release();
}

// The same with no stop of the server: the agent was killed inside a span
// of its plan (no resume point), its connection dropped, and the restarted
// agent resumes from the span's start, replaying what this run applied.
// A write whose file a later rename had moved over another name (a hard
// link of it elsewhere) made a file of its bytes alone, and the replayed
// rename put that over the name, cutting it from its other links.
TEST_F(ApplyCommit, AReplayedWriteToAFileRenamedSinceOnANewConnectionLeavesTheWholeFileAlone) {
    ok(content_ops(1, "f", std::string(100, 'a'), t(1)));
    ok(OpMsg{.lsn = 2, .kind = OpKind::link, .path = "f", .target = "h"});
    OpMsg w{.lsn = 3, .kind = OpKind::write, .path = "f", .mtime_ns = t(3), .size = 100,
            .extents = {proto::make_extent(50, "BBBB", false)}};
    ok(w);
    OpMsg rename{.lsn = 4, .kind = OpKind::rename, .path = "f", .target = "g"};
    ok(rename);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    applier_->resume();  // the new connection, resuming after LSN 2
    expect(Outcome::skipped, w);
    ok(rename);
    ASSERT_TRUE(applier_->commit(4));
    EXPECT_EQ(test::listing(root_), "g\nh\n");
    EXPECT_EQ(read_file(at("g")), std::string(50, 'a') + "BBBB" + std::string(46, 'a'));
    EXPECT_EQ(lstat_of(at("g")).st_ino, lstat_of(at("h")).st_ino) << "g and h are one file";
}

// A commit made while the agent replays after a kill need not cover all
// that the killed run applied: while a commit's sync runs, progress stays at
// its LSN however many operations follow, and a replay that went on past
// the first commit without taking the server's own changes for its own
// (the file memory lost the records held back during that sync) made
// conflict copies of the replicator's own files.
TEST_F(ApplyCommit, AReplayStaysRecoveryUntilItPassesWhatTheKilledRunApplied) {
    ok(content_ops(1, "f", "one", t(1)));
    settle();
    ok(OpMsg{.lsn = 2, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    begin(2);
    OpMsg w{.lsn = 3, .kind = OpKind::write, .path = "f", .mtime_ns = t(3), .size = 6,
            .extents = {proto::make_extent(3, "two", false)}};
    ok(w);
    ASSERT_TRUE(wait_woken(1));
    auto killed = std::move(applier_);  // as a kill -9 leaves it, the sync done but not recorded
    auto a = Applier::open(ApplierOptions{root_, state_, "testhost", {}});
    ASSERT_TRUE(a) << a.error().message;
    applier_ = std::move(*a);
    ASSERT_EQ(applier_->resume_lsn(), 2u);
    // The agent commits what it has resent so far (nothing yet), then replays.
    ASSERT_TRUE(applier_->commit(2));
    auto r = applier_->apply(w);
    EXPECT_EQ(outcome_name(r.outcome), "applied") << r.message;
    EXPECT_TRUE(r.conflicts.empty()) << "the replay took the server's own write for a change behind its back";
    EXPECT_EQ(test::listing(root_), "d\nf\n");
    EXPECT_EQ(read_file(at("f")), "onetwo");
    (void)killed.release();
}

// The truncate the shipper sends for a close carries the source's owner and
// mode as they are now: they are set, not only the size and times.
TEST_F(ApplyCommit, ATruncateForACloseSetsTheModeItCarries) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::create, .path = "f", .mode = 0100600u});
    ok(OpMsg{.lsn = 2, .kind = OpKind::truncate, .path = "f", .mode = 0100644u, .mtime_ns = t(2), .size = 7});
    auto st = lstat_of(at("f"));
    EXPECT_EQ(st.st_mode & 07777, 0644u);
    EXPECT_EQ(st.st_size, 7);
}

// Content begun for an LSN that a commit then covers was given up by its
// sender: it is dropped, not left staged behind an applied LSN that says
// it is done, and never linked by a later end.
TEST_F(ApplyCommit, ACommitDropsContentItsSenderGaveUp) {
    auto ops = content_ops(1, "f", "never ended", t(1));
    expect(Outcome::applied, ops.front());
    ASSERT_TRUE(applier_->commit(1));
    EXPECT_EQ(applier_->apply(ops.back()).outcome, Outcome::refused);
    EXPECT_FALSE(fs::exists(at("f")));
}

}  // namespace
}  // namespace iz::replicator::test_apply
