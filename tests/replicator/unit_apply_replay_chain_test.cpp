// A connection that resumes far behind what this server already applied
// (the agent was killed inside a span of its plan, which gives no resume
// point) replays a prefix of the journal onto the tree the whole journal
// made. Replaying it must leave the tree as applying it once did: an entry
// a replayed create makes again, whose replayed rename can no longer reach
// its target (a later, already applied operation moved the target's
// directory away), must not stay behind at its first name.
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include "unit_apply_server_kill.hpp"

namespace iz::replicator::test_apply {
namespace {

// A rename whose directories' times are those of its LSN.
OpMsg rename_op(uint64_t lsn, const std::string& from, const std::string& to, bool replaced = false) {
    return {.lsn = lsn, .kind = OpKind::rename, .path = from, .target = to, .replaced = replaced,
            .parent_mtime_ns = t(static_cast<int>(lsn)), .target_parent_mtime_ns = t(static_cast<int>(lsn))};
}

// d/x made and written, renamed to e/y; then e renamed to f.
std::vector<OpMsg> file_renamed_then_its_new_directory() {
    std::vector<OpMsg> ops{
        {.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u, .mtime_ns = t(1)},
        {.lsn = 2, .kind = OpKind::mkdir, .path = "e", .mode = 040755u, .mtime_ns = t(2)},
        {.lsn = 3, .kind = OpKind::create, .path = "d/x", .mode = 0100644u, .mtime_ns = t(3), .parent_mtime_ns = t(3)},
        rename_op(5, "d/x", "e/y"),
        rename_op(6, "e", "f"),
    };
    auto content = content_ops(4, "d/x", "the file's bytes", t(4));
    ops.insert(ops.begin() + 3, content.begin(), content.end());
    return ops;
}

class ApplyReplayChain : public ApplyAfterServerKill {
protected:
    // Applies `ops` once, then again on a new connection, and returns the
    // manifest after each.
    std::pair<std::string, std::string> once_then_replayed(const std::vector<OpMsg>& ops, size_t replay_from) {
        for (auto& op : ops) ok(op);
        EXPECT_TRUE(applier_->finish_batch());  // directory mtimes held back are set
        std::string once = test::manifest(root_);
        // Birth times are stamped with the coarse clock: the new connection
        // comes a tick later.
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        replay_resumed(ops, replay_from);
        return {once, test::manifest(root_)};
    }

    // Replayed from `replay_from`, `ops` leave the tree listed as `listing`
    // and equal to what applying them once made.
    void expect_replay_as_once(const std::vector<OpMsg>& ops, size_t replay_from, const std::string& listing) {
        auto [once, replayed] = once_then_replayed(ops, replay_from);
        EXPECT_EQ(test::listing(root_), listing);
        EXPECT_EQ(replayed, once);
    }
};

TEST_F(ApplyReplayChain, AFileMadeAgainWhoseRenameCannotBeReplayedDoesNotStay) {
    expect_replay_as_once(file_renamed_then_its_new_directory(), 2, "d\nf\nf/y\n");
}

TEST_F(ApplyReplayChain, ADirectoryMadeAgainWhoseRenameCannotBeReplayedDoesNotStay) {
    std::vector<OpMsg> ops{
        {.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u, .mtime_ns = t(1)},
        {.lsn = 2, .kind = OpKind::mkdir, .path = "e", .mode = 040755u, .mtime_ns = t(2)},
        {.lsn = 3, .kind = OpKind::mkdir, .path = "d/x", .mode = 040700u, .mtime_ns = t(3), .parent_mtime_ns = t(3)},
        {.lsn = 4, .kind = OpKind::create, .path = "d/x/z", .mode = 0100600u, .mtime_ns = t(4), .parent_mtime_ns = t(4)},
        rename_op(5, "d/x", "e/y"),
        rename_op(6, "e", "f"),
    };
    expect_replay_as_once(ops, 2, "d\nf\nf/y\nf/y/z\n");
}

// Replayed from before the target's directory was made: the replay makes
// that directory again too, the renames into it and of it run again, and
// the directory the first run moved into place must neither be replaced
// nor kept aside as a conflict copy.
TEST_F(ApplyReplayChain, ADirectoryMadeAgainAndRenamedOverItsFirstSelfLeavesTheTreeAsItWas) {
    expect_replay_as_once(file_renamed_then_its_new_directory(), 0, "d\nf\nf/y\n");
}

// Renamed over an empty directory, which later operations filled: replayed,
// the mkdir of the source makes it again, and the replayed rename must not
// put that empty directory over the filled one (which a conflict copy
// then kept aside, with everything in it).
TEST_F(ApplyReplayChain, ADirectoryMadeAgainIsNotRenamedOverWhatItBecameTheFirstTime) {
    std::vector<OpMsg> ops{
        {.lsn = 1, .kind = OpKind::mkdir, .path = "n", .mode = 040755u, .mtime_ns = t(1)},
        {.lsn = 2, .kind = OpKind::mkdir, .path = "n/d", .mode = 040755u, .mtime_ns = t(2), .parent_mtime_ns = t(2)},
        {.lsn = 3, .kind = OpKind::mkdir, .path = "n/x", .mode = 040755u, .mtime_ns = t(3), .parent_mtime_ns = t(3)},
        rename_op(4, "n/d", "n/x", true),
        {.lsn = 5, .kind = OpKind::mkdir, .path = "n/x/m", .mode = 040700u, .mtime_ns = t(5), .parent_mtime_ns = t(5)},
        {.lsn = 6, .kind = OpKind::symlink, .path = "n/x/m/s", .target = "anywhere", .mtime_ns = t(6),
         .parent_mtime_ns = t(6)},
        {.lsn = 7, .kind = OpKind::setattr, .path = "n/x", .mtime_ns = t(7)},
    };
    expect_replay_as_once(ops, 1, "n\nn/x\nn/x/m\nn/x/m/s\n");
}

// The same for a file: renamed over another, then linked and written; the
// create replayed makes an empty file, which the replayed rename put over
// the file the later records had linked and written, cutting it from its
// second name.
TEST_F(ApplyReplayChain, AFileMadeAgainIsNotRenamedOverWhatItBecameTheFirstTime) {
    std::vector<OpMsg> ops{
        {.lsn = 1, .kind = OpKind::create, .path = "a", .mode = 0100644u, .mtime_ns = t(1)},
        rename_op(3, "a", "b"),
        {.lsn = 4, .kind = OpKind::link, .path = "b", .target = "c", .target_parent_mtime_ns = t(3)},
    };
    auto content = content_ops(2, "a", "the file's bytes", t(2));
    ops.insert(ops.begin() + 1, content.begin(), content.end());
    auto [once, replayed] = once_then_replayed(ops, 0);
    EXPECT_EQ(test::listing(root_), "b\nc\n");
    EXPECT_EQ(lstat_of(at("b")).st_ino, lstat_of(at("c")).st_ino) << "b and c are one file";
    EXPECT_EQ(replayed, once);
}

// A name that held a FIFO and then, by a rename, a file with another hard
// link: the replayed mknod found the file there and replaced it, which cut
// the file from its link group (its second name kept the old file, and the
// replayed rename of its first name then found nothing to move). An entry
// born before the sender resumed was put there by a later operation the
// first run applied: the replayed creation leaves it alone.
TEST_F(ApplyReplayChain, ACreationReplayedOntoWhatALaterRenamePutThereLeavesItAlone) {
    std::vector<OpMsg> ops{
        {.lsn = 1, .kind = OpKind::create, .path = "x", .mode = 0100640u, .mtime_ns = t(1), .parent_mtime_ns = t(1)},
        {.lsn = 2, .kind = OpKind::link, .path = "x", .target = "y", .target_parent_mtime_ns = t(2)},
        {.lsn = 3, .kind = OpKind::mknod, .path = "n", .mode = S_IFIFO | 0600u, .mtime_ns = t(3), .parent_mtime_ns = t(3)},
        {.lsn = 4, .kind = OpKind::symlink, .path = "s", .target = "there", .mtime_ns = t(4), .parent_mtime_ns = t(4)},
        rename_op(5, "n", "m"),
        rename_op(6, "s", "r"),
        rename_op(7, "x", "n"),
        {.lsn = 8, .kind = OpKind::mkdir, .path = "s", .mode = 040700u, .mtime_ns = t(8), .parent_mtime_ns = t(8)},
    };
    auto [once, replayed] = once_then_replayed(ops, 2);
    EXPECT_EQ(test::listing(root_), "m\nn\nr\ns\ny\n");
    EXPECT_EQ(lstat_of(at("n")).st_ino, lstat_of(at("y")).st_ino) << "n and y are one file";
    EXPECT_EQ(replayed, once);
}

// The same with a symlink and a FIFO made again inside the directory: the
// file memory knows no such entry as the replicator's own, but the replay
// made each of them (born since the sender resumed), so they go with it.
TEST_F(ApplyReplayChain, ADirectoryMadeAgainWithSpecialEntriesIsNotLeftBehind) {
    std::vector<OpMsg> ops{
        {.lsn = 1, .kind = OpKind::mkdir, .path = "n", .mode = 040755u, .mtime_ns = t(1)},
        {.lsn = 2, .kind = OpKind::mkdir, .path = "n/d", .mode = 040755u, .mtime_ns = t(2), .parent_mtime_ns = t(2)},
        {.lsn = 3, .kind = OpKind::symlink, .path = "n/d/s", .target = "anywhere", .mtime_ns = t(3),
         .parent_mtime_ns = t(3)},
        {.lsn = 4, .kind = OpKind::mknod, .path = "n/d/p", .mode = S_IFIFO | 0600u, .mtime_ns = t(4),
         .parent_mtime_ns = t(4)},
        {.lsn = 5, .kind = OpKind::mkdir, .path = "n/x", .mode = 040755u, .mtime_ns = t(5), .parent_mtime_ns = t(5)},
        rename_op(6, "n/d", "n/x", true),
        {.lsn = 7, .kind = OpKind::mkdir, .path = "n/x/m", .mode = 040700u, .mtime_ns = t(7), .parent_mtime_ns = t(7)},
        {.lsn = 8, .kind = OpKind::setattr, .path = "n/x", .mtime_ns = t(8)},
    };
    expect_replay_as_once(ops, 1, "n\nn/x\nn/x/m\nn/x/p\nn/x/s\n");
}

// A file made, renamed to r, and then a symlink put at r by a later
// exchange, all applied before the kill. Replayed, the create makes the file again at its first
// name, and its replayed rename moved that copy over what the later
// operation had put at r: the symlink was lost, and a second copy of the
// file took its name (seen in the kill -9 soak, XFS seed 6050). The rename
// ran the first time (its note says the file was at its first name, and a
// replay made what is there now), and r holds an entry born before the
// sender resumed: the copy goes instead.
TEST_F(ApplyReplayChain, AFileMadeAgainIsNotRenamedOverWhatALaterExchangePutAtItsNewName) {
    std::vector<OpMsg> ops{
        {.lsn = 1, .kind = OpKind::symlink, .path = "s", .target = "there", .mtime_ns = t(1), .parent_mtime_ns = t(1)},
        {.lsn = 2, .kind = OpKind::create, .path = "t", .mode = 0100644u, .mtime_ns = t(2), .parent_mtime_ns = t(2)},
        rename_op(4, "t", "r"),
        {.lsn = 5, .kind = OpKind::exchange, .path = "r", .target = "s", .parent_mtime_ns = t(5),
         .target_parent_mtime_ns = t(5)},
    };
    auto content = content_ops(3, "t", "the file's bytes", t(3));
    ops.insert(ops.begin() + 2, content.begin(), content.end());
    auto [once, replayed] = once_then_replayed(ops, 0);
    EXPECT_TRUE(S_ISLNK(lstat_of(at("r")).st_mode)) << "r is the symlink";
    EXPECT_TRUE(S_ISREG(lstat_of(at("s")).st_mode)) << "s is the file";
    EXPECT_EQ(test::listing(root_), "r\ns\n");
    EXPECT_EQ(replayed, once);
}

// A replay cut short by a kill of this server: what it made again is older
// than the next start, and the replay after the restart took it for what
// later operations of the first run had left (the directory made again
// stayed, or was moved over the first one and kept as a conflict copy).
TEST_F(ApplyReplayChain, AReplayCutShortByAServerKillIsFinishedByTheNextOne) {
    std::vector<OpMsg> ops{
        {.lsn = 1, .kind = OpKind::mkdir, .path = "n", .mode = 040755u, .mtime_ns = t(1)},
        {.lsn = 2, .kind = OpKind::mkdir, .path = "n/d", .mode = 040755u, .mtime_ns = t(2), .parent_mtime_ns = t(2)},
        {.lsn = 3, .kind = OpKind::mknod, .path = "n/d/p", .mode = S_IFIFO | 0600u, .mtime_ns = t(3),
         .parent_mtime_ns = t(3)},
        {.lsn = 4, .kind = OpKind::mkdir, .path = "n/x", .mode = 040755u, .mtime_ns = t(4), .parent_mtime_ns = t(4)},
        rename_op(5, "n/d", "n/x", true),
        {.lsn = 6, .kind = OpKind::mkdir, .path = "n/x/m", .mode = 040700u, .mtime_ns = t(6), .parent_mtime_ns = t(6)},
        {.lsn = 7, .kind = OpKind::setattr, .path = "n/x", .mtime_ns = t(7)},
    };
    ok(ops[0]);
    ASSERT_TRUE(applier_->commit(1));
    for (size_t i = 1; i < ops.size(); ++i) ok(ops[i]);
    EXPECT_TRUE(applier_->finish_batch());
    const std::string once = test::manifest(root_);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    applier_->resume();  // the agent killed: it resumes after LSN 1
    for (size_t i = 1; i < 3; ++i) (void)applier_->apply(ops[i]);  // n/d and n/d/p made again
    kill_restart_and_replay(ops, 1);  // then this server is killed
    EXPECT_EQ(test::listing(root_), "n\nn/x\nn/x/m\nn/x/p\n");
    EXPECT_EQ(test::manifest(root_), once);
}

}  // namespace
}  // namespace iz::replicator::test_apply
