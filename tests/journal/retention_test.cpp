#include <gtest/gtest.h>

#include "journal/reader.hpp"
#include "journal/retention.hpp"
#include "journal/writer.hpp"
#include "sample_records.hpp"

using namespace iz::journal;

TEST(Retention, DropsOnlySegmentsEveryConsumerHasPassed) {
    iz::test::TempDir dir;
    WriterOptions o;
    o.dir = dir.path;
    o.segment_bytes = 8 << 10;
    auto w = Writer::open(o);
    ASSERT_TRUE(w);
    for (int i = 0; i < 600; ++i) ASSERT_TRUE((*w)->append(iz::test::realistic_record(i)));
    ASSERT_TRUE((*w)->flush());
    auto before = Reader::open(dir.path);
    size_t segments_before = (*before)->segments().size();
    ASSERT_GT(segments_before, 5u);

    // No consumer yet: nothing may go.
    auto dropped = (*w)->apply_retention({});
    ASSERT_TRUE(dropped);
    EXPECT_EQ(*dropped, 0u);

    ASSERT_TRUE(save_consumer_lsn(dir.path, "server-a", 400));
    ASSERT_TRUE(save_consumer_lsn(dir.path, "server-b", 250));
    auto horizon = retention_horizon(dir.path);
    ASSERT_TRUE(horizon && *horizon);
    EXPECT_EQ(**horizon, 251u);

    // A history window not yet over keeps everything.
    dropped = (*w)->apply_retention({std::chrono::hours(1)});
    ASSERT_TRUE(dropped);
    EXPECT_EQ(*dropped, 0u);

    dropped = (*w)->apply_retention({});
    ASSERT_TRUE(dropped);
    EXPECT_GT(*dropped, 0u);

    auto r = Reader::open(dir.path);
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
    EXPECT_FALSE(save_consumer_lsn(dir.path, "../evil", 1));
    EXPECT_FALSE(save_consumer_lsn(dir.path, "", 1));
}
