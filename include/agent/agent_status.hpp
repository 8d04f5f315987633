#pragma once
// What a running agent reports of itself: the reply to the control request
// {"cmd": "status"} (with "ok": true added), built by the agent and read
// back by `izwatch status`. Each field is the JSON key of the same name,
// spelled once (agent_status.cpp) for both directions; a field's JSON type
// is its C++ type's (unsigned for counters and LSNs, signed for the pid,
// floating for rates and times), so what the agent sends parses back equal.
// Reading is lenient: a key the reply lacks leaves the field's default.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "replicator/ship/shipper.hpp"

namespace iz::agent {

struct AgentStatus {
    // One server: what the shipper reports of it, as it reports it. A
    // rejected operation's message is under the key "error".
    using Server = replicator::ServerStatus;

    // The scrub's schedule and last result (VerifyService::status()). The
    // last run's keys are in the JSON only once it has run (runs > 0), the
    // last_found ones only once it found a difference (found_total > 0).
    // differences and repaired are signed: the reply always had them so.
    struct Scrub {
        int64_t interval_s = 0;  // 0: never
        uint64_t runs = 0;       // since the agent started
        std::string last_run;    // UTC, ISO 8601
        int64_t differences = 0;
        int64_t repaired = 0;
        std::vector<std::string> paths;   // that differed at the last run
        std::vector<std::string> errors;  // "SERVER: why it could not be verified"
        uint64_t found_total = 0;  // since the agent started
        uint64_t repaired_total = 0;
        std::string last_found;  // the last run that found differences
        std::vector<std::string> last_found_paths;
        bool operator==(const Scrub&) const = default;
    };

    std::string dir;
    int pid = 0;
    std::string journal;  // the journal's directory
    std::string state_dir;
    std::string capture;         // "fanotify+ebpf" or "fanotify only"
    std::string capture_detail;  // the eBPF programs, or why there are none
    bool root_removed = false;
    uint32_t queue_events = 0;  // the fanotify queue's length
    // Events waiting in it (FIONREAD), when the kernel says.
    std::optional<uint64_t> queue_depth;
    bool ebpf = false;  // eBPF programs attached
    uint64_t records = 0;
    uint64_t events = 0;
    uint64_t events_outside = 0;
    double events_per_s = 0;
    uint64_t overflows = 0;
    uint64_t rescans = 0;
    uint64_t journal_errors = 0;
    uint64_t head_lsn = 0;
    uint64_t durable_lsn = 0;
    uint64_t journal_disk_bytes = 0;
    double uptime_s = 0;
    std::vector<Server> servers;
    Scrub scrub;
    // Why the journal takes no records (absent from the JSON while it does).
    std::optional<std::string> journal_failure;
    // Receive-only (absent otherwise): the local changes kept here and not
    // sent since the agent started, and the paths changed last.
    std::optional<uint64_t> local_changes;
    std::optional<std::vector<std::string>> local_change_paths;

    bool operator==(const AgentStatus&) const = default;
};

void to_json(nlohmann::json& j, const AgentStatus::Scrub& s);
void from_json(const nlohmann::json& j, AgentStatus::Scrub& s);
void to_json(nlohmann::json& j, const AgentStatus& s);
void from_json(const nlohmann::json& j, AgentStatus& s);

}  // namespace iz::agent

// The shipper's types as they are in the status reply, declared in their
// own namespaces, where the JSON library looks for them.
namespace iz::replicator {

void to_json(nlohmann::json& j, const ServerStatus& s);
void from_json(const nlohmann::json& j, ServerStatus& s);

namespace proto {
void to_json(nlohmann::json& j, const RejectedMsg& r);
void from_json(const nlohmann::json& j, RejectedMsg& r);
}  // namespace proto

}  // namespace iz::replicator
