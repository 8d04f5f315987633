#pragma once
// Receive-only mode: the changes made in the directory by anyone but the
// receiver are journaled like any (izlog shows them, without an origin)
// but never sent. This follows the journal and reports them: a warning in
// the log for each (the first kMaxWarned, then every kWarnEvery-th), and
// for `izwatch status` how many there were and the paths changed last.
//
// They are kept, not reverted: a user's edit is never destroyed silently
// (Syncthing's receive-only folders do the same). A forward the server
// sends later for such a path replaces it, as in send-receive mode, but
// the receiver first keeps the local version aside as a conflict copy
// (holds() tells it which paths hold one). Thread-safe: the daemon's loop
// polls, the receiver's thread takes.
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
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
    uint64_t count() const {
        std::lock_guard lock(mu_);
        return count_;
    }
    // The latest changed paths, oldest first, each once.
    std::vector<std::string> paths() const {
        std::lock_guard lock(mu_);
        return {paths_.begin(), paths_.end()};
    }
    // Whether `path` holds a local change no forward has set since (what
    // is journaled by now: it polls first).
    bool holds(const std::string& path);
    // The local version at `path` was kept aside: the forward about to
    // replace it (and its later parts) find nothing to keep.
    void forget(const std::string& path);
    // The directory was made equal to the fileset (`izwatch revert`): what
    // was journaled through now is no local change any more.
    Status clear();

    // How many paths are held now (tests; it shrinks as they go).
    size_t held() const {
        std::lock_guard lock(mu_);
        return held_.size();
    }

private:
    Status poll_locked();
    void hold(const journal::Record& r);
    mutable std::mutex mu_;
    std::set<std::string> held_;  // paths changed here since a forward last set them
    std::filesystem::path dir_;
    uint64_t after_;
    std::unique_ptr<journal::Reader> reader_;
    uint64_t count_ = 0;
    std::deque<std::string> paths_;
};

}  // namespace iz::agent
