#include <gtest/gtest.h>

#include "journal/reader.hpp"
#include "journal/retention.hpp"
#include "journal/writer.hpp"
#include "sample_records.hpp"
#include "support/tree.hpp"
#include "support/fsync_probe.hpp"

using namespace iz::journal;

TEST(Retention, DropsOnlySegmentsEveryConsumerHasPassed) {
    iz::test::TempDir dir;
    WriterOptions o;
    o.dir = dir.path();
    o.segment_bytes = 8 << 10;
    auto w = Writer::open(o);
    ASSERT_TRUE(w);
    for (int i = 0; i < 600; ++i) ASSERT_TRUE((*w)->append(iz::test::realistic_record(i)));
    ASSERT_TRUE((*w)->flush());
    auto before = Reader::open(dir.path());
    size_t segments_before = (*before)->segments().size();
    ASSERT_GT(segments_before, 5u);

    // No consumer yet: nothing may go.
    auto dropped = (*w)->apply_retention({});
    ASSERT_TRUE(dropped);
    EXPECT_EQ(*dropped, 0u);

    ASSERT_TRUE(save_consumer_lsn(dir.path(), "server-a", 400));
    ASSERT_TRUE(save_consumer_lsn(dir.path(), "server-b", 250));
    auto horizon = retention_horizon(dir.path());
    ASSERT_TRUE(horizon && *horizon);
    EXPECT_EQ(**horizon, 251u);

    // A history window not yet over keeps everything.
    dropped = (*w)->apply_retention({std::chrono::hours(1)});
    ASSERT_TRUE(dropped);
    EXPECT_EQ(*dropped, 0u);

    dropped = (*w)->apply_retention({});
    ASSERT_TRUE(dropped);
    EXPECT_GT(*dropped, 0u);

    auto r = Reader::open(dir.path());
    ASSERT_TRUE(r);
    auto first = (*r)->next();
    ASSERT_TRUE(first && *first) << (first ? "" : first.error().message);
    EXPECT_LE((*first)->lsn, 251u);  // server-b still needs 251
    EXPECT_GT((*first)->lsn, 1u);
    uint64_t count = 1;
    while (auto rec = (*r)->next()) {
        if (!*rec) break;
        ++count;
    }
    EXPECT_EQ((*first)->lsn + count - 1, 600u);
}

TEST(Retention, ConsumerNamesCannotEscapeTheDirectory) {
    iz::test::TempDir dir;
    EXPECT_FALSE(save_consumer_lsn(dir.path(), "../evil", 1));
    EXPECT_FALSE(save_consumer_lsn(dir.path(), "", 1));
}

// A consumer's cursor is replaced durably: the file is synced, then the
// directory that holds it, so the rename survives a crash (and a cursor
// that went backwards after one would ship or keep what is not needed).
TEST(Retention, ACursorIsSyncedWithItsDirectory) {
    iz::test::TempDir dir;
    ASSERT_TRUE(save_consumer_lsn(dir.path(), "server-a", 1));
    iz::test::FsyncProbe probe;
    ASSERT_TRUE(save_consumer_lsn(dir.path(), "server-a", 2));
    int file_sync = iz::test::FsyncProbe::index_of(dir.path() / "consumers" / "server-a");
    int dir_sync = iz::test::FsyncProbe::index_of(dir.path() / "consumers");
    ASSERT_GE(file_sync, 0) << "the cursor was not fsynced";
    ASSERT_GE(dir_sync, 0) << "the consumers directory was not fsynced";
    EXPECT_LT(file_sync, dir_sync);
    auto lsns = load_consumer_lsns(dir.path());
    ASSERT_TRUE(lsns) << lsns.error().message;
    EXPECT_EQ(*lsns, (std::map<std::string, uint64_t>{{"server-a", 2}}));
}
