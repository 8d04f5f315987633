#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "journal/reader.hpp"
#include "journal/writer.hpp"
#include "sample_records.hpp"
#include "support/tree.hpp"

using namespace iz::journal;

namespace {

std::unique_ptr<Writer> open_writer(const std::filesystem::path& dir, uint64_t segment_bytes = 64ull << 20) {
    WriterOptions o;
    o.dir = dir;
    o.segment_bytes = segment_bytes;
    auto w = Writer::open(o);
    EXPECT_TRUE(w) << (w ? "" : w.error().message);
    return w ? std::move(*w) : nullptr;
}

std::vector<Record> read_all(const std::filesystem::path& dir) {
    auto r = Reader::open(dir);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    std::vector<Record> out;
    for (;;) {
        auto rec = (*r)->next();
        EXPECT_TRUE(rec) << (rec ? "" : rec.error().message);
        if (!rec || !*rec) break;
        out.push_back(std::move(**rec));
    }
    return out;
}

}  // namespace

TEST(WriterReader, EveryRecordTypeRoundTripsThroughTheJournal) {
    iz::test::TempDir dir;
    auto samples = iz::test::sample_records();
    {
        auto w = open_writer(dir.path());
        for (auto& s : samples) ASSERT_TRUE(w->append(s));
        ASSERT_TRUE(w->flush());
        EXPECT_EQ(w->durable_lsn(), samples.size());
        ASSERT_TRUE(w->close());
    }
    auto got = read_all(dir.path());
    ASSERT_EQ(got.size(), samples.size());
    for (size_t i = 0; i < got.size(); ++i) {
        auto want = samples[i];
        want.lsn = i + 1;
        EXPECT_EQ(got[i], want) << op_name(want.op);
    }
}

TEST(WriterReader, AppendingContinuesAfterReopen) {
    iz::test::TempDir dir;
    for (int round = 0; round < 3; ++round) {
        auto w = open_writer(dir.path());
        EXPECT_EQ(w->head_lsn(), static_cast<uint64_t>(round * 10));
        for (int i = 0; i < 10; ++i) ASSERT_TRUE(w->append(iz::test::realistic_record(round * 10 + i)));
        ASSERT_TRUE(w->close());
    }
    auto got = read_all(dir.path());
    ASSERT_EQ(got.size(), 30u);
    for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].lsn, i + 1);
        EXPECT_EQ(got[i].version, i);
    }
}

TEST(WriterReader, SecondWriterIsRefused) {
    iz::test::TempDir dir;
    auto w = open_writer(dir.path());
    WriterOptions o;
    o.dir = dir.path();
    auto second = Writer::open(o);
    ASSERT_FALSE(second);
    EXPECT_NE(second.error().message.find("already open by another writer"), std::string::npos);
}

// A writer whose process was killed holds the lock for a while after it
// died (writer.hpp): a new one may wait for it to go.
TEST(WriterReader, SecondWriterWaitsForTheLockToGo) {
    iz::test::TempDir dir;
    auto first = open_writer(dir.path());
    ASSERT_TRUE(first->append(iz::test::realistic_record(0)));
    std::thread closer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        (void)first->close();
    });
    WriterOptions o;
    o.dir = dir.path();
    o.lock_wait = std::chrono::seconds(5);
    auto second = Writer::open(o);
    closer.join();
    ASSERT_TRUE(second) << second.error().message;
    EXPECT_EQ((*second)->head_lsn(), 1u);
}

TEST(WriterReader, SecondWriterGivesUpAfterItsWaitAndSaysWhy) {
    iz::test::TempDir dir;
    auto w = open_writer(dir.path());
    WriterOptions o;
    o.dir = dir.path();
    o.lock_wait = std::chrono::milliseconds(200);
    auto begun = std::chrono::steady_clock::now();
    auto second = Writer::open(o);
    ASSERT_FALSE(second);
    EXPECT_GE(std::chrono::steady_clock::now() - begun, std::chrono::milliseconds(200));
    EXPECT_NE(second.error().message.find("still open by another writer after waiting 0.2 s"), std::string::npos)
        << second.error().message;
}

class SegmentedJournal : public ::testing::Test {
protected:
    void SetUp() override {
        auto w = open_writer(dir.path(), 16 << 10);  // about 80 records a segment
        for (uint64_t i = 0; i < 1000; ++i) {
            auto r = iz::test::realistic_record(i);
            r.time_ns = 1'000'000'000'000 + static_cast<int64_t>(i) * 1000;
            ASSERT_TRUE(w->append(r));
            if (i % 37 == 0) {
                ASSERT_TRUE(w->flush());  // many batches
            }
        }
        ASSERT_TRUE(w->close());
        auto r = Reader::open(dir.path());
        ASSERT_TRUE(r);
        reader = std::move(*r);
    }
    iz::test::TempDir dir;
    std::unique_ptr<Reader> reader;
};

TEST_F(SegmentedJournal, SpansManySegments) { EXPECT_GT(reader->segments().size(), 10u); }

TEST_F(SegmentedJournal, ReadsForwardsAndBackwardsInOrder) {
    uint64_t expect = 1;
    while (auto rec = reader->next()) {
        if (!*rec) break;
        EXPECT_EQ((*rec)->lsn, expect++);
    }
    EXPECT_EQ(expect, 1001u);
    ASSERT_TRUE(reader->seek_tail());
    expect = 1000;
    while (auto rec = reader->prev()) {
        if (!*rec) break;
        EXPECT_EQ((*rec)->lsn, expect--);
    }
    EXPECT_EQ(expect, 0u);
}

TEST_F(SegmentedJournal, SeeksToAnLsn) {
    for (uint64_t lsn : {1u, 2u, 80u, 81u, 500u, 999u, 1000u}) {
        ASSERT_TRUE(reader->seek_lsn(lsn));
        auto rec = reader->next();
        ASSERT_TRUE(rec && *rec) << lsn;
        EXPECT_EQ((*rec)->lsn, lsn);
        ASSERT_TRUE(reader->seek_lsn(lsn));
        auto before = reader->prev();
        ASSERT_TRUE(before);
        if (lsn == 1) EXPECT_FALSE(*before);
        else EXPECT_EQ((*before)->lsn, lsn - 1);
    }
    ASSERT_TRUE(reader->seek_lsn(5000));
    auto none = reader->next();
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);
}

TEST_F(SegmentedJournal, SeeksToATime) {
    // Record i (LSN i+1) has time 1e12 + 1000 i.
    ASSERT_TRUE(reader->seek_time(1'000'000'000'000 + 123'500));
    auto rec = reader->next();
    ASSERT_TRUE(rec && *rec);
    EXPECT_EQ((*rec)->lsn, 125u);
    ASSERT_TRUE(reader->seek_time(0));
    rec = reader->next();
    EXPECT_EQ((*rec)->lsn, 1u);
    ASSERT_TRUE(reader->seek_time(INT64_MAX));
    rec = reader->next();
    EXPECT_FALSE(*rec);
}

TEST(WriterReader, MissingJournalIsAClearError) {
    auto r = Reader::open("/nonexistent/journal");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "open journal '/nonexistent/journal': No such file or directory");
}

TEST(WriterReader, DurableCallbackFiresOnlyOnceTheRecordIsReadable) {
    iz::test::TempDir dir;
    auto w = open_writer(dir.path());
    std::atomic<int> checked{0}, bad{0};
    for (int i = 0; i < 200; ++i) {
        auto lsn = w->append(iz::test::realistic_record(i), [&](uint64_t lsn, const iz::Status& st) {
            if (!st) { ++bad; return; }
            // A fresh reader, from the file, finds the record.
            auto r = Reader::open(dir.path());
            if (!r || !(*r)->seek_lsn(lsn)) { ++bad; return; }
            auto rec = (*r)->next();
            if (!rec || !*rec || (*rec)->lsn != lsn) ++bad;
            ++checked;
        });
        ASSERT_TRUE(lsn);
    }
    ASSERT_TRUE(w->flush());
    ASSERT_TRUE(w->close());
    EXPECT_EQ(checked.load(), 200);
    EXPECT_EQ(bad.load(), 0);
}

// The callbacks run on the committer thread: one that throws (anything)
// must neither end the process nor keep the others from being called.
TEST(WriterReader, ACallbackThatThrowsDoesNotStopTheCommitter) {
    struct NotAStdException {};
    iz::test::TempDir dir;
    std::atomic<int> durable_calls{0};
    WriterOptions o;
    o.dir = dir.path();
    o.on_durable = [&](uint64_t) {
        ++durable_calls;
        throw NotAStdException{};
    };
    auto opened = Writer::open(o);
    ASSERT_TRUE(opened) << opened.error().message;
    auto& w = *opened;
    std::vector<uint64_t> told;
    std::mutex mu;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(w->append(iz::test::realistic_record(i), [&, i](uint64_t lsn, const iz::Status& st) {
            {
                std::lock_guard lock(mu);
                if (st) told.push_back(lsn);
            }
            if (i == 0) throw NotAStdException{};
            if (i == 1) throw std::runtime_error("callback failed");
        }));
        ASSERT_TRUE(w->wait_durable_for(i + 1, std::chrono::seconds(10)));
    }
    ASSERT_TRUE(w->close());
    EXPECT_EQ(told, (std::vector<uint64_t>{1, 2, 3}));
    EXPECT_EQ(durable_calls.load(), 3);
    EXPECT_EQ(read_all(dir.path()).size(), 3u);
}

TEST(WriterReader, HeldAppendsGoToDiskAsOneBatchOnRelease) {
    iz::test::TempDir dir;
    auto w = open_writer(dir.path());
    // The committer asleep, waiting for work.
    ASSERT_TRUE(w->append(iz::test::realistic_record(0)));
    ASSERT_TRUE(w->flush());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    w->hold();
    for (int i = 1; i <= 100; ++i) ASSERT_TRUE(w->append(iz::test::realistic_record(i)));
    // Nothing woke it: none of them is durable yet.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(w->durable_lsn(), 1u);
    EXPECT_EQ(w->stats().batches, 1u);
    w->release();
    ASSERT_TRUE(w->wait_durable_for(101, std::chrono::seconds(10)));
    EXPECT_EQ(w->stats().batches, 2u);
    EXPECT_EQ(read_all(dir.path()).size(), 101u);
    ASSERT_TRUE(w->close());
}

TEST(WriterReader, WaitingForDurabilityWhileHeldDoesNotWaitForRelease) {
    iz::test::TempDir dir;
    auto w = open_writer(dir.path());
    w->hold();
    auto lsn = w->append(iz::test::realistic_record(1));
    ASSERT_TRUE(lsn);
    EXPECT_TRUE(w->wait_durable_for(*lsn, std::chrono::seconds(10)));
    ASSERT_TRUE(w->append(iz::test::realistic_record(2)));
    EXPECT_TRUE(w->flush());
    EXPECT_EQ(w->durable_lsn(), 2u);
    ASSERT_TRUE(w->close());
}
