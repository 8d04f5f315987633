// The Prometheus text format as metrics/exposition.hpp writes it: whole
// pages compared byte for byte.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "metrics/exposition.hpp"

namespace iz::metrics {
namespace {

TEST(Exposition, FamiliesKeepTheirFirstOrderAndGroupTheirSamples) {
    Exposition e;
    e.counter("iz_sent_bytes_total", "Bytes sent.", uint64_t{10}, {{"server", "a:1"}});
    e.gauge("iz_connected", "Whether connected.", uint64_t{1}, {{"server", "a:1"}});
    e.counter("iz_sent_bytes_total", "Bytes sent.", uint64_t{20}, {{"server", "b:2"}});
    e.gauge("iz_connected", "Whether connected.", uint64_t{0}, {{"server", "b:2"}});
    e.gauge("iz_lag_seconds", "Lag.", 0.25);
    EXPECT_EQ(e.text(),
              "# HELP iz_sent_bytes_total Bytes sent.\n"
              "# TYPE iz_sent_bytes_total counter\n"
              "iz_sent_bytes_total{server=\"a:1\"} 10\n"
              "iz_sent_bytes_total{server=\"b:2\"} 20\n"
              "# HELP iz_connected Whether connected.\n"
              "# TYPE iz_connected gauge\n"
              "iz_connected{server=\"a:1\"} 1\n"
              "iz_connected{server=\"b:2\"} 0\n"
              "# HELP iz_lag_seconds Lag.\n"
              "# TYPE iz_lag_seconds gauge\n"
              "iz_lag_seconds 0.25\n");
}

TEST(Exposition, LabelValuesAndHelpAreEscaped) {
    Exposition e;
    e.gauge("iz_x", "a \\ backslash,\na newline and \"quotes\"", uint64_t{1},
            {{"a", "back\\slash"}, {"b", "new\nline"}, {"c", "\"quoted\""}});
    EXPECT_EQ(e.text(),
              "# HELP iz_x a \\\\ backslash,\\na newline and \"quotes\"\n"
              "# TYPE iz_x gauge\n"
              "iz_x{a=\"back\\\\slash\",b=\"new\\nline\",c=\"\\\"quoted\\\"\"} 1\n");
}

TEST(Exposition, BytesThatAreNotUtf8BecomeReplacementCharacters) {
    EXPECT_EQ(escape_label_value("caf\xC3\xA9"), "caf\xC3\xA9");          // é stays
    EXPECT_EQ(escape_label_value("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");  // 4 bytes stay
    EXPECT_EQ(escape_label_value("a\xFFz"), "a\xEF\xBF\xBDz");
    EXPECT_EQ(escape_label_value("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
    EXPECT_EQ(escape_label_value("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
    EXPECT_EQ(escape_label_value("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // cut short
    EXPECT_EQ(escape_help("x\x80"), "x\xEF\xBF\xBD");
}

TEST(Exposition, ValuesAreExactOrShortest) {
    Exposition e;
    e.counter("iz_big_total", "h", std::numeric_limits<uint64_t>::max());
    e.gauge("iz_half", "h", 0.5);
    e.gauge("iz_nan", "h", std::nan(""));
    e.gauge("iz_inf", "h", std::numeric_limits<double>::infinity(), {{"sign", "plus"}});
    e.gauge("iz_inf", "h", -std::numeric_limits<double>::infinity(), {{"sign", "minus"}});
    e.gauge("iz_tenth", "h", 0.1);
    auto t = e.text();
    EXPECT_NE(t.find("\niz_big_total 18446744073709551615\n"), std::string::npos) << t;
    EXPECT_NE(t.find("\niz_half 0.5\n"), std::string::npos) << t;
    EXPECT_NE(t.find("\niz_nan NaN\n"), std::string::npos) << t;
    EXPECT_NE(t.find("\niz_inf{sign=\"plus\"} +Inf\n"), std::string::npos) << t;
    EXPECT_NE(t.find("\niz_inf{sign=\"minus\"} -Inf\n"), std::string::npos) << t;
    EXPECT_NE(t.find("\niz_tenth 0.1\n"), std::string::npos) << t;
}

TEST(Exposition, ASecondSampleWithTheSameLabelsIsDropped) {
    Exposition e;
    e.counter("iz_c_total", "h", uint64_t{1}, {{"server", "a"}});
    e.counter("iz_c_total", "h", uint64_t{2}, {{"server", "a"}});
    e.counter("iz_c_total", "h", uint64_t{3}, {{"server", "b"}});
    EXPECT_EQ(e.text(), "# HELP iz_c_total h\n# TYPE iz_c_total counter\niz_c_total{server=\"a\"} 1\niz_c_total{server=\"b\"} 3\n");
}

TEST(Exposition, NamesAgainstTheRulesAreRefused) {
    Exposition e;
    EXPECT_THROW(e.counter("iz_sent_bytes", "h", uint64_t{1}), std::invalid_argument);  // a counter without _total
    EXPECT_THROW(e.gauge("iz_sent_total", "h", uint64_t{1}), std::invalid_argument);    // a gauge with it
    EXPECT_THROW(e.gauge("9lives", "h", uint64_t{1}), std::invalid_argument);
    EXPECT_THROW(e.gauge("iz-dash", "h", uint64_t{1}), std::invalid_argument);
    EXPECT_THROW(e.gauge("iz_x", "h", uint64_t{1}, {{"__reserved", "v"}}), std::invalid_argument);
    EXPECT_THROW(e.gauge("iz_x", "h", uint64_t{1}, {{"has space", "v"}}), std::invalid_argument);
    e.gauge("iz_y", "h", uint64_t{1});
    EXPECT_THROW(e.counter("iz_y", "h", uint64_t{1}), std::invalid_argument);
    EXPECT_TRUE(valid_metric_name("iz:recorded_rule"));
    EXPECT_FALSE(valid_label_name("a:b"));
}

TEST(Exposition, AnEmptyPageIsEmpty) { EXPECT_EQ(Exposition{}.text(), ""); }

}  // namespace
}  // namespace iz::metrics
