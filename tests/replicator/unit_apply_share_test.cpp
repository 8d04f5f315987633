// An applier of a shared fileset: what it applied is forwarded to the other
// agents as soon as its record is durable, with its parent directory's mtime
// read from the replica then, before the batch it came in has ended.
#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

using test::mtime_ns;

// A directory's mtime is set before apply() returns, not deferred to the
// end of the batch as for an applier with no other readers: read before
// then, the mtime the entry's creation left (the server's clock) would be
// forwarded, and the directory's last record would carry it to every
// receiver while the server's own replica was set right afterwards.
TEST_F(ApplyTest, ASharedApplierSetsEachDirectoryMtimeBeforeApplyReturns) {
    applier_->share();
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u, .parent_mtime_ns = t(1)});
    EXPECT_EQ(mtime_ns(root_), t(1));
    ok(OpMsg{.lsn = 2, .kind = OpKind::create, .path = "d/f", .mode = 0100644u, .parent_mtime_ns = t(2)});
    EXPECT_EQ(mtime_ns(at("d")), t(2));
    ok(OpMsg{.lsn = 3, .kind = OpKind::mkdir, .path = "d/e", .mode = 040755u, .parent_mtime_ns = t(3)});
    EXPECT_EQ(mtime_ns(at("d")), t(3));
    ok(OpMsg{.lsn = 4, .kind = OpKind::link, .path = "d/f", .target = "d/e/g", .target_parent_mtime_ns = t(4)});
    EXPECT_EQ(mtime_ns(at("d/e")), t(4));
    auto content = content_ops(5, "d/e/h", "bytes", t(5));
    content.back().parent_mtime_ns = t(6);
    ok(content);
    EXPECT_EQ(mtime_ns(at("d/e")), t(6));
    ok(OpMsg{.lsn = 7, .kind = OpKind::unlink, .path = "d/f", .parent_mtime_ns = t(7)});
    EXPECT_EQ(mtime_ns(at("d")), t(7));
    ok(OpMsg{.lsn = 8, .kind = OpKind::rename, .path = "d/e/h", .target = "d/h", .parent_mtime_ns = t(8),
             .target_parent_mtime_ns = t(9)});
    EXPECT_EQ(mtime_ns(at("d/e")), t(8));
    EXPECT_EQ(mtime_ns(at("d")), t(9));
}

}  // namespace
}  // namespace iz::replicator::test_apply
