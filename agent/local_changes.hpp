#pragma once
// Receive-only mode: the changes made in the directory by anyone but the
// receiver are journaled like any (izlog shows them, without an origin)
// but never sent. This follows the journal and reports them: a warning in
// the log for each (the first kMaxWarned, then every kWarnEvery-th), and
// for `izwatch status` how many there were and the paths changed last.
//
// They are kept, not reverted: a user's edit is never destroyed silently
// (Syncthing's receive-only folders do the same). A forward the server
// sends later for such a path replaces it, as in send-receive mode.
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "journal/reader.hpp"

namespace iz::agent {

class LocalChanges {
public:
    static constexpr size_t kMaxWarned = 20;
    static constexpr uint64_t kWarnEvery = 100;
    static constexpr size_t kPathsKept = 50;

    // Follows `journal_dir` from the record after `after_lsn`.
    LocalChanges(std::filesystem::path journal_dir, uint64_t after_lsn)
        : dir_(std::move(journal_dir)), after_(after_lsn) {}

    // Reads what was journaled since the last call (the daemon's loop).
    Status poll();
    uint64_t count() const { return count_; }
    // The latest changed paths, oldest first, each once.
    std::vector<std::string> paths() const { return {paths_.begin(), paths_.end()}; }

private:
    std::filesystem::path dir_;
    uint64_t after_;
    std::unique_ptr<journal::Reader> reader_;
    uint64_t count_ = 0;
    std::deque<std::string> paths_;
};

}  // namespace iz::agent
