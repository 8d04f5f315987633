#pragma once
// How far one (agent, fileset) has been applied on this server.
//
// Two numbers: the durable LSN (everything up to it is fsynced; stored with
// write_file_durably, only ever moves forward) and the progress LSN (applied,
// maybe not yet durable; a plain write after every operation, no fsync).
// After the server process dies, the page cache still holds both the
// applied changes and the progress, so the agent resumes exactly after the
// last applied operation. After a machine crash (a different boot id) only
// the durable LSN is trusted and the agent replays from there, which apply
// makes harmless.
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

    // Records that `lsn` was applied (not yet durable).
    Status note_progress(uint64_t lsn);
    // Records that everything up to `lsn` is durable. Never goes backwards.
    Status make_durable(uint64_t lsn);

private:
    std::filesystem::path dir_;
    UniqueFd progress_fd_;
    std::string boot_id_;
    uint64_t durable_ = 0;
    uint64_t progress_ = 0;
    bool unclean_at_open_ = false;
};

}  // namespace iz::replicator
