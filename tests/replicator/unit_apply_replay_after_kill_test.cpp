// A server killed after a replay it got through, and after applying past
// it for the first time: the next start must not take what the killed
// process applied past its replay for what that replay made again. Taken
// so, a replayed rename whose name a later operation gave to a new entry
// moved that entry (a directory made after a RENAME_WHITEOUT at the old
// name) over what the first run had put at the target (the whiteout).
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include "unit_apply_server_kill.hpp"

namespace iz::replicator::test_apply {
namespace {

class ApplyReplayAfterKill : public ApplyAfterServerKill {};

TEST_F(ApplyReplayAfterKill, WhatAKilledServerAppliedPastItsFinishedReplayIsNotMadeAgain) {
    std::vector<OpMsg> ops{
        {.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u, .mtime_ns = t(1)},
        // The whiteout a RENAME_WHITEOUT left at d/w.
        {.lsn = 2, .kind = OpKind::mknod, .path = "d/w", .mode = S_IFCHR | 0663u, .mtime_ns = t(2), .rdev = 0,
         .parent_mtime_ns = t(2)},
        {.lsn = 3, .kind = OpKind::create, .path = "x", .mode = 0100644u, .mtime_ns = t(3), .parent_mtime_ns = t(3)},
        {.lsn = 4, .kind = OpKind::rename, .path = "d/w", .target = "r", .parent_mtime_ns = t(4),
         .target_parent_mtime_ns = t(4)},
        {.lsn = 5, .kind = OpKind::mkdir, .path = "d/w", .mode = 040755u, .mtime_ns = t(5), .parent_mtime_ns = t(5)},
        {.lsn = 6, .kind = OpKind::mknod, .path = "d/w/p", .mode = S_IFIFO | 0640u, .mtime_ns = t(6),
         .parent_mtime_ns = t(6)},
        // A link to a file older than the replay: the directory cannot be
        // taken for one the replay made again and dropped.
        {.lsn = 7, .kind = OpKind::link, .path = "x", .target = "d/w/h", .target_parent_mtime_ns = t(7)},
        // Change nothing; applied after `once` is taken, they leave the
        // state as a kill in the middle of a stream does (unclean), and
        // give the directories the times their last operations gave them.
        {.lsn = 8, .kind = OpKind::setattr, .path = "", .mtime_ns = t(4)},
        {.lsn = 9, .kind = OpKind::setattr, .path = "d/w", .mtime_ns = t(7)},
    };
    ok(ops[0]);
    ok(ops[1]);
    ASSERT_TRUE(applier_->commit(2));
    ok(ops[2]);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    applier_->resume();  // the agent killed: it resumes after LSN 2
    ok(ops[2]);          // the replay gets through what was applied
    for (size_t i = 3; i + 2 < ops.size(); ++i) ok(ops[i]);  // and goes on: applied for the first time
    EXPECT_TRUE(applier_->finish_batch());
    const std::string once = test::manifest(root_);
    ok(ops[ops.size() - 2]);
    ok(ops.back());
    kill_restart_and_replay(ops, 2);  // then this server is killed
    EXPECT_EQ(test::listing(root_), "d\nd/w\nd/w/h\nd/w/p\nr\nx\n");
    EXPECT_TRUE(S_ISCHR(lstat_of(at("r")).st_mode)) << "r is the whiteout";
    EXPECT_EQ(test::manifest(root_), once);
}

}  // namespace
}  // namespace iz::replicator::test_apply
