#pragma once
// One watched directory: fanotify (+ eBPF) capture into the journal, a
// control socket for stop/status/sync, and the tree state persisted for the
// next start.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "replicator/ship/shipper.hpp"

namespace iz::agent {

struct WatchOptions {
    std::string dir;  // absolute, canonical
    std::filesystem::path state_dir;
    std::filesystem::path journal_dir;
    bool no_bpf = false;
    // The fanotify queue's length in events (0: the system's
    // fs.fanotify.max_queued_events, 16384 unless changed). At about
    // 150 bytes of kernel memory each, the default holds about a second of
    // the busiest churn for some 40 MiB at most.
    uint32_t queue_events = 262144;
    // Journal segments are this large, their space reserved when they are
    // made (so a full disk shows when a segment begins, never mid-record).
    uint64_t segment_bytes = 64ull << 20;
    std::vector<std::string> excludes;
    // What the agent gives the shipper: the servers, the credentials, its
    // names on them (the fileset and this agent, both the same across
    // restarts so that shipping resumes) and the compression. The daemon
    // adds the journal, the watched root and its callbacks. No servers:
    // nothing is shipped.
    replicator::ShipperOptions shipping;
    // "send-only" (the default for now: a mirror that takes nothing back)
    // or "send-receive" (shared filesets: the other agents' changes of the
    // fileset are applied here; DESIGN, "Shared filesets").
    std::string mode = "send-only";
    // Journal segments stay at least this long, and until every server has
    // acknowledged past them (with no servers, only the history counts).
    std::chrono::seconds history{std::chrono::hours(24 * 7)};
    // The scrub: every this long (0: never), the replicas are verified and
    // repaired (verifier.hpp) at idle I/O priority, reading at most
    // scrub_bytes_per_s of the source's content per second.
    std::chrono::seconds scrub_interval{std::chrono::hours(24)};
    uint64_t scrub_bytes_per_s = 32ull << 20;
    // "ADDR:PORT" to serve Prometheus metrics on (agent_metrics.hpp); "" for none.
    std::string metrics;
};

class Daemon {
public:
    // Arms capture and journals the baseline (or what changed since the last
    // run). When this returns, every later change of DIR will be captured.
    static Result<std::unique_ptr<Daemon>> start(const WatchOptions& options);
    virtual ~Daemon() = default;
    // Serves until stopped (control "stop", SIGTERM, SIGINT). Returns the exit code.
    virtual int run() = 0;
    // The gist of `izwatch status` in one line (what systemd shows): the
    // capture mode, records journaled, the durable LSN, the servers.
    virtual std::string status_line() const = 0;
};

}  // namespace iz::agent
