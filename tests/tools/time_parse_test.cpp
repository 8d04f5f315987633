#include <gtest/gtest.h>

#include <cstdlib>

#include "izlog/time_parse.hpp"

using iz::izlog::parse_time;

namespace {
constexpr int64_t kSec = 1'000'000'000;
// 2026-11-25T10:30:00Z
constexpr int64_t kNow = 1'795'602'600 * kSec;

class TimeParse : public ::testing::Test {
protected:
    void SetUp() override {
        setenv("TZ", "UTC", 1);
        tzset();
    }
};
}  // namespace

TEST_F(TimeParse, Absolute) {
    EXPECT_EQ(*parse_time("2026-11-25 10:30:00", kNow), kNow);
    EXPECT_EQ(*parse_time("2026-11-25T10:30:00Z", kNow), kNow);
    EXPECT_EQ(*parse_time("2026-11-25 10:30", kNow), kNow);
    EXPECT_EQ(*parse_time("2026-11-25", kNow), kNow - (10 * 3600 + 1800) * kSec);
    EXPECT_EQ(*parse_time("2026-11-25 10:30:00.25", kNow), kNow + kSec / 4);
    EXPECT_EQ(*parse_time("@1795602600", kNow), kNow);
    EXPECT_EQ(*parse_time("@1795602600.5", kNow), kNow + kSec / 2);
}

TEST_F(TimeParse, Relative) {
    EXPECT_EQ(*parse_time("-1h", kNow), kNow - 3600 * kSec);
    EXPECT_EQ(*parse_time("+5min", kNow), kNow + 300 * kSec);
    EXPECT_EQ(*parse_time("+5m", kNow), kNow + 300 * kSec);
    EXPECT_EQ(*parse_time("-30min", kNow), kNow - 1800 * kSec);
    EXPECT_EQ(*parse_time("-45s", kNow), kNow - 45 * kSec);
    EXPECT_EQ(*parse_time("-1h30min", kNow), kNow - 5400 * kSec);
    EXPECT_EQ(*parse_time("-2d", kNow), kNow - 2 * 86400 * kSec);
    EXPECT_EQ(*parse_time("10s ago", kNow), kNow - 10 * kSec);
    EXPECT_EQ(*parse_time("now", kNow), kNow);
    EXPECT_EQ(*parse_time("today", kNow), kNow - (10 * 3600 + 1800) * kSec);
    EXPECT_EQ(*parse_time("yesterday", kNow), kNow - (10 * 3600 + 1800 + 86400) * kSec);
}

TEST_F(TimeParse, GarbageIsAnError) {
    for (const char* bad : {"", "soon", "2026-13-01", "2026-11-25 25:00", "-1fortnight", "@x", "2026-11-25x", "2026-11-31", "2026-02-29 10:00"}) {
        auto t = parse_time(bad, kNow);
        ASSERT_FALSE(t) << bad;
        EXPECT_NE(t.error().message.find("failed to parse time"), std::string::npos);
    }
}
