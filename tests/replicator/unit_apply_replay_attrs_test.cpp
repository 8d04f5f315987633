// An attribute record (xattr, setattr) replayed after a kill of the server,
// when a later operation applied before the kill put another object at its
// name: the record was for the object the name held before (applied to it
// the first time), and must not land on the one there now.
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

class ApplyReplayAttrs : public ApplyTest {
protected:
    // Killed before any commit and restarted (a restart takes longer than
    // the tick birth times are stamped with); the agent then resumes with
    // the records from `lsn` on.
    void replay_after_a_kill(const std::vector<OpMsg>& ops, uint64_t lsn) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        reopen();
        std::vector<OpMsg> replayed;
        for (const auto& op : ops)
            if (op.lsn >= lsn) replayed.push_back(op);
        replay_ops(replayed);
    }
    void content(std::vector<OpMsg>& ops, uint64_t lsn, const std::string& path, const std::string& data) {
        auto c = content_ops(lsn, path, data, t(static_cast<int>(lsn)));
        ops.insert(ops.end(), c.begin(), c.end());
    }
};

// g's tag is set, then f (tagged too) is renamed over g. Replayed from the
// tag of g, the record set g's old tag on f's object, which the rename had
// put at g; nothing later sets it again, and the replica kept the tag of an
// object the source no longer has.
TEST_F(ApplyReplayAttrs, AnXattrReplayedOntoWhatALaterRenamePutAtItsNameIsLeftOut) {
    std::vector<OpMsg> ops;
    content(ops, 1, "f", "f's");
    ops.push_back({.lsn = 2, .kind = OpKind::setxattr, .path = "f", .xattr_name = "user.tag", .xattr_value = "mine"});
    content(ops, 3, "g", "g's");
    ops.push_back({.lsn = 4, .kind = OpKind::setxattr, .path = "g", .xattr_name = "user.tag", .xattr_value = "old"});
    ops.push_back({.lsn = 5, .kind = OpKind::rename, .path = "f", .target = "g", .parent_mtime_ns = t(5),
                   .target_parent_mtime_ns = t(5)});
    replay_ops(ops);
    ASSERT_EQ(test::xattr(at("g"), "user.tag"), "mine");
    replay_after_a_kill(ops, 4);
    EXPECT_EQ(test::listing(root_), "g\n");
    EXPECT_EQ(test::read_file(at("g")), "f's");
    EXPECT_EQ(test::xattr(at("g"), "user.tag"), "mine");
}

// The same for a mode: g's is set, f is renamed over g.
TEST_F(ApplyReplayAttrs, ASetattrReplayedOntoWhatALaterRenamePutAtItsNameIsLeftOut) {
    std::vector<OpMsg> ops;
    content(ops, 1, "f", "f's");
    ops.push_back({.lsn = 2, .kind = OpKind::setattr, .path = "f", .mode = S_IFREG | 0640, .mtime_ns = t(2)});
    content(ops, 3, "g", "g's");
    ops.push_back({.lsn = 4, .kind = OpKind::setattr, .path = "g", .mode = S_IFREG | 0604, .mtime_ns = t(4)});
    ops.push_back({.lsn = 5, .kind = OpKind::rename, .path = "f", .target = "g", .parent_mtime_ns = t(5),
                   .target_parent_mtime_ns = t(5)});
    replay_ops(ops);
    ASSERT_EQ(lstat_of(at("g")).st_mode & 07777, 0640u);
    replay_after_a_kill(ops, 4);
    EXPECT_EQ(test::read_file(at("g")), "f's");
    EXPECT_EQ(lstat_of(at("g")).st_mode & 07777, 0640u);
    EXPECT_EQ(lstat_of(at("g")).st_mtim.tv_sec * 1'000'000'000 + lstat_of(at("g")).st_mtim.tv_nsec, t(2));
}

// Killed before the rename: the replayed tag is set on g's own object.
TEST_F(ApplyReplayAttrs, AnXattrReplayedBeforeALaterRenameRanIsSet) {
    std::vector<OpMsg> ops;
    content(ops, 1, "g", "g's");
    ops.push_back({.lsn = 2, .kind = OpKind::setxattr, .path = "g", .xattr_name = "user.tag", .xattr_value = "old"});
    replay_ops(ops);
    ops.push_back({.lsn = 2, .kind = OpKind::setxattr, .path = "g", .xattr_name = "user.tag", .xattr_value = "new"});
    replay_after_a_kill(ops, 2);
    EXPECT_EQ(test::xattr(at("g"), "user.tag"), "new");
}

}  // namespace
}  // namespace iz::replicator::test_apply
