#pragma once
// The name a conflict copy takes: `NAME.conflict-<who>-<YYYYMMDDTHHMMSSZ>`
// beside NAME, the same wherever a copy is made (the server's conflict
// resolver, a receive-only agent keeping its user's version), so that a
// user finds every copy by one pattern.
#include <cstdint>
#include <string>

namespace iz {

// `time_ns` (since the epoch) as YYYYMMDDTHHMMSSZ, in UTC.
std::string utc_stamp(int64_t time_ns);

// The copy's path for `path` kept by or for `who` at `time_ns`. A name
// longer than a directory entry takes is shortened before the suffix (a
// `who` of at most 128 bytes always fits).
std::string conflict_copy_name(const std::string& path, const std::string& who, int64_t time_ns);

}  // namespace iz
