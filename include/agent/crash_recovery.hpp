#pragma once
// After a crash (kill -9, power loss) the persisted tree state can lag the
// journal: entries journaled as created after the last save are unknown to
// it. If they are gone by the next start, the restart's rescan would not
// notice, and the replicas would keep them. This adds them back, as the
// journal last described them, so the rescan journals their removal.
#include <filesystem>

#include "agent/tree_state.hpp"
#include "common/error.hpp"

namespace iz::agent {

// When the journal's last record is not a clean stop: every path that the
// records since the last start created (or renamed or linked into place),
// that `persisted` lacks and that no longer exists beneath `root_fd`, is
// added to `persisted` (a directory if a record made it one or names
// something beneath it). Returns how many were added.
Result<size_t> recover_unsaved_entries(const std::filesystem::path& journal_dir, int root_fd, Tree& persisted);

}  // namespace iz::agent
