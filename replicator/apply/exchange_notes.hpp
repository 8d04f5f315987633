#pragma once
// Which exchanges (renameat2 RENAME_EXCHANGE), renames and removals this
// (agent, fileset) began since its last commit, and what their names held
// before, so that a replay finds them done.
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
// Renames and removals (unlink, rmdir) are noted too, with what their name
// held before they ran. Replayed after later operations gave that name to
// another entry, a rename moves that entry instead ("rename a t; rename b
// a; rename t b", two names swapped through a temporary one, swaps them
// back; "rename a b; create a" puts the new a over b) and a removal removes
// it ("unlink a; rename b a" loses b). A replay that finds its name holding
// another entry than the note says, one made before the sender resumed
// (its birth time is older than the resumption: a restart of the server,
// or a new connection after a dropped one), knows the operation ran and
// leaves the name alone. An entry made since is the replay's own doing ("create a; rename a b" replayed makes a again, and must move it),
// and the operation runs as it did before notes were kept.
// A link is noted as a rename is (what its first name held), and with what
// its second name held, which it replaces: a kill between the note and
// making room at the second name leaves that entry there, which the replay
// must replace rather than take for one a later operation put there.
// Renames and removals are many and an exchange is rare: their notes are
// appended without fsync (a killed process leaves them in the page cache,
// as it leaves what they did; after a machine crash a lost note makes the
// replay run the operation as before notes were kept).
//
// Promises:
//  - add() returns once the note is on disk (written with fsync, renamed
//    into place), with every note added before it.
//  - add_quick() returns once the note is written (no fsync).
//  - Notes at or below the durable LSN, which is never replayed, are
//    dropped when the next exchange is added or the next commit is made.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/file_handle.hpp"
#include "common/unique_fd.hpp"

namespace iz::replicator {

struct ExchangeNote {
    uint64_t lsn = 0;
    std::string path, target;
    // object_identity() of each name before the exchange ("-" for the
    // target of a rename or removal, which is not looked at).
    std::string at_path, at_target;
    // For a link: object_identity() of what its second name held when it
    // was noted ("-": nothing), which making room there removes. Found
    // there still on a replay, the link was killed between its note and
    // making room, and runs. Empty in a note written before this was kept
    // (unknown), and for every other operation.
    std::string displaced;
};

class ExchangeNotes {
public:
    // Reads `state_dir`/exchanges (none yet: no notes).
    static Result<ExchangeNotes> open(const std::filesystem::path& state_dir);

    // The note made for the operation on `path` and `target` ("" for a
    // removal) at `lsn`.
    std::optional<ExchangeNote> find(uint64_t lsn, const std::string& path, const std::string& target) const;
    // The objects (identities) that noted operations after `lsn` left at
    // `name`: a rename's or link's source object at its target, each
    // object of an exchange at the other's name.
    std::vector<std::string> placed_after(uint64_t lsn, const std::string& name) const;
    // Notes an exchange.
    Status add(ExchangeNote note, uint64_t durable_lsn);
    // Notes a rename or a removal.
    Status add_quick(ExchangeNote note, uint64_t durable_lsn);
    // Everything up to `durable_lsn` is durable: its notes may go.
    Status committed(uint64_t durable_lsn);

private:
    // Writes every note to the file: durably, or only into the page cache.
    Status rewrite(bool durably);

    std::filesystem::path file_;
    std::map<uint64_t, ExchangeNote> notes_;  // by LSN
    // Appends rename notes; reopened whenever the file is replaced.
    UniqueFd append_fd_;
    size_t lines_in_file_ = 0;
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
