// The server's decision on concurrent attribute and xattr changes in a
// shared fileset (conflict_resolver.hpp): the later one journaled wins, and
// goes back to its own agent too.
#include <gtest/gtest.h>

#include "conflict_resolver.hpp"
#include "unit_resolver_rig.hpp"

namespace iz::replicator {
namespace {

using proto::OpKind;
using Action = ConflictDecision::Action;

using test_resolver::op;

TEST(AttributeConflicts, ConcurrentAttributeChangesAreAppliedAndSentBackToTheirAgent) {
    for (auto kind : {OpKind::setattr, OpKind::setxattr, OpKind::removexattr}) {
        ConflictResolver r;
        r.note(5, "a", OpKind::setattr, "f", "");
        auto d = r.decide("b", op(kind, "f", 9, 4));
        EXPECT_EQ(d.action, Action::apply) << proto::op_kind_name(kind);
        EXPECT_TRUE(d.echo) << proto::op_kind_name(kind);
        EXPECT_EQ(d.winner_lsn, 5u);
        EXPECT_EQ(d.winner_origin, "a");
    }
}

TEST(AttributeConflicts, AttributesThatSawTheLatestChangeOrFollowTheirOwnAreNotSentBack) {
    ConflictResolver r;
    r.note(5, "a", OpKind::setxattr, "f", "");
    EXPECT_FALSE(r.decide("b", op(OpKind::setattr, "f", 9, 5)).echo);   // saw it
    EXPECT_FALSE(r.decide("a", op(OpKind::setattr, "f", 10, 1)).echo);  // its own
    EXPECT_FALSE(r.decide("b", op(OpKind::setattr, "g", 11, 0)).echo);  // another path
    EXPECT_FALSE(r.decide("b", op(OpKind::setattr, "f", 12, std::nullopt)).echo);  // no seen: send-only
}

// B's chmod is concurrent with A's and sent back at server LSN 6; B's next
// changes of the file, made before B had that back, go back too (B applies
// its sent-back chmod after them); once B has seen LSN 6, no more.
TEST(AttributeConflicts, AnAgentsLaterChangesBeforeItHadItsOwnBackGoBackToo) {
    ConflictResolver r;
    r.note(5, "a", OpKind::setattr, "f", "");
    auto d = r.decide("b", op(OpKind::setattr, "f", 9, 4));
    ASSERT_TRUE(d.echo);
    r.note(6, "b", OpKind::setattr, "f", "");  // journaled as the server's, counted as b's
    EXPECT_TRUE(r.decide("b", op(OpKind::setxattr, "f", 10, 5)).echo);
    r.note(7, "b", OpKind::setxattr, "f", "");
    auto w = r.decide("b", op(OpKind::write, "f", 11, 6));  // had LSN 6, not 7
    EXPECT_EQ(w.action, Action::apply);
    EXPECT_TRUE(w.echo);
    r.note(8, "b", OpKind::write, "f", "");
    EXPECT_FALSE(r.decide("b", op(OpKind::setattr, "f", 12, 8)).echo);
    r.note(9, "b", OpKind::setattr, "f", "");
    EXPECT_FALSE(r.decide("b", op(OpKind::setattr, "f", 13, 8)).echo);
}

// A content change concurrent with attributes stays a conflict of
// versions (kept aside), as before.
TEST(AttributeConflicts, ContentAgainstConcurrentAttributesIsStillKeptAside) {
    ConflictResolver r;
    r.note(5, "a", OpKind::setattr, "f", "");
    auto d = r.decide("b", op(OpKind::write, "f", 9, 4));
    EXPECT_EQ(d.action, Action::keep_aside);
    EXPECT_FALSE(d.echo);
}

}  // namespace
}  // namespace iz::replicator
