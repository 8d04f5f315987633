// A sender that resumes below what this server applied (the agent was
// killed inside a span of its plan, which is no resume point) replays
// content for a name where a later record, applied the first time, put an
// entry of another type: RENAME_WHITEOUT moved the file away and left a
// character device at its name. The content went to the file the first
// time; replayed, it is skipped like the same replay after a stop of this
// server, not rejected: a rejection makes `izwatch sync` report content
// left out that the replica holds.
#include <sys/stat.h>

#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

class ApplyReplayContent : public ApplyTest {};

TEST_F(ApplyReplayContent, ContentReplayedWhereALaterRecordPutADeviceIsSkipped) {
    std::vector<OpMsg> ops{
        {.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u, .mtime_ns = t(1)},
        {.lsn = 2, .kind = OpKind::create, .path = "d/f", .mode = 0100644u, .mtime_ns = t(2), .parent_mtime_ns = t(2)},
        {.lsn = 3, .kind = OpKind::write, .path = "d/f", .mtime_ns = t(3), .size = 5,
         .extents = {proto::make_extent(0, "hello", false)}},
        {.lsn = 4, .kind = OpKind::truncate, .path = "d/f", .mtime_ns = t(4), .size = 8192},
        // RENAME_WHITEOUT d/f -> d/g: the rename, then the whiteout.
        {.lsn = 5, .kind = OpKind::rename, .path = "d/f", .target = "d/g", .parent_mtime_ns = t(5),
         .target_parent_mtime_ns = t(5)},
        {.lsn = 6, .kind = OpKind::mknod, .path = "d/f", .mode = S_IFCHR | 0000u, .mtime_ns = t(6), .rdev = 0,
         .parent_mtime_ns = t(6)},
    };
    for (auto& op : ops) ok(op);
    EXPECT_TRUE(applier_->finish_batch());
    const std::string once = test::manifest(root_);
    applier_->resume();  // the agent killed: it resumes after LSN 2
    replay_ops(ops, 2);
    EXPECT_TRUE(applier_->take_rejections().empty());
    EXPECT_TRUE(applier_->commit(ops.back().lsn));
    EXPECT_EQ(test::listing(root_), "d\nd/f\nd/g\n");
    EXPECT_TRUE(S_ISCHR(lstat_of(at("d/f")).st_mode));
    EXPECT_EQ(lstat_of(at("d/g")).st_size, 8192);
    EXPECT_EQ(test::manifest(root_), once);
}

}  // namespace
}  // namespace iz::replicator::test_apply
