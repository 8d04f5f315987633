#pragma once
// The end-to-end cast: an agent host and server hosts, each in its own
// network namespace, running the real izwatch and izreplicate binaries on
// loop-mounted ext4 images. Destructors stop every process, then unmount and
// delete namespaces, even when a test fails half-way.
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/netns.hpp"
#include "support/process.hpp"
#include "support/scratch_fs.hpp"
#include "support/tree.hpp"

namespace iz::test::e2e {

// A host a fixture cannot do without: its set-up error ends the test (the
// fixture's SetUp throws; gtest reports the message).
template <class T>
std::unique_ptr<T> must(Result<std::unique_ptr<T>> r) {
    if (!r) throw std::runtime_error(r.error().message);
    return std::move(*r);
}

inline constexpr uint16_t kServerPort = 7411;

// One izreplicate host.
class ServerHost {
public:
    ServerHost(const Netns& ns, std::string address, std::filesystem::path key, const std::string& tag);
    ~ServerHost();

    // `extra`: more izreplicate options, kept for every later start.
    void start(std::vector<std::string> extra = {});
    // izreplicate runs under this command from the next start (e.g.
    // unshare, for a server in a user namespace of its own).
    void run_under(std::vector<std::string> prefix) { prefix_ = std::move(prefix); }
    // Another build of the server from the next start (a test-only twin).
    void use_program(std::string name) { program_ = std::move(name); }
    void kill9();
    bool running();
    // SIGSTOP / SIGCONT: a server that stops reading.
    void pause();
    void resume();
    // SIGHUP: izreplicate reads its agents file (or the older two) again.
    void reload();
    std::string endpoint() const;
    // The replica of a fileset (per-fileset mode).
    std::filesystem::path replica(const std::string& fileset) const;
    std::filesystem::path root() const { return fs_->mount_point(); }
    std::string log() const;

private:
    const Netns& ns_;
    std::string address_;
    std::filesystem::path key_;
    std::unique_ptr<ScratchFs> fs_;
    std::filesystem::path log_file_;
    std::unique_ptr<ChildProcess> proc_;
    std::vector<std::string> extra_;
    std::vector<std::string> prefix_;
    std::string program_ = "izreplicate";
};

// The agent host: a source filesystem with DIR = <mount>/data.
class AgentHost {
public:
    // The watched directory lives on a fresh image of `type`.
    AgentHost(const Netns& ns, std::filesystem::path key, const std::string& tag, FsType type = FsType::ext4);
    ~AgentHost();

    const std::filesystem::path& dir() const { return dir_; }
    // izwatch start DIR --server ... (daemonised, in the agent's namespace).
    ProcessResult start(const std::vector<std::string>& endpoints, const std::vector<std::string>& extra = {});
    // Another build of the agent for the next start (a test-only twin).
    void use_program(std::string name) { program_ = std::move(name); }
    ProcessResult sync(int timeout_s = 60);
    // izwatch SUBCOMMAND DIR ARGS... (verify, sync --verify, ...).
    ProcessResult izwatch(const std::string& subcommand, const std::vector<std::string>& args = {}, int timeout_s = 120);
    ProcessResult stop();
    nlohmann::json status();
    void kill9();
    // SIGSTOP / SIGCONT: the kernel queue fills while the agent reads
    // nothing, so events merge and entries move before they are read.
    void pause();
    void resume();
    std::string log() const;
    std::filesystem::path journal() const { return journal_.empty() ? work_.path() / "journal" : journal_; }
    std::filesystem::path state_dir() const { return work_.path() / "state"; }
    // The journal somewhere else (on a filesystem of its own), from the next start.
    void use_journal(std::filesystem::path dir) { journal_ = std::move(dir); }
    // Deletes the journal and the agent's state, as a lost disk would (the
    // agent must be stopped).
    void forget_journal_and_state();

private:
    std::vector<std::string> env() const;

    const Netns& ns_;
    std::filesystem::path key_;
    std::unique_ptr<ScratchFs> fs_;
    TempDir work_;
    std::filesystem::path dir_;
    std::filesystem::path journal_;
    bool started_ = false;
    int paused_pid_ = 0;
    // Every agent this host started: one still running at the end (a
    // restart the test lost track of) is killed, never left behind.
    std::vector<int> pids_;
    std::string program_ = "izwatch";
};

// Lines of `a` missing from `b` and the reverse, for a readable failure.
std::string manifest_diff(const std::string& a, const std::string& b);

// A shared key for a test, in a file readable by root only.
std::filesystem::path make_key(const TempDir& where);

// Every record of the journal in `dir`, as izlog prints it in JSON.
std::vector<nlohmann::json> journal_records(const std::filesystem::path& dir);

}  // namespace iz::test::e2e
