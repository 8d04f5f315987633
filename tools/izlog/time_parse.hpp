#pragma once
// journalctl's time syntax for --since/--until: absolute local times
// ("2026-11-25 10:00:00", "2026-11-25", optional fraction and trailing Z or
// UTC), relative ones ("-1h", "+5min", "-2d3h"), "now", "today",
// "yesterday", "tomorrow" and "@<epoch seconds>".
#include <cstdint>
#include <string>

#include "common/error.hpp"

namespace iz::izlog {

// Nanoseconds since the epoch; `now_ns` anchors the relative forms.
Result<int64_t> parse_time(const std::string& text, int64_t now_ns);

int64_t wall_clock_ns();

}  // namespace iz::izlog
