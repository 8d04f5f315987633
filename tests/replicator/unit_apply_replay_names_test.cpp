// A replay after a kill of the server makes names again with link(),
// rename() and exchanges, which give a name to an inode born before the
// replay began: a removal or move of that name that follows must still be
// applied.
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

class ApplyReplayNames : public ApplyTest {
protected:
    // Killed before any commit and restarted (a restart takes longer than
    // the tick birth times are stamped with); the agent then resumes at `from`.
    void replay_after_a_kill(const std::vector<OpMsg>& ops, size_t from) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        reopen();
        replay_ops(ops, from);
    }
};

// f gets a second name g, f is replaced by another file (a rename over it),
// and g is removed. Replayed from the link, the link names the file now at
// f (born before the kill) g again, and the unlink found there an entry
// other than the one it removed the first time, born before the replay
// began: it took it for one a later operation had made, and left it. g
// stayed on the replica for good.
TEST_F(ApplyReplayNames, ANameALinkMadeAgainIsRemovedAgain) {
    std::vector<OpMsg> ops;
    auto content = [&](uint64_t lsn, const std::string& path, const std::string& data) {
        auto c = content_ops(lsn, path, data, t(static_cast<int>(lsn)));
        ops.insert(ops.end(), c.begin(), c.end());
    };
    content(1, "f", "first");
    const size_t link = ops.size();
    ops.push_back({.lsn = 2, .kind = OpKind::link, .path = "f", .target = "g", .target_parent_mtime_ns = t(2)});
    content(3, "h", "replaces f");
    ops.push_back({.lsn = 4, .kind = OpKind::rename, .path = "h", .target = "f", .parent_mtime_ns = t(4),
                   .target_parent_mtime_ns = t(4)});
    ops.push_back({.lsn = 5, .kind = OpKind::unlink, .path = "g", .parent_mtime_ns = t(5)});
    replay_ops(ops, 0);
    ASSERT_EQ(test::listing(root_), "f\n");
    // h's content is gone from the source by the replay: the shipper sends
    // nothing for it.
    std::vector<OpMsg> replayed;
    for (size_t i = link; i < ops.size(); ++i)
        if (ops[i].lsn != 3) replayed.push_back(ops[i]);
    replay_after_a_kill(replayed, 0);
    EXPECT_EQ(test::listing(root_), "f\n");
    EXPECT_EQ(lstat_of(at("f")).st_nlink, 1u);
    EXPECT_EQ(test::read_file(at("f")), "replaces f");
}

}  // namespace
}  // namespace iz::replicator::test_apply
