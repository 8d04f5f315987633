#pragma once
// How far one (agent, fileset) has been applied on this server.
//
// Two numbers: the durable LSN (everything up to it is fsynced; stored with
// write_file_durably, only ever moves forward) and the progress LSN (applied,
// maybe not yet durable; a plain write, no fsync). Progress is written once
// per commit interval, by the first operation applied after a commit, not
// after every operation: a write per operation cost as much as applying a
// chmod. After the server process dies, the page cache still holds the
// applied changes and that progress line, so the agent resumes after the
// first operation of the interrupted interval and the rest are replayed;
// the line being past the durable LSN marks the stop unclean, and replay in
// that state is harmless (apply.hpp). After a machine crash (a different boot
// id) only the durable LSN is trusted and the agent replays from there.
//
// The same line also says how far operations may have been applied at all
// (the high-water mark), announced ahead of the operations in steps of
// kAnnounceAhead so that it costs one write per step. A replay runs
// everything up to it again; until a commit covers it, what the replay
// finds changed is the server's own work (the file memory may have lost
// records of it), not a change behind its back. The progress LSN alone does
// not bound that: while a commit's sync runs, progress stays at the
// commit's LSN however many operations follow, and under a load of writes
// a syncfs can take seconds.
#include <cstdint>
#include <filesystem>
#include <string>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace iz::replicator {

class AppliedState {
public:
    // Creates `dir` if needed.
    static Result<AppliedState> open(const std::filesystem::path& dir);

    uint64_t durable_lsn() const { return durable_; }
    // Where the agent should resume (>= durable_lsn()).
    uint64_t resume_lsn() const { return std::max(durable_, progress_); }

    // The last run applied operations it never made durable (it was killed
    // between commits): files may hold their effects while the file memory,
    // saved at commits, does not know them.
    bool unclean_at_open() const { return unclean_at_open_; }
    // The last run may have applied operations up to this LSN (0: none past
    // the durable LSN).
    uint64_t applied_at_most_at_open() const { return high_at_open_; }

    // Before applying an operation of `lsn`: makes the line say operations
    // up to at least `lsn` may be applied (a write per kAnnounceAhead LSNs).
    Status announce(uint64_t lsn);
    static constexpr uint64_t kAnnounceAhead = 256;

    // Records that `lsn` was applied (not yet durable). Writes the progress
    // file only for the first such LSN since the last make_durable().
    Status note_progress(uint64_t lsn);
    // Whether the next note_progress() writes the progress file: whatever
    // operations up to it left waiting must reach the file system first.
    bool progress_due() const { return !progress_written_ && !syncing_; }
    // Records that everything up to `lsn` is durable. Never goes backwards.
    Status make_durable(uint64_t lsn);

    // A commit of `lsn` made durable on another thread while operations go
    // on being applied: progress is written as `lsn` now and then left
    // alone until make_durable() or sync_failed(). Killed meanwhile, the
    // server resumes after `lsn` and replays what followed in the unclean
    // state, whatever the file memory held back of it (file_memory.hpp).
    Status begin_sync(uint64_t lsn);
    Status sync_failed();

private:
    Status write_progress();
    Status write_line(uint64_t progress);

    std::filesystem::path dir_;
    UniqueFd progress_fd_;
    std::string boot_id_;
    uint64_t durable_ = 0;
    uint64_t progress_ = 0;
    uint64_t written_progress_ = 0;  // what the line says
    uint64_t high_ = 0;              // announced: what the line says
    uint64_t high_at_open_ = 0;
    uint64_t seen_ = 0;              // the highest LSN announced for an operation
    bool progress_written_ = false;  // since the last make_durable()
    bool syncing_ = false;           // between begin_sync() and its end
    bool unclean_at_open_ = false;
};

}  // namespace iz::replicator
