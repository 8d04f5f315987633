#include <gtest/gtest.h>

#include <thread>

#include "journal/reader.hpp"
#include "journal/writer.hpp"
#include "sample_records.hpp"
#include "support/tree.hpp"

using namespace iz::journal;
using namespace std::chrono_literals;

TEST(Follow, WaitWakesForRecordsAndSegmentsAppendedLater) {
    iz::test::TempDir dir;
    WriterOptions o;
    o.dir = dir.path();
    o.segment_bytes = 8 << 10;
    auto w = Writer::open(o);
    ASSERT_TRUE(w);
    ASSERT_TRUE((*w)->append(iz::test::realistic_record(0)));
    ASSERT_TRUE((*w)->flush());

    auto r = Reader::open(dir.path());
    ASSERT_TRUE(r);
    auto first = (*r)->next();
    ASSERT_TRUE(first && *first);
    auto none = (*r)->next();
    ASSERT_TRUE(none && !*none);

    auto idle = (*r)->wait(100ms);
    ASSERT_TRUE(idle);
    EXPECT_FALSE(*idle);

    std::jthread producer([&] {
        std::this_thread::sleep_for(100ms);
        for (int i = 1; i < 300; ++i) (void)(*w)->append(iz::test::realistic_record(i));
        (void)(*w)->flush();
    });
    uint64_t seen = 1;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (seen < 300 && std::chrono::steady_clock::now() < deadline) {
        auto changed = (*r)->wait(1000ms);
        ASSERT_TRUE(changed) << changed.error().message;
        for (;;) {
            auto rec = (*r)->next();
            ASSERT_TRUE(rec) << rec.error().message;
            if (!*rec) break;
            EXPECT_EQ((*rec)->lsn, ++seen);
        }
    }
    producer.join();
    EXPECT_EQ(seen, 300u);
    EXPECT_GT((*r)->segments().size(), 3u);
}
