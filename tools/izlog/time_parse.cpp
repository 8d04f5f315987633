#include "izlog/time_parse.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <string_view>

namespace iz::izlog {

namespace {

constexpr int64_t kSec = 1'000'000'000;

Error bad_time(const std::string& text) {
    return make_error(fmt::format("failed to parse time '{}' (try '2026-11-25 10:00:00', '-1h', 'today' or '@1764064800')", text));
}

int64_t unit_ns(std::string_view u) {
    if (u == "ns" || u == "nsec") return 1;
    if (u == "us" || u == "usec") return 1000;
    if (u == "ms" || u == "msec") return 1'000'000;
    if (u == "" || u == "s" || u == "sec" || u == "second" || u == "seconds") return kSec;
    if (u == "m" || u == "min" || u == "minute" || u == "minutes") return 60 * kSec;
    if (u == "h" || u == "hr" || u == "hour" || u == "hours") return 3600 * kSec;
    if (u == "d" || u == "day" || u == "days") return 86400 * kSec;
    if (u == "w" || u == "week" || u == "weeks") return 7 * 86400 * kSec;
    return -1;
}

// "1h30min", "2d", "45" (seconds).
bool parse_span(std::string_view s, int64_t& out) {
    out = 0;
    if (s.empty()) return false;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && s[i] == ' ') ++i;
        size_t start = i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
        if (i == start) return false;
        int64_t n = std::stoll(std::string(s.substr(start, i - start)));
        size_t ustart = i;
        while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
        int64_t mult = unit_ns(s.substr(ustart, i - ustart));
        if (mult < 0) return false;
        out += n * mult;
    }
    return true;
}

int64_t local_midnight(int64_t now_ns, int day_offset) {
    time_t secs = static_cast<time_t>(now_ns / kSec);
    struct tm tm{};
    localtime_r(&secs, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_mday += day_offset;
    tm.tm_isdst = -1;
    return static_cast<int64_t>(mktime(&tm)) * kSec;
}

}  // namespace

int64_t wall_clock_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * kSec + ts.tv_nsec;
}

Result<int64_t> parse_time(const std::string& text, int64_t now_ns) {
    std::string_view s = text;
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    if (s.empty()) return fail(bad_time(text));
    if (s == "now") return now_ns;
    if (s == "today") return local_midnight(now_ns, 0);
    if (s == "yesterday") return local_midnight(now_ns, -1);
    if (s == "tomorrow") return local_midnight(now_ns, 1);
    if (s.front() == '@') {
        double secs = 0;
        char extra = 0;
        if (std::sscanf(std::string(s.substr(1)).c_str(), "%lf%c", &secs, &extra) != 1) return fail(bad_time(text));
        return static_cast<int64_t>(secs * 1e9);
    }
    if (s.front() == '-' || s.front() == '+') {
        int64_t span = 0;
        if (!parse_span(s.substr(1), span)) return fail(bad_time(text));
        return s.front() == '-' ? now_ns - span : now_ns + span;
    }
    if (s.size() > 4 && s.substr(s.size() - 4) == " ago") {
        int64_t span = 0;
        if (!parse_span(s.substr(0, s.size() - 4), span)) return fail(bad_time(text));
        return now_ns - span;
    }

    bool utc = false;
    if (s.back() == 'Z') {
        utc = true;
        s.remove_suffix(1);
    } else if (s.size() > 4 && s.substr(s.size() - 4) == " UTC") {
        utc = true;
        s.remove_suffix(4);
    }
    struct tm tm{};
    int frac_digits = 0;
    int64_t frac = 0;
    std::string str(s);
    int consumed = 0;
    if (std::sscanf(str.c_str(), "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &consumed) != 3 || consumed != 10)
        return fail(bad_time(text));
    size_t i = 10;
    if (i < str.size()) {
        if (str[i] != ' ' && str[i] != 'T') return fail(bad_time(text));
        ++i;
        int n = 0;
        if (std::sscanf(str.c_str() + i, "%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &n) != 2 || n != 5) return fail(bad_time(text));
        i += 5;
        if (i < str.size() && str[i] == ':') {
            if (std::sscanf(str.c_str() + i + 1, "%2d%n", &tm.tm_sec, &n) != 1 || n != 2) return fail(bad_time(text));
            i += 3;
            if (i < str.size() && str[i] == '.') {
                ++i;
                while (i < str.size() && std::isdigit(static_cast<unsigned char>(str[i]))) {
                    if (frac_digits < 9) {
                        frac = frac * 10 + (str[i] - '0');
                        ++frac_digits;
                    }
                    ++i;
                }
            }
        }
        if (i != str.size()) return fail(bad_time(text));
    }
    for (int d = frac_digits; d < 9; ++d) frac *= 10;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return fail(bad_time(text));
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;
    const struct tm asked = tm;
    time_t secs = utc ? timegm(&tm) : mktime(&tm);
    // mktime quietly turns "11-31" into "12-01"; a date that moved did not exist.
    if (tm.tm_mday != asked.tm_mday || tm.tm_mon != asked.tm_mon || tm.tm_year != asked.tm_year)
        return fail(bad_time(text));
    return static_cast<int64_t>(secs) * kSec + frac;
}

}  // namespace iz::izlog
