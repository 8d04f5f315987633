#pragma once
// Which exchanges (renameat2 RENAME_EXCHANGE) this (agent, fileset) began
// since its last commit, and what their two names held before, so that a
// replay finds them done.
//
// An exchange is its own inverse and both names exist before and after it:
// neither the tree nor the record can tell a replayed exchange (operations
// after the durable LSN are applied again after a kill or a crash,
// applied_state.hpp) whether it already ran, and running it again swaps the
// two back. The record's handles are the source's, which the server has no
// map to; so the applier notes, durably and before exchanging, which
// objects the two names hold here (their file handles: inode and
// generation, never reused), under the record's LSN. A replay that finds a
// note for its LSN and names knows the exchange was begun.
//
// Promises:
//  - add() returns once the note is on disk (written with fsync, renamed
//    into place).
//  - Notes at or below the durable LSN, which is never replayed, are
//    dropped when the next one is added; there are only ever a few.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/file_handle.hpp"

namespace iz::replicator {

struct ExchangeNote {
    uint64_t lsn = 0;
    std::string path, target;
    // object_identity() of each name before the exchange.
    std::string at_path, at_target;
};

class ExchangeNotes {
public:
    // Reads `state_dir`/exchanges (none yet: no notes).
    static Result<ExchangeNotes> open(const std::filesystem::path& state_dir);

    // The note made for the exchange of `path` and `target` at `lsn`.
    std::optional<ExchangeNote> find(uint64_t lsn, const std::string& path, const std::string& target) const;
    Status add(ExchangeNote note, uint64_t durable_lsn);

private:
    std::filesystem::path file_;
    std::vector<ExchangeNote> notes_;
};

// What the entry `name` in `dirfd` (at `path`, for messages) is, as a
// string that stays the same across renames and is never another entry's:
// its file handle, or its inode number where the filesystem gives no
// handles. "-" when nothing is there.
Result<std::string> object_identity(int dirfd, const std::string& name, const std::string& path);
// The identity of an entry with a file handle: "h<type>:<handle bytes in
// hex>". Notes on disk hold it, so its form never changes.
std::string identity_of(const FileHandle& handle);

}  // namespace iz::replicator
