// The conflict resolver's memory (conflict_history.hpp, fileset_journal.hpp):
// what every agent has seen is dropped and decisions stay the same; an
// agent behind what is kept is decided with the history after its `seen`,
// read from the fileset journal; and a restarted server remembers what it
// sent back to an agent and what it kept aside, from the journal alone.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include <fmt/format.h>

#include "conflict_resolver.hpp"
#include "fileset_journal.hpp"
#include "journal/reader.hpp"
#include "support/tree.hpp"
#include "unit_resolver_rig.hpp"

namespace iz::replicator {
namespace {

using proto::OpKind;
using proto::OpMsg;
using Action = ConflictDecision::Action;

using test_resolver::op;

// One record of a made-up fileset journal.
struct Noted {
    uint64_t lsn;
    std::string origin;
    OpKind kind;
    std::string path, target;
};

// 400 records by a and c: writes, renames, rmdirs and unlinks over 20
// directories, each path changed again and again.
std::vector<Noted> history() {
    std::vector<Noted> out;
    for (uint64_t lsn = 1; lsn <= 400; ++lsn) {
        std::string origin = lsn % 3 ? "a" : "c";
        std::string d = fmt::format("d{}", lsn % 20);
        switch (lsn % 5) {
            case 0: out.push_back({lsn, origin, OpKind::rename, d + "/x", d + "/y"}); break;
            case 1: out.push_back({lsn, origin, OpKind::rmdir, d + "/sub", ""}); break;
            case 2: out.push_back({lsn, origin, OpKind::unlink, d + "/y", ""}); break;
            default: out.push_back({lsn, origin, OpKind::write, fmt::format("{}/f{}", d, lsn % 7), ""}); break;
        }
    }
    return out;
}

// b's operations, made having seen `seen`: every kind the rules look at.
std::vector<OpMsg> probes(uint64_t seen) {
    std::vector<OpMsg> out;
    uint64_t lsn = 1000;
    for (int i = 0; i < 20; ++i) {
        std::string d = fmt::format("d{}", i);
        out.push_back(op(OpKind::write, d + "/f3", ++lsn, seen));
        out.push_back(op(OpKind::create, d + "/x/new", ++lsn, seen));
        out.push_back(op(OpKind::create, d + "/sub/new", ++lsn, seen));
        out.push_back(op(OpKind::unlink, d + "/f4", ++lsn, seen));
        out.push_back(op(OpKind::rmdir, d, ++lsn, seen));
        out.push_back(op(OpKind::setattr, d, ++lsn, seen));
        out.push_back(op(OpKind::rename, d + "/x", ++lsn, seen, d + "/z"));
    }
    return out;
}

std::string outcome(ConflictResolver& r, const OpMsg& m) {
    auto p = r.place("b", m);
    auto d = r.decide("b", m);
    return fmt::format("{} -> {}|{} revive {} echo {} keep_dir {} cycle {}; action {} copy {} echo {} winner {}@{}",
                       m.path, p.path, p.target, p.revive.size(), p.echo, p.keep_dir, p.cycle,
                       static_cast<int>(d.action), d.copy, d.echo, d.winner_origin, d.winner_lsn);
}

ConflictResolver noted(const std::vector<Noted>& h) {
    ConflictResolver r;
    for (auto& n : h) r.note(n.lsn, n.origin, n.kind, n.path, n.target);
    return r;
}

TEST(ResolverMemory, PruningWhatEveryAgentSawKeepsEveryDecision) {
    auto h = history();
    for (uint64_t seen : {300u, 350u, 399u}) {
        auto whole = noted(h), pruned = noted(h);
        size_t before = pruned.entries();
        pruned.prune(300);
        EXPECT_LT(pruned.entries(), before) << "pruned at 300 of 400";
        for (auto& m : probes(seen)) {
            EXPECT_FALSE(pruned.history_needed("b", m)) << m.path;
            EXPECT_EQ(outcome(pruned, m), outcome(whole, m)) << "seen " << seen;
        }
    }
}

TEST(ResolverMemory, AnAgentBehindWhatIsKeptIsDecidedWithTheHistoryAfterItsSeen) {
    auto h = history();
    for (uint64_t seen : {0u, 120u, 299u}) {
        auto whole = noted(h), pruned = noted(h);
        pruned.prune(300);
        auto probe = probes(seen);
        auto needed = pruned.history_needed("b", probe.front());
        ASSERT_TRUE(needed);
        EXPECT_EQ(*needed, seen);
        // What the fileset journal holds after `seen`, up to the floor.
        ConflictHistory older;
        for (auto& n : h)
            if (n.lsn > seen && n.lsn <= pruned.floor()) older.note(n.lsn, n.origin, n.kind, n.path, n.target);
        pruned.load_history("b", seen, std::move(older));
        // Records noted after the load count for it too.
        whole.note(401, "a", OpKind::write, "d1/late", "");
        pruned.note(401, "a", OpKind::write, "d1/late", "");
        probe.push_back(op(OpKind::write, "d1/late", 5000, seen));
        for (auto& m : probe) EXPECT_EQ(outcome(pruned, m), outcome(whole, m)) << "seen " << seen;
    }
    // Without it, a change older than what is kept would be taken as seen.
    auto pruned = noted(h);
    pruned.prune(300);
    EXPECT_EQ(pruned.decide("b", op(OpKind::write, "d3/f3", 9, 0)).action, Action::apply);
    EXPECT_EQ(noted(h).decide("b", op(OpKind::write, "d3/f3", 9, 0)).action, Action::keep_aside);
}

// An agent's operation reports what it saw: the least reported since the
// last prune is where the next prune may go.
TEST(ResolverMemory, ThePrunePointIsTheLeastSeenReported) {
    ConflictResolver r;
    EXPECT_FALSE(r.prune_point());
    (void)r.decide("a", op(OpKind::write, "f", 1, 40));
    (void)r.decide("b", op(OpKind::write, "g", 1, 25));
    (void)r.decide("b", op(OpKind::write, "g", 2, 30));
    (void)r.decide("c", op(OpKind::write, "h", 1, std::nullopt));  // send-only: sees nothing
    EXPECT_EQ(r.prune_point(), 30u);
    r.prune(30);
    EXPECT_FALSE(r.prune_point());
}

OpMsg setattr_op(const std::string& path, uint64_t lsn, std::optional<uint64_t> seen) {
    OpMsg m = op(OpKind::setattr, path, lsn, seen);
    m.mode = 0100600;
    return m;
}

// A fileset journal of many records keeps the resolver's memory bounded,
// and an agent whose `seen` is older than what is kept still meets the
// concurrent change it did not see (read back from the journal).
TEST(ResolverMemory, AFilesetJournalKeepsItsResolverSmall) {
    test::TempDir root("resolver-root"), dir("resolver-journal");
    auto j = FilesetJournal::open(dir.path() / "journal", root.path(), "", ResolverMemory{.keep = 100, .prune_every = 50});
    ASSERT_TRUE(j) << j.error().message;
    std::lock_guard order((*j)->order());
    constexpr uint64_t kRecords = 3000;
    for (uint64_t i = 1; i <= kRecords; ++i) {
        auto m = setattr_op(fmt::format("p{}", i), i, i - 1);
        (void)(*j)->resolve("a", m);
        (*j)->note_applied("a", m);
        if (i % 100 == 0) {
            ASSERT_TRUE((*j)->flush());
        }
    }
    EXPECT_LE((*j)->resolver_entries(), 250u);
    EXPECT_GE((*j)->resolver_floor(), kRecords - 200);
    // b saw nothing: p10's chmod by a (LSN 10) is concurrent with its write.
    auto d = (*j)->resolve("b", op(OpKind::write, "p10", 1, 5));
    EXPECT_EQ(d.action, Action::keep_aside);
    EXPECT_EQ(d.winner_lsn, 10u);
    EXPECT_EQ((*j)->resolve("b", op(OpKind::write, "p10", 2, 10)).action, Action::apply);
}

// B's chmod, concurrent with A's, is sent back to B (journaled with the
// server as origin, for B). A server killed and started again reads that
// from the journal: B's write of the file, made before it had its chmod
// back, follows its own change; it used to meet "the server's" change and
// be kept aside as a conflict with itself. A's mode, which B's replaced,
// is journaled as lost.
TEST(ResolverMemory, ARestartedServerCountsWhatItSentBackAsItsAgents) {
    test::TempDir root("resolver-root"), dir("resolver-journal");
    {
        auto j = FilesetJournal::open(dir.path() / "journal", root.path(), "");
        ASSERT_TRUE(j) << j.error().message;
        std::lock_guard order((*j)->order());
        (*j)->note_applied("a", setattr_op("f", 7, 0));
        auto m = setattr_op("f", 3, 0);
        auto d = (*j)->resolve("b", m);
        ASSERT_TRUE(d.echo);
        ASSERT_TRUE(d.attributes_lost);
        (*j)->note_attribute_conflict("b", m, d);
        (*j)->note_applied("server", m, "b");
        ASSERT_TRUE((*j)->flush());
    }
    auto reader = journal::Reader::open(dir.path() / "journal");
    ASSERT_TRUE(reader);
    auto first = (*reader)->next(), lost = (*reader)->next(), sent_back = (*reader)->next();
    ASSERT_TRUE(sent_back && *sent_back);
    EXPECT_TRUE((*first)->on_behalf.empty());
    // A's mode is lost to B's: the journal says so, naming where it was.
    EXPECT_EQ((*lost)->op, journal::Op::conflict);
    EXPECT_EQ((*lost)->path, "f");
    EXPECT_EQ((*lost)->origin, "a");
    EXPECT_NE((*lost)->message.find("b's value is the one kept, a's is replaced (it is the record at server LSN 1)"),
              std::string::npos)
        << (*lost)->message;
    EXPECT_EQ((*sent_back)->origin, "server");
    EXPECT_EQ((*sent_back)->on_behalf, "b");

    auto j = FilesetJournal::open(dir.path() / "journal", root.path(), "");
    ASSERT_TRUE(j) << j.error().message;
    std::lock_guard order((*j)->order());
    auto w = (*j)->resolve("b", op(OpKind::write, "f", 4, 1));  // had A's (1), not its own back (3)
    EXPECT_EQ(w.action, Action::apply);
    EXPECT_TRUE(w.echo) << "made before B had its chmod back: goes back to B too";
    EXPECT_FALSE((*j)->resolve("b", setattr_op("f", 5, 3)).echo);
}

// B's write, concurrent with A's, was kept aside; after a restart, B's
// next write of the file made before it saw A's goes to the same copy (no
// second conflict).
TEST(ResolverMemory, ARestartedServerKeepsAnAgentsLaterRecordsAtItsCopy) {
    test::TempDir root("resolver-root"), dir("resolver-journal");
    std::string copy;
    {
        auto j = FilesetJournal::open(dir.path() / "journal", root.path(), "");
        ASSERT_TRUE(j) << j.error().message;
        std::lock_guard order((*j)->order());
        (*j)->note_applied("a", setattr_op("f", 7, 0));
        auto m = op(OpKind::write, "f", 3, 0);
        auto d = (*j)->resolve("b", m);
        ASSERT_EQ(d.action, Action::keep_aside);
        copy = d.copy;
        (*j)->note_conflict("b", m, d);
        ASSERT_TRUE((*j)->flush());
    }
    auto j = FilesetJournal::open(dir.path() / "journal", root.path(), "");
    ASSERT_TRUE(j) << j.error().message;
    std::lock_guard order((*j)->order());
    auto d = (*j)->resolve("b", op(OpKind::write, "f", 4, 0));
    EXPECT_EQ(d.action, Action::keep_aside);
    EXPECT_EQ(d.copy, copy);
    EXPECT_FALSE(d.fresh) << "a second conflict for one edit";
    EXPECT_EQ((*j)->resolve("b", op(OpKind::write, "f", 5, 1)).action, Action::apply);
}

// What a start costs: a fileset journal of 100,000 records is read back
// into the resolver (printed; bounded loosely, for a loaded machine).
TEST(ResolverMemory, AStartReadsAHundredThousandRecordsQuickly) {
    test::TempDir root("resolver-root"), dir("resolver-journal");
    constexpr uint64_t kRecords = 100'000;
    {
        auto j = FilesetJournal::open(dir.path() / "journal", root.path(), "");
        ASSERT_TRUE(j) << j.error().message;
        std::lock_guard order((*j)->order());
        for (uint64_t i = 1; i <= kRecords; ++i) {
            auto m = setattr_op(fmt::format("dir{}/file{}", i % 100, i), i, i - 1);
            if (i % 10 == 0) m = op(OpKind::rename, m.path, i, i - 1, m.path + ".moved");
            (*j)->note_applied(i % 2 ? "a" : "b", m);
        }
        ASSERT_TRUE((*j)->flush());
    }
    size_t kept = 0;
    {
        auto start = std::chrono::steady_clock::now();
        auto j = FilesetJournal::open(dir.path() / "journal", root.path(), "");
        auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        ASSERT_TRUE(j) << j.error().message;
        std::lock_guard order((*j)->order());
        kept = (*j)->resolver_entries();
        fmt::print("start with {} records: {:.3f} s, resolver entries {} (floor {})\n", kRecords, took, kept,
                   (*j)->resolver_floor());
        EXPECT_LT(took, 20.0);
        EXPECT_LE(kept, 3 * ResolverMemory{}.keep);
    }
    // The same journal with nothing dropped: what every server held before.
    auto all = FilesetJournal::open(dir.path() / "journal", root.path(), "",
                                    ResolverMemory{.keep = kRecords + 1, .prune_every = kRecords + 1});
    ASSERT_TRUE(all) << all.error().message;
    std::lock_guard order((*all)->order());
    fmt::print("nothing dropped: resolver entries {}\n", (*all)->resolver_entries());
    EXPECT_GT((*all)->resolver_entries(), 3 * kept);
}

}  // namespace
}  // namespace iz::replicator
