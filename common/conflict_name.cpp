#include "common/conflict_name.hpp"

#include <fmt/format.h>

#include <ctime>

namespace iz {

std::string utc_stamp(int64_t time_ns) {
    std::time_t secs = static_cast<std::time_t>(time_ns / 1'000'000'000);
    struct tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    return buf;
}

std::string conflict_copy_name(const std::string& path, const std::string& who, int64_t time_ns) {
    std::string suffix = fmt::format(".conflict-{}-{}", who, utc_stamp(time_ns));
    auto slash = path.rfind('/');
    std::string parent = slash == std::string::npos ? "" : path.substr(0, slash + 1);
    std::string leaf = slash == std::string::npos ? path : path.substr(slash + 1);
    // An entry name is at most 255 bytes: the suffix always fits, the name
    // is cut to make room.
    if (leaf.size() + suffix.size() > 255) leaf.resize(255 - suffix.size());
    return parent + leaf + suffix;
}

}  // namespace iz
