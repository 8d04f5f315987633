// A server killed after applying a rename, removal, link or exchange but
// before noting it applied: the sender resumes before it and replays it
// with what came before, creations in the same directories among them. A
// replayed creation sets its directory's mtime to the one its record
// carries (older); the operation after it, found done, must then set the
// times its own record carries, or the replica's directories keep the
// creation's times for good. (A link's or unlink's times may not even
// have reached the disk: they are held back until the batch ends.)
#include <sys/stat.h>

#include "unit_apply_server_kill.hpp"

namespace iz::replicator::test_apply {
namespace {

using test::mtime_ns;

class ApplyReplayDirTimes : public ApplyAfterServerKill {
protected:
    // The setup made durable; a file created in each of d and e; `op`
    // applied; the server killed; everything after the setup replayed.
    void done_then_killed(std::vector<OpMsg> ops, const OpMsg& op) {
        for (auto& o : ops) ok(o);
        ASSERT_TRUE(applier_->commit(ops.back().lsn));
        size_t replay_from = ops.size();
        for (const char* name : {"d/a", "e/b"}) {
            int lsn = static_cast<int>(ops.back().lsn) + 1;
            ops.push_back({.lsn = static_cast<uint64_t>(lsn), .kind = OpKind::create, .path = name, .mode = 0100644u,
                           .mtime_ns = t(lsn), .parent_mtime_ns = t(lsn)});
            ok(ops.back());
        }
        ASSERT_GT(op.lsn, ops.back().lsn);
        ok(op);
        ops.push_back(op);
        kill_restart_and_replay(ops, replay_from);
    }

    static std::vector<OpMsg> two_dirs_and_files() {
        return {
            {.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u, .mtime_ns = t(1)},
            {.lsn = 2, .kind = OpKind::mkdir, .path = "e", .mode = 040755u, .mtime_ns = t(2)},
            {.lsn = 3, .kind = OpKind::create, .path = "d/x", .mode = 0100644u, .mtime_ns = t(3),
             .parent_mtime_ns = t(3)},
            {.lsn = 4, .kind = OpKind::create, .path = "e/y", .mode = 0100644u, .mtime_ns = t(4),
             .parent_mtime_ns = t(4)},
            {.lsn = 5, .kind = OpKind::mkdir, .path = "d/s", .mode = 040755u, .mtime_ns = t(5),
             .parent_mtime_ns = t(5)},
        };
    }
};

// The setup ends at LSN 5, the creations at 7: each operation is LSN 8,
// with the times 8 and 9.

TEST_F(ApplyReplayDirTimes, AReplayedRenameFoundDoneSetsBothDirectoriesTimes) {
    done_then_killed(two_dirs_and_files(), {.lsn = 8, .kind = OpKind::rename, .path = "d/x", .target = "e/z",
                                            .parent_mtime_ns = t(8), .target_parent_mtime_ns = t(9)});
    EXPECT_EQ(test::listing(root_), "d\nd/a\nd/s\ne\ne/b\ne/y\ne/z\n");
    EXPECT_EQ(mtime_ns(at("d")), t(8));
    EXPECT_EQ(mtime_ns(at("e")), t(9));
}

TEST_F(ApplyReplayDirTimes, AReplayedRenameOverAnEntryFoundDoneSetsBothDirectoriesTimes) {
    done_then_killed(two_dirs_and_files(), {.lsn = 8, .kind = OpKind::rename, .path = "e/y", .target = "d/x",
                                            .replaced = true, .parent_mtime_ns = t(8),
                                            .target_parent_mtime_ns = t(9)});
    EXPECT_EQ(test::listing(root_), "d\nd/a\nd/s\nd/x\ne\ne/b\n");
    EXPECT_EQ(mtime_ns(at("e")), t(8));
    EXPECT_EQ(mtime_ns(at("d")), t(9));
}

TEST_F(ApplyReplayDirTimes, AReplayedUnlinkFoundDoneSetsItsDirectorysTime) {
    done_then_killed(two_dirs_and_files(), {.lsn = 8, .kind = OpKind::unlink, .path = "d/x", .parent_mtime_ns = t(8)});
    EXPECT_EQ(test::listing(root_), "d\nd/a\nd/s\ne\ne/b\ne/y\n");
    EXPECT_EQ(mtime_ns(at("d")), t(8));
}

TEST_F(ApplyReplayDirTimes, AReplayedRmdirFoundDoneSetsItsDirectorysTime) {
    done_then_killed(two_dirs_and_files(), {.lsn = 8, .kind = OpKind::rmdir, .path = "d/s", .parent_mtime_ns = t(8)});
    EXPECT_EQ(test::listing(root_), "d\nd/a\nd/x\ne\ne/b\ne/y\n");
    EXPECT_EQ(mtime_ns(at("d")), t(8));
}

TEST_F(ApplyReplayDirTimes, AReplayedLinkFoundDoneSetsItsDirectorysTime) {
    done_then_killed(two_dirs_and_files(),
                     {.lsn = 8, .kind = OpKind::link, .path = "d/x", .target = "e/h", .target_parent_mtime_ns = t(9)});
    EXPECT_EQ(test::listing(root_), "d\nd/a\nd/s\nd/x\ne\ne/b\ne/h\ne/y\n");
    EXPECT_EQ(lstat_of(at("e/h")).st_ino, lstat_of(at("d/x")).st_ino);
    EXPECT_EQ(mtime_ns(at("e")), t(9));
}

TEST_F(ApplyReplayDirTimes, AReplayedExchangeFoundDoneSetsBothDirectoriesTimes) {
    done_then_killed(two_dirs_and_files(), {.lsn = 8, .kind = OpKind::exchange, .path = "d/x", .target = "e/y",
                                            .parent_mtime_ns = t(8), .target_parent_mtime_ns = t(9)});
    EXPECT_EQ(test::listing(root_), "d\nd/a\nd/s\nd/x\ne\ne/b\ne/y\n");
    EXPECT_EQ(mtime_ns(at("d")), t(8));
    EXPECT_EQ(mtime_ns(at("e")), t(9));
}

}  // namespace
}  // namespace iz::replicator::test_apply
