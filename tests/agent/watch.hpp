#pragma once
// One real izwatch daemon for a test: its own run directory (IZ_RUN_DIR, so
// the control socket never meets another test's or a real install's), its
// own journal and state directories, and a destructor that stops it, or
// kills it when it does not stop, whatever the test did.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/process.hpp"

namespace iz::test::agent {

namespace fs = std::filesystem;
using nlohmann::json;

// A fresh directory under the system temp dir, removed with what it holds.
class TempDir {
public:
    explicit TempDir(const std::string& tag);
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

class Watch {
public:
    // `dir` is what gets watched; `work` holds run/, journal/ and state/.
    // Watches that share a run directory see each other (as on one machine).
    Watch(fs::path dir, const fs::path& work, const fs::path& run_dir = {});
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

    // Runs izwatch with this watch's IZ_RUN_DIR.
    ProcessResult izwatch(const std::vector<std::string>& args,
                          std::chrono::seconds timeout = std::chrono::seconds(60)) const;
    // izwatch start DIR --journal J --state-dir S `extra...`; on success the
    // daemon's pid is remembered for the cleanup.
    ProcessResult start(const std::vector<std::string>& extra = {});
    ProcessResult sync() const;
    ProcessResult stop();
    // izwatch status --json DIR, parsed (null on failure).
    json status() const;

    // Every record in the journal, as `izlog -o json` prints them.
    std::vector<json> journal() const;

    pid_t pid() const { return pid_; }
    const fs::path& dir() const { return dir_; }
    const fs::path& journal_dir() const { return journal_; }
    const fs::path& state_dir() const { return state_; }
    const fs::path& run_dir() const { return run_; }
    std::vector<std::string> env() const { return {"IZ_RUN_DIR=" + run_.string()}; }

    // Ends the daemon by its pid (SIGCONT first, in case a test stopped it).
    void kill_daemon();

private:
    fs::path dir_, run_, journal_, state_;
    pid_t pid_ = 0;
};

// True while `pid` is a live (not zombie) izwatch process.
bool izwatch_alive(pid_t pid);

// izlog over a journal directory: one JSON object per record.
std::vector<json> read_journal(const fs::path& journal_dir);

// Agent events (start, stop, rescan, overflow) are not changes of the tree.
bool is_mutation(const json& record);
// The records after LSN `after` that describe changes of the tree.
std::vector<json> mutations_after(const std::vector<json>& records, uint64_t after);
// "op path" or "op path -> target": what a failure message should show.
std::string describe(const json& record);
std::vector<std::string> describe(const std::vector<json>& records);
// The records whose op is `op` (and path is `path`, when given).
std::vector<json> with_op(const std::vector<json>& records, const std::string& op, const std::string& path = "");
// A write record that names the whole file (its ranges are unknown).
bool names_whole_file(const json& write_record);
// A write record's ranges as (offset, length) pairs.
std::vector<std::pair<uint64_t, uint64_t>> ranges_of(const json& write_record);

}  // namespace iz::test::agent
