#pragma once
// Verification inside the agent: `izwatch verify` requests (each on a
// thread of its own, answered on its control connection) and the scrub, a
// thread that verifies and repairs every server's replica every
// scrub_interval at idle I/O priority and a bounded read rate. One
// verification runs at a time. Any repair is a bug somewhere upstream: the
// scrub logs each at warning level with its paths, and status() says when
// it last ran and what it found.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent_status.hpp"
#include "agent/verifier.hpp"
#include "common/unique_fd.hpp"
#include "replicator/fs/tree_hash.hpp"
#include "replicator/ship/shipper.hpp"

namespace iz::agent {

struct VerifySetup {
    int root_fd = -1;
    std::filesystem::path journal_dir;
    std::filesystem::path state_dir;  // keeps the source's content hashes
    std::vector<std::string> excludes;
    std::vector<std::string> servers;  // endpoints, in the shipper's order
    replicator::Shipper* shipper = nullptr;
    VerifyHost* host = nullptr;
    std::chrono::seconds scrub_interval{0};
    uint64_t scrub_bytes_per_s = 0;
};

class VerifyService {
public:
    explicit VerifyService(VerifySetup setup);
    ~VerifyService();

    // Starts the scrub (when it has an interval).
    void start();
    // Control request {"cmd": "verify", "server": S, "repair": bool,
    // "timeout_s": N}: answered on `conn`, which it then closes.
    void serve(UniqueFd conn, const nlohmann::json& request);
    // The scrub's schedule and last result.
    AgentStatus::Scrub status() const;
    // Cancels what runs and waits for it (the shipper must be stopping, so
    // that nothing waits for a server).
    void stop();

private:
    std::vector<ServerVerdict> run(const std::vector<size_t>& servers, VerifyOptions o);
    void scrub_loop();
    std::optional<std::chrono::system_clock::time_point> load_last_scrub() const;
    void save_last_scrub(std::chrono::system_clock::time_point t) const;
    void reap();

    VerifySetup s_;
    replicator::tree::HashCache cache_;
    std::atomic<bool> cancel_{false};
    std::mutex run_mu_;  // one verification at a time

    mutable std::mutex mu_;
    std::condition_variable cv_;
    struct Request {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;
    };
    std::vector<Request> requests_;
    std::thread scrub_;
    // The scrub's runs since start (all but interval_s, which is s_'s).
    AgentStatus::Scrub scrubbed_;
};

}  // namespace iz::agent
