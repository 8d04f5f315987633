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
#include <cstdint>
#include <filesystem>
#include <string>

#include "common/error.hpp"
#include "unique_fd.hpp"

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

    std::filesystem::path dir_;
    UniqueFd progress_fd_;
    std::string boot_id_;
    uint64_t durable_ = 0;
    uint64_t progress_ = 0;
    bool progress_written_ = false;  // since the last make_durable()
    bool syncing_ = false;           // between begin_sync() and its end
    bool unclean_at_open_ = false;
};

}  // namespace iz::replicator
