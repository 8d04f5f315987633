// A link replayed after a kill of the server, when later operations
// (applied before the kill) gave one of its two names to another object:
// the link ran the first time, and must not take that object into the
// group, nor put the group over it.
#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include "common/unique_fd.hpp"
#include "exchange_notes.hpp"
#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

class ApplyReplayLinks : public ApplyTest {
protected:
    // Killed before any commit and restarted (a restart takes longer than
    // the tick birth times are stamped with); the agent then resumes at
    // `from`. The content of h is gone from the source by then: the shipper
    // sends nothing for it.
    void replay_after_a_kill(const std::vector<OpMsg>& ops, size_t from, uint64_t unsent_lsn) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        reopen();
        std::vector<OpMsg> replayed;
        for (size_t i = from; i < ops.size(); ++i)
            if (ops[i].lsn != unsent_lsn) replayed.push_back(ops[i]);
        replay_ops(replayed, 0);
    }
    void content(std::vector<OpMsg>& ops, uint64_t lsn, const std::string& path, const std::string& data) {
        auto c = content_ops(lsn, path, data, t(static_cast<int>(lsn)));
        ops.insert(ops.end(), c.begin(), c.end());
    }
};

// f gets a second name g, then another file h is renamed over f. Replayed
// from the link, the link found at f the file that had been h and linked it
// to g in place of f's old object: g's group took h's object (its content,
// and every later write to either).
TEST_F(ApplyReplayLinks, ALinkWhoseFirstNameWasReplacedSinceIsNotMadeAgain) {
    std::vector<OpMsg> ops;
    content(ops, 1, "f", "first");
    const size_t link = ops.size();
    ops.push_back({.lsn = 2, .kind = OpKind::link, .path = "f", .target = "g", .target_parent_mtime_ns = t(2)});
    content(ops, 3, "h", "replaces f");
    ops.push_back({.lsn = 4, .kind = OpKind::rename, .path = "h", .target = "f", .parent_mtime_ns = t(4),
                   .target_parent_mtime_ns = t(4)});
    replay_ops(ops, 0);
    ASSERT_EQ(test::listing(root_), "f\ng\n");
    replay_after_a_kill(ops, link, 3);
    EXPECT_EQ(test::listing(root_), "f\ng\n");
    EXPECT_EQ(test::read_file(at("f")), "replaces f");
    EXPECT_EQ(test::read_file(at("g")), "first");
    EXPECT_EQ(lstat_of(at("f")).st_nlink, 1u);
    EXPECT_EQ(lstat_of(at("g")).st_nlink, 1u);
}

// f gets a second name g, then another file h is renamed over g. Replayed
// from the link, the link found g holding another object than f's, removed
// it and linked f there again: h's file was lost.
TEST_F(ApplyReplayLinks, ALinkWhoseSecondNameWasReplacedSinceIsNotMadeAgain) {
    std::vector<OpMsg> ops;
    content(ops, 1, "f", "first");
    const size_t link = ops.size();
    ops.push_back({.lsn = 2, .kind = OpKind::link, .path = "f", .target = "g", .target_parent_mtime_ns = t(2)});
    content(ops, 3, "h", "replaces g");
    ops.push_back({.lsn = 4, .kind = OpKind::rename, .path = "h", .target = "g", .parent_mtime_ns = t(4),
                   .target_parent_mtime_ns = t(4)});
    replay_ops(ops, 0);
    ASSERT_EQ(test::listing(root_), "f\ng\n");
    replay_after_a_kill(ops, link, 3);
    EXPECT_EQ(test::listing(root_), "f\ng\n");
    EXPECT_EQ(test::read_file(at("f")), "first");
    EXPECT_EQ(test::read_file(at("g")), "replaces g");
    EXPECT_EQ(lstat_of(at("f")).st_nlink, 1u);
    EXPECT_EQ(lstat_of(at("g")).st_nlink, 1u);
}

// The kill came before the link was made: the replay makes it.
TEST_F(ApplyReplayLinks, ALinkNotMadeBeforeTheKillIsMadeByTheReplay) {
    std::vector<OpMsg> ops;
    content(ops, 1, "f", "first");
    replay_ops(ops, 0);
    const size_t link = ops.size();
    ops.push_back({.lsn = 2, .kind = OpKind::link, .path = "f", .target = "g", .target_parent_mtime_ns = t(2)});
    replay_after_a_kill(ops, link, 0);
    EXPECT_EQ(test::listing(root_), "f\ng\n");
    EXPECT_EQ(lstat_of(at("f")).st_ino, lstat_of(at("g")).st_ino);
    EXPECT_EQ(lstat_of(at("g")).st_nlink, 2u);
}

// Killed after the link was noted and before it made room at its second
// name: the replay finds there the entry the link was to replace, born
// before the resume like one a later operation put there. Taken for that,
// it stayed at g for good and the link was never made.
TEST_F(ApplyReplayLinks, ALinkKilledBetweenItsNoteAndMakingRoomIsMadeByTheReplay) {
    std::vector<OpMsg> ops;
    content(ops, 1, "f", "first");
    content(ops, 2, "g", "replaced by the link");
    replay_ops(ops, 0);
    const size_t link = ops.size();
    ops.push_back({.lsn = 3, .kind = OpKind::link, .path = "f", .target = "g", .target_parent_mtime_ns = t(3)});
    // What the link notes before it makes room, and nothing more.
    applier_.reset();
    {
        UniqueFd root(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        ASSERT_TRUE(root.valid());
        auto f = object_identity(root.get(), "f", "f");
        auto g = object_identity(root.get(), "g", "g");
        ASSERT_TRUE(f && g);
        auto notes = ExchangeNotes::open(state_);
        ASSERT_TRUE(notes) << notes.error().message;
        auto ok = notes->add_quick({3, "f", "g", *f, "-", *g}, 0);
        ASSERT_TRUE(ok) << ok.error().message;
    }
    replay_after_a_kill(ops, link, 0);
    EXPECT_EQ(test::listing(root_), "f\ng\n");
    EXPECT_EQ(lstat_of(at("f")).st_ino, lstat_of(at("g")).st_ino);
    EXPECT_EQ(lstat_of(at("g")).st_nlink, 2u);
    EXPECT_EQ(test::read_file(at("g")), "first");
}

}  // namespace
}  // namespace iz::replicator::test_apply
