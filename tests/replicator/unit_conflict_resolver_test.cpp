// The server's decision on concurrent changes in a shared fileset
// (conflict_resolver.hpp): what an agent had seen of the fileset journal
// against what the journal holds for the path since.
#include <gtest/gtest.h>

#include <fstream>

#include "conflict_resolver.hpp"
#include "fileset_journal.hpp"
#include "support/tree.hpp"
#include "unit_resolver_rig.hpp"

namespace iz::replicator {
namespace {

using proto::OpKind;
using proto::OpMsg;
using Action = ConflictDecision::Action;

using test_resolver::kOpTime;
using test_resolver::op;

TEST(ConflictResolver, AChangeThatSawTheCurrentVersionReplacesIt) {
    ConflictResolver r;
    r.note(5, "a", OpKind::write, "f", "");
    EXPECT_EQ(r.decide("b", op(OpKind::write, "f", 9, 5)).action, Action::apply);
    EXPECT_EQ(r.decide("b", op(OpKind::write, "f", 10, 7)).action, Action::apply);
}

TEST(ConflictResolver, ConcurrentUpdatesKeepTheArrivingOneAside) {
    ConflictResolver r;
    r.note(5, "a", OpKind::write, "docs/f.txt", "");
    auto part = op(OpKind::write, "docs/f.txt", 9, 4);
    part.more = true;  // more parts of the record follow
    auto d = r.decide("b", part);
    EXPECT_EQ(d.action, Action::keep_aside);
    EXPECT_EQ(d.copy, "docs/f.txt.conflict-b-20261207T200000Z");
    EXPECT_TRUE(d.fresh);
    EXPECT_TRUE(d.first);
    EXPECT_TRUE(d.from_current);  // a write patches the version it was computed against
    EXPECT_EQ(d.winner_lsn, 5u);
    EXPECT_EQ(d.winner_origin, "a");

    // The next part of the same record goes on in the copy.
    auto next = op(OpKind::write, "docs/f.txt", 9, 4);
    auto d2 = r.decide("b", next);
    EXPECT_EQ(d2.action, Action::keep_aside);
    EXPECT_EQ(d2.copy, d.copy);
    EXPECT_FALSE(d2.fresh);
    EXPECT_FALSE(d2.first);  // not copied again over the first part
    // The record sent again whole (a new connection) starts over.
    EXPECT_TRUE(r.decide("b", part).from_current);
    next.more = false;
    EXPECT_FALSE(r.decide("b", next).first);
    // The agent's later records of the path, before it saw the winner,
    // follow it there; once it has, they replace the winner.
    auto attrs = op(OpKind::setattr, "docs/f.txt", 10, 4);
    EXPECT_EQ(r.decide("b", attrs).action, Action::keep_aside);
    EXPECT_EQ(r.decide("b", op(OpKind::write, "docs/f.txt", 11, 5)).action, Action::apply);
}

TEST(ConflictResolver, WholeContentKeptAsideFollowsItsParts) {
    ConflictResolver r;
    r.note(3, "a", OpKind::write, "f", "");
    auto begin = op(OpKind::content_begin, "f", 7, 1);
    begin.base = proto::ContentBase::empty;
    auto d = r.decide("b", begin);
    ASSERT_EQ(d.action, Action::keep_aside);
    EXPECT_FALSE(d.from_current);  // a full copy needs nothing of the current file
    EXPECT_EQ(r.decide("b", op(OpKind::content_data, "f", 7, 1)).copy, d.copy);
    auto end = r.decide("b", op(OpKind::content_end, "f", 7, 1));
    EXPECT_EQ(end.action, Action::keep_aside);
    EXPECT_EQ(end.copy, d.copy);
}

TEST(ConflictResolver, AnAgentsOwnChangeComingBackIsNoConflict) {
    ConflictResolver r;
    r.note(5, "b", OpKind::write, "f", "");
    EXPECT_EQ(r.decide("b", op(OpKind::write, "f", 9, 1)).action, Action::apply);
    EXPECT_EQ(r.decide("b", op(OpKind::unlink, "f", 10, 1)).action, Action::apply);
}

TEST(ConflictResolver, WithoutSeenTheLaterChangeWinsAsBefore) {
    ConflictResolver r;
    r.note(5, "a", OpKind::write, "f", "");
    EXPECT_EQ(r.decide("b", op(OpKind::write, "f", 9, std::nullopt)).action, Action::apply);
    EXPECT_EQ(r.decide("b", op(OpKind::unlink, "f", 10, std::nullopt)).action, Action::apply);
}

TEST(ConflictResolver, DeleteAgainstUpdateTheUpdateWins) {
    ConflictResolver r;
    r.note(5, "a", OpKind::write, "f", "");
    auto d = r.decide("b", op(OpKind::unlink, "f", 9, 4));
    EXPECT_EQ(d.action, Action::drop);
    EXPECT_EQ(d.winner_lsn, 5u);
    // Having seen the update, the delete is applied.
    EXPECT_EQ(r.decide("b", op(OpKind::unlink, "f", 10, 5)).action, Action::apply);

    // The other order: the update arrives after a delete it did not see,
    // and makes the file again.
    ConflictResolver other;
    other.note(5, "a", OpKind::unlink, "g", "");
    auto made_again = other.decide("b", op(OpKind::write, "g", 9, 4));
    EXPECT_EQ(made_again.action, Action::apply);
    // Sent back to b too, which gets a's delete before it.
    EXPECT_TRUE(made_again.echo);
    auto begin = op(OpKind::content_begin, "g", 10, 4);
    EXPECT_EQ(other.decide("b", begin).action, Action::apply);
    EXPECT_TRUE(other.decide("b", op(OpKind::content_end, "g", 10, 4)).echo);
    // Once journaled (for b), b's next parts are its own again.
    other.note(12, "b", OpKind::write, "g", "");
    EXPECT_FALSE(other.decide("b", op(OpKind::write, "g", 13, 4)).echo);
    EXPECT_EQ(other.decide("b", op(OpKind::write, "g", 13, 4)).action, Action::apply);
    // Two deletes agree.
    other.note(14, "a", OpKind::unlink, "h", "");
    EXPECT_EQ(other.decide("b", op(OpKind::unlink, "h", 15, 4)).action, Action::apply);
}

TEST(ConflictResolver, TwoCreatesOfOneNameAreBothKept) {
    ConflictResolver r;
    r.note(2, "a", OpKind::create, "new.txt", "");
    auto d = r.decide("b", op(OpKind::create, "new.txt", 4, 0));
    EXPECT_EQ(d.action, Action::keep_aside);
    EXPECT_EQ(d.copy, "new.txt.conflict-b-20261207T200000Z");
    EXPECT_FALSE(d.from_current);
    // A rename's destination is a change of that name too.
    ConflictResolver moved;
    moved.note(2, "a", OpKind::rename, "tmp", "doc");
    EXPECT_EQ(moved.decide("b", op(OpKind::create, "doc", 4, 1)).action, Action::keep_aside);
    EXPECT_EQ(moved.decide("b", op(OpKind::write, "tmp", 5, 1)).action, Action::apply);  // gone: made again
}

TEST(ConflictResolver, AttributesAndDirectoriesGoAsTheyCome) {
    ConflictResolver r;
    r.note(5, "a", OpKind::write, "f", "");
    r.note(6, "a", OpKind::mkdir, "d", "");
    EXPECT_EQ(r.decide("b", op(OpKind::setattr, "f", 9, 1)).action, Action::apply);
    EXPECT_EQ(r.decide("b", op(OpKind::setxattr, "f", 10, 1)).action, Action::apply);
    EXPECT_EQ(r.decide("b", op(OpKind::mkdir, "d", 11, 1)).action, Action::apply);
}

TEST(ConflictResolver, ACopyNameFitsADirectoryEntry) {
    std::string leaf(250, 'x');
    auto name = ConflictResolver::copy_name("d/" + leaf, std::string(128, 'b'), kOpTime);
    EXPECT_EQ(name.substr(0, 2), "d/");
    EXPECT_EQ(name.size() - 2, 255u);
    EXPECT_NE(name.find(".conflict-" + std::string(128, 'b') + "-20261207T200000Z"), std::string::npos);
}

// A server restarted decides as the one before it would have: the fileset
// journal's records are learnt when it is opened.
TEST(ConflictResolver, ARestartedServerRemembersWhatTheJournalHolds) {
    test::TempDir root("resolver-root"), dir("resolver-journal");
    std::ofstream(root.path() / "f") << "a's";
    OpMsg end = op(OpKind::content_end, "f", 3, std::nullopt);
    end.mode = 0100644;
    end.size = 3;
    {
        auto j = FilesetJournal::open(dir.path() / "journal", root.path(), "");
        ASSERT_TRUE(j) << j.error().message;
        std::lock_guard order((*j)->order());
        (*j)->note_applied("a", end);
        ASSERT_TRUE((*j)->flush());
    }
    auto j = FilesetJournal::open(dir.path() / "journal", root.path(), "");
    ASSERT_TRUE(j) << j.error().message;
    std::lock_guard order((*j)->order());
    auto d = (*j)->resolve("b", op(OpKind::write, "f", 9, 0));
    EXPECT_EQ(d.action, Action::keep_aside);
    EXPECT_EQ(d.winner_origin, "a");
    EXPECT_EQ(d.winner_lsn, 1u);
    EXPECT_EQ((*j)->resolve("b", op(OpKind::write, "f", 10, 1)).action, Action::apply);
}

}  // namespace
}  // namespace iz::replicator
