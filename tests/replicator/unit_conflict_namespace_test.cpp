// Where the server places an agent's operation when the tree moved under
// it concurrently (conflict_resolver.hpp, ConflictResolver::place): moves
// and directory removals the agent had not seen.
#include <gtest/gtest.h>

#include "conflict_resolver.hpp"
#include "unit_resolver_rig.hpp"

namespace iz::replicator {
namespace {

using proto::OpKind;
using proto::OpMsg;
using Moves = std::vector<std::pair<std::string, std::string>>;

// Placing looks at what the agent had seen, not at its own LSN.
OpMsg op(OpKind kind, const std::string& path, uint64_t seen, const std::string& target = "") {
    return test_resolver::op(kind, path, 100, seen, target);
}

TEST(ConflictNamespace, NothingMovedLeavesTheOperationAlone) {
    ConflictResolver r;
    r.note(5, "a", OpKind::rename, "d", "e");
    r.note(6, "a", OpKind::rmdir, "gone", "");
    // Seen, its own, without `seen`, or elsewhere: as it is.
    for (auto m : {op(OpKind::create, "d/n", 5), op(OpKind::create, "elsewhere/n", 1), op(OpKind::create, "dd/n", 1),
                   op(OpKind::create, "gone/n", 6)}) {
        auto p = r.place("b", m);
        EXPECT_EQ(p.path, m.path);
        EXPECT_FALSE(p.moved || p.echo || p.cycle) << m.path;
        EXPECT_TRUE(p.revive.empty()) << m.path;
    }
    EXPECT_FALSE(r.place("a", op(OpKind::create, "d/n", 1)).moved);
    auto unseen = op(OpKind::create, "d/n", 1);
    unseen.seen.reset();
    EXPECT_FALSE(r.place("b", unseen).moved);
}

TEST(ConflictNamespace, AnEntryMadeInADirectoryMovedConcurrentlyFollowsIt) {
    ConflictResolver r;
    r.note(5, "a", OpKind::rename, "d", "e");
    auto p = r.place("b", op(OpKind::create, "d/sub/n", 4));
    EXPECT_EQ(p.path, "e/sub/n");
    EXPECT_TRUE(p.moved);
    EXPECT_TRUE(p.echo);  // its own agent gets it at the new place too
    EXPECT_EQ(p.winner_lsn, 5u);
    EXPECT_EQ(p.winner_origin, "a");
    // The directory itself is not followed by a change of its own name
    // (that is the path's own conflict, conflict_resolver.cpp).
    EXPECT_EQ(r.place("b", op(OpKind::setattr, "d", 4)).path, "d");
}

TEST(ConflictNamespace, MovesAreFollowedInTheirOrderOnly) {
    ConflictResolver r;
    r.note(5, "a", OpKind::rename, "d", "e");
    r.note(6, "c", OpKind::rename, "e", "f/e");
    EXPECT_EQ(r.place("b", op(OpKind::create, "d/n", 4)).path, "f/e/n");
    EXPECT_EQ(r.place("b", op(OpKind::create, "d/n", 5)).path, "d/n");  // saw the first: d is its own d
    // Away and back: where it is now, not a loop.
    ConflictResolver back;
    back.note(5, "a", OpKind::rename, "d", "e");
    back.note(6, "a", OpKind::rename, "e", "d");
    EXPECT_EQ(back.place("b", op(OpKind::create, "d/n", 4)).path, "d/n");
}

TEST(ConflictNamespace, TheSameEntryMovedTwiceEndsWhereTheLaterMovePutsIt) {
    ConflictResolver r;
    r.note(5, "a", OpKind::rename, "f", "g");
    auto p = r.place("b", op(OpKind::rename, "f", 4, "h"));
    EXPECT_EQ(p.path, "g");
    EXPECT_EQ(p.target, "h");
    EXPECT_TRUE(p.echo);
    EXPECT_FALSE(p.cycle);
    // A link's source follows too; a created name does not.
    EXPECT_EQ(r.place("b", op(OpKind::link, "f", 4, "l")).path, "g");
    EXPECT_EQ(r.place("b", op(OpKind::create, "f", 4)).path, "f");
}

TEST(ConflictNamespace, MovesThatWouldMakeACycleSkipTheLaterOne) {
    ConflictResolver r;
    r.note(5, "a", OpKind::rename, "x", "y/x");
    auto p = r.place("b", op(OpKind::rename, "y", 4, "x/y"));
    EXPECT_TRUE(p.cycle);
    EXPECT_EQ(p.target, "y/x/y");
    EXPECT_EQ(p.winner_lsn, 5u);
    EXPECT_EQ(p.winner_origin, "a");
    // B's move undone where B made it, then A's made again.
    EXPECT_EQ(p.undo, (Moves{{"x/y", "y"}, {"x", "y/x"}}));
    // Had B seen A's move, it is an ordinary rename into y/x.
    EXPECT_FALSE(r.place("b", op(OpKind::rename, "y", 5, "x/y")).cycle);
    // Deeper: A moved x beneath y/z, B moves y beneath x/w.
    ConflictResolver deep;
    deep.note(5, "a", OpKind::rename, "x", "y/z/x");
    EXPECT_TRUE(deep.place("b", op(OpKind::rename, "y", 4, "x/w/y")).cycle);
}

TEST(ConflictNamespace, AChangeBeneathARemovedDirectoryMakesItAgain) {
    ConflictResolver r;
    r.note(5, "a", OpKind::unlink, "d/s/f", "");
    r.note(6, "a", OpKind::rmdir, "d/s", "");
    r.note(7, "a", OpKind::rmdir, "d", "");
    auto p = r.place("b", op(OpKind::create, "d/s/new", 4));
    EXPECT_EQ(p.path, "d/s/new");
    EXPECT_FALSE(p.moved);
    EXPECT_TRUE(p.echo);
    EXPECT_EQ(p.revive, (std::vector<std::string>{"d", "d/s"}));
    EXPECT_EQ(p.winner_origin, "a");
    // A write, a rename's target: updates as well.
    EXPECT_EQ(r.place("b", op(OpKind::write, "d/f", 6)).revive, (std::vector<std::string>{"d"}));
    EXPECT_EQ(r.place("b", op(OpKind::rename, "top", 4, "d/s/top")).revive,
              (std::vector<std::string>{"d", "d/s"}));
    // Removals beneath it agree with it; the remover's own, and what saw it, are no conflict.
    EXPECT_TRUE(r.place("b", op(OpKind::unlink, "d/s/old", 4)).revive.empty());
    EXPECT_TRUE(r.place("a", op(OpKind::create, "d/s/new", 4)).revive.empty());
    EXPECT_TRUE(r.place("b", op(OpKind::create, "d/s/new", 7)).revive.empty());
}

TEST(ConflictNamespace, ARemovalThatDidNotSeeAChangeBeneathItKeepsTheDirectory) {
    ConflictResolver r;
    r.note(5, "b", OpKind::create, "d/sub/new", "");
    r.note(6, "a", OpKind::unlink, "d/old", "");
    auto p = r.place("a", op(OpKind::rmdir, "d", 4));
    EXPECT_TRUE(p.keep_dir);
    EXPECT_EQ(p.winner_lsn, 5u);
    EXPECT_EQ(p.winner_origin, "b");
    EXPECT_TRUE(r.place("a", op(OpKind::rmdir, "d/sub", 4)).keep_dir);
    EXPECT_FALSE(r.place("a", op(OpKind::rmdir, "d", 5)).keep_dir);   // saw it
    EXPECT_FALSE(r.place("b", op(OpKind::rmdir, "d", 4)).keep_dir);   // its own
    EXPECT_FALSE(r.place("a", op(OpKind::rmdir, "dd", 4)).keep_dir);  // elsewhere
    r.note(7, "b", OpKind::unlink, "d/sub/new", "");
    EXPECT_FALSE(r.place("a", op(OpKind::rmdir, "d", 4)).keep_dir);   // removed again: both agree
}

TEST(ConflictNamespace, ARenameWhoseSourceWasRemovedConcurrentlyMakesItAgain) {
    ConflictResolver r;
    r.note(5, "a", OpKind::unlink, "d/f", "");
    r.note(6, "a", OpKind::unlink, "d/sub/deep", "");
    r.note(7, "a", OpKind::rmdir, "d/sub", "");
    r.note(8, "a", OpKind::rmdir, "d", "");
    auto p = r.place("b", op(OpKind::rename, "d/f", 4, "g"));
    EXPECT_TRUE(p.remake);
    EXPECT_EQ(p.winner_lsn, 5u);
    EXPECT_EQ(p.winner_origin, "a");
    EXPECT_TRUE(r.place("b", op(OpKind::rename, "d/sub", 4, "h")).remake);        // a directory removed
    EXPECT_FALSE(r.place("b", op(OpKind::rename, "d/f", 8, "g")).remake);         // saw it
    EXPECT_FALSE(r.place("a", op(OpKind::rename, "d/f", 4, "g")).remake);         // its own
    EXPECT_FALSE(r.place("b", op(OpKind::rename, "elsewhere", 4, "g")).remake);   // nothing removed there
    // Made there again after what it saw: a rename of that one.
    r.note(9, "b", OpKind::create, "d/f", "");
    EXPECT_FALSE(r.place("c", op(OpKind::rename, "d/f", 8, "g")).remake);
}

TEST(ConflictNamespace, ARemovalOfAnEntryMovedConcurrentlyLeavesItWhereTheMovePutIt) {
    ConflictResolver r;
    r.note(5, "b", OpKind::rename, "d/f", "g");
    r.note(6, "b", OpKind::rename, "d/sub", "h");
    auto p = r.place("a", op(OpKind::unlink, "d/f", 4));
    EXPECT_EQ(p.keep, "g");
    EXPECT_EQ(p.winner_lsn, 5u);
    EXPECT_EQ(p.winner_origin, "b");
    EXPECT_EQ(r.place("a", op(OpKind::rmdir, "d/sub", 4)).keep, "h");
    // Beneath a moved directory, a removal follows it, as any operation.
    auto beneath = r.place("a", op(OpKind::unlink, "d/sub/deep", 4));
    EXPECT_TRUE(beneath.keep.empty());
    EXPECT_EQ(beneath.path, "h/deep");
    EXPECT_TRUE(r.place("a", op(OpKind::unlink, "d/f", 5)).keep.empty());  // saw it
    EXPECT_TRUE(r.place("b", op(OpKind::unlink, "d/f", 4)).keep.empty());  // its own
}

TEST(ConflictNamespace, DirectoryTimesTakenBeforeAConcurrentRemovalInItGoBackToTheirAgent) {
    ConflictResolver r;
    r.note(5, "a", OpKind::unlink, "d/f", "");
    r.note(6, "a", OpKind::rename, "x", "y/x");
    for (auto dir : {"d", "", ".", "y"}) {
        auto p = r.place("b", op(OpKind::setattr, dir, 4));
        EXPECT_TRUE(p.echo) << dir;
        EXPECT_EQ(p.path, dir);
    }
    EXPECT_FALSE(r.place("b", op(OpKind::setattr, "d", 5)).echo);  // saw it
    EXPECT_FALSE(r.place("a", op(OpKind::setattr, "d", 4)).echo);  // its own
    EXPECT_FALSE(r.place("b", op(OpKind::setattr, "e", 4)).echo);  // elsewhere
    auto unseen = op(OpKind::setattr, "", 4);  // the times a shipper read itself
    unseen.seen.reset();
    EXPECT_TRUE(r.place("b", unseen).echo);
}

}  // namespace
}  // namespace iz::replicator
