#pragma once
// Showing records the way journalctl shows entries: a window of the journal
// (cursor, --since/--until, -n), oldest or newest first, then, with -f,
// whatever is journaled next until SIGINT/SIGTERM.
#include "izlog/options.hpp"
#include "izlog/output.hpp"
#include "journal/reader.hpp"

namespace iz::izlog {

// Returns the exit code: 0, or 1 after one "izlog: ..." line on stderr when
// the journal could not be read (damage is reported, never skipped).
int show_records(journal::Reader& reader, const Options& options, Output& out);

// --stats over the same window and filters.
int show_stats(journal::Reader& reader, const Options& options);

}  // namespace iz::izlog
