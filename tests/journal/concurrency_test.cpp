#include <gtest/gtest.h>

#include <thread>

#include "journal/reader.hpp"
#include "journal/writer.hpp"
#include "sample_records.hpp"
#include "support/tree.hpp"

using namespace iz::journal;

TEST(Concurrency, ManyThreadsKeepLsnOrderAndLoseNothing) {
    iz::test::TempDir dir;
    constexpr uint32_t kThreads = 4;
    constexpr uint64_t kPerThread = 20000;
    {
        WriterOptions o;
        o.dir = dir.path();
        o.segment_bytes = 1 << 20;  // roll often while threads race
        auto w = Writer::open(o);
        ASSERT_TRUE(w) << w.error().message;
        std::vector<std::thread> threads;
        std::atomic<int> failures{0};
        for (uint32_t t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
                uint64_t last = 0;
                for (uint64_t i = 0; i < kPerThread; ++i) {
                    auto lsn = (*w)->append(iz::test::realistic_record(i, t));
                    // A thread's own appends get increasing LSNs.
                    if (!lsn || *lsn <= last) ++failures;
                    else last = *lsn;
                    if (i % 5000 == 0 && !(*w)->wait_durable(*lsn)) ++failures;
                }
            });
        }
        for (auto& th : threads) th.join();
        EXPECT_EQ(failures.load(), 0);
        ASSERT_TRUE((*w)->flush());
        EXPECT_EQ((*w)->durable_lsn(), kThreads * kPerThread);
        ASSERT_TRUE((*w)->close());
    }
    auto r = Reader::open(dir.path());
    ASSERT_TRUE(r);
    std::vector<uint64_t> next_seq(kThreads, 0);
    uint64_t expect_lsn = 1;
    for (;;) {
        auto rec = (*r)->next();
        ASSERT_TRUE(rec) << rec.error().message;
        if (!*rec) break;
        ASSERT_EQ((*rec)->lsn, expect_lsn++);
        auto thread = static_cast<uint32_t>(*(*rec)->pid - 4000);
        ASSERT_LT(thread, kThreads);
        // Each thread's records appear in the order it appended them.
        ASSERT_EQ((*rec)->version, next_seq[thread]++);
    }
    for (auto n : next_seq) EXPECT_EQ(n, kPerThread);
    EXPECT_GT((*r)->segments().size(), 5u);
}
