#pragma once
// After a crash (kill -9, power loss) the persisted tree state lags the
// journal: it is saved every few seconds, and what was journaled after the
// last save is unknown to it. The restart compares the directory with what
// the servers will hold once they have applied the whole journal, so the
// records journaled after the save are replayed onto it first: otherwise
// entries journaled and gone by the next start would stay on the replicas,
// and entries journaled under another name would be removed by the wrong
// name and type.
#include <cstdint>
#include <filesystem>
#include <optional>

#include "agent/tree_state.hpp"
#include "common/error.hpp"

namespace iz::agent {

// Applies the namespace, attribute and content records after LSN
// `after_lsn` in `journal_dir` to `tree` (which describes the journal up to
// that LSN), as a replica applies them: entries made, linked, renamed and
// removed with their subtrees, attributes and xattrs set on every name of
// the object, sizes and mtimes as written. A file whose content a record
// changed without saying its size or mtime is left with kUnknownMtime, so
// that the comparison sends its content. Returns how many records changed
// the tree.
Result<size_t> replay_journal(const std::filesystem::path& journal_dir, uint64_t after_lsn, Tree& tree);

// The paths (and targets) of the records after `after_lsn` that were
// applied from a server (those with an origin).
Result<std::vector<std::string>> received_paths_after(const std::filesystem::path& journal_dir, uint64_t after_lsn);

// The time the journal's last start was journaled (nothing when no start
// is).
Result<std::optional<int64_t>> last_run_started(const std::filesystem::path& journal_dir);

// For a state saved without its journal position (an older agent): when
// the journal's last record is not a clean stop, every path that the
// records since the last start created (or renamed or linked into place),
// that `persisted` lacks and that no longer exists beneath `root_fd`, is
// added to `persisted` (a directory if a record made it one or names
// something beneath it). Returns how many were added.
Result<size_t> recover_unsaved_entries(const std::filesystem::path& journal_dir, int root_fd, Tree& persisted);

}  // namespace iz::agent
