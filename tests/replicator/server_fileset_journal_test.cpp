// The server's fileset journal on its own: what it costs per record noted
// (writes and syncs), and that what is noted still becomes durable, in
// order and whole, for the Acks and the subscribers that wait for it.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <tuple>
#include <vector>

#include "fileset_journal.hpp"
#include "fileset_journal_records.hpp"
#include "support/tree.hpp"

namespace iz::replicator {
namespace {

using namespace std::chrono_literals;

proto::OpMsg mkdir_op(uint64_t lsn) {
    proto::OpMsg m;
    m.lsn = lsn;
    m.kind = proto::OpKind::mkdir;
    m.path = fmt::format("d{:04}", lsn);
    m.mode = 040755;
    return m;
}

std::shared_ptr<FilesetJournal> open_journal(const test::TempDir& state, const test::TempDir& root) {
    auto j = FilesetJournal::open(state / "journal", root.path(), "");
    EXPECT_TRUE(j) << (j ? "" : j.error().message);
    return j ? *j : nullptr;
}

// Every record of the journal, as (path, origin, origin LSN).
std::vector<std::tuple<std::string, std::string, uint64_t>> records_in(const std::filesystem::path& dir) {
    std::vector<std::tuple<std::string, std::string, uint64_t>> out;
    for (auto& r : test::journal_records(dir)) out.emplace_back(r.path, r.origin, r.origin_lsn);
    return out;
}

// Operations applied one by one, as a connection applies them: the
// journal's thread is not woken for each (a write and an fdatasync per
// record cost the server more CPU than applying them); the commit syncs
// them all at once.
TEST(ServerFilesetJournal, RecordsNotedBetweenCommitsAreSyncedOnce) {
    test::TempDir state("fsj-state"), root("fsj-root");
    auto j = open_journal(state, root);
    ASSERT_TRUE(j);
    // The journal's thread, once started and done with a first record,
    // waits (a thread that starts late finds the first records pending).
    j->note_applied("desk", mkdir_op(1));
    ASSERT_TRUE(j->flush());
    std::this_thread::sleep_for(100ms);
    auto before = j->stats();
    for (uint64_t lsn = 2; lsn <= 100; ++lsn) {
        j->note_applied("desk", mkdir_op(lsn));
        std::this_thread::sleep_for(200us);  // time enough for a wake-up, write and sync each
    }
    uint64_t through = j->commit();
    EXPECT_EQ(through, 100u);
    for (uint64_t lsn = 101; lsn <= 150; ++lsn) j->note_applied("desk", mkdir_op(lsn));
    ASSERT_TRUE(j->wait_durable(through));
    EXPECT_GE(j->durable(), 100u);
    ASSERT_TRUE(j->flush());
    EXPECT_EQ(j->durable(), 150u);
    auto after = j->stats();
    EXPECT_EQ(after.records, 150u);
    // The commit's and the flush's, and a margin for a journal thread that
    // was late to go back to sleep after the first; not one per record.
    EXPECT_LE(after.syncs - before.syncs, 3u);

    auto recs = records_in(state / "journal");
    ASSERT_EQ(recs.size(), 150u);
    for (uint64_t i = 0; i < recs.size(); ++i)
        EXPECT_EQ(recs[i], std::make_tuple(fmt::format("d{:04}", i + 1), std::string("desk"), i + 1));
}

// Records of an agent gone before its Commit reach a subscriber all the
// same: a wait that sees nothing made durable for its whole timeout makes
// them so.
TEST(ServerFilesetJournal, UncommittedRecordsReachAWaitingSubscriber) {
    test::TempDir state("fsj-state"), root("fsj-root");
    auto j = open_journal(state, root);
    ASSERT_TRUE(j);
    j->note_applied("desk", mkdir_op(7));
    uint64_t durable = 0;
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (durable == 0 && std::chrono::steady_clock::now() < deadline) durable = j->wait_durable_beyond(0, 50ms);
    EXPECT_EQ(durable, 1u);
    auto recs = records_in(state / "journal");
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_EQ(recs[0], std::make_tuple(std::string("d0007"), std::string("desk"), uint64_t{7}));
}

// Another agent's record reaches a waiting subscriber after a short grace,
// not after the waiting subscriber's whole timeout (the forwarding loop
// waits 200 ms; a commit interval is as long): sharing stays interactive.
TEST(ServerFilesetJournal, AnotherAgentsRecordReachesASubscriberWithoutItsCommit) {
    test::TempDir state("fsj-state"), root("fsj-root");
    auto j = open_journal(state, root);
    ASSERT_TRUE(j);
    j->note_applied("desk", mkdir_op(3));
    auto start = std::chrono::steady_clock::now();
    uint64_t durable = j->wait_durable_beyond(0, 60s, "laptop");
    auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(durable, 1u);
    // Generous for a loaded machine; the fallback would be the full minute.
    EXPECT_LT(waited, 20s);
}

}  // namespace
}  // namespace iz::replicator
