#pragma once
// How izlog prints one record, in each of its output modes.
#include <string>

#include "common/error.hpp"
#include "journal/record.hpp"

namespace iz::izlog {

enum class Format { short_, short_iso, json, json_pretty, verbose, cat };

Result<Format> parse_format(const std::string& name);

// One rendered entry, ending in a newline. `color` adds ANSI colour by op.
std::string render(const journal::Record& r, Format format, bool color);

// "2026-11-25T10:00:00.123456Z"
std::string rfc3339_utc(int64_t time_ns);

}  // namespace iz::izlog
