// What the agent reports to `izwatch status` (agent_status.hpp).
#include "daemon_impl.hpp"

#include <unistd.h>

#include "journal/reader.hpp"

namespace iz::agent {

AgentStatus DaemonImpl::status() const {
    auto& s = capture_->stats();
    uint64_t disk = 0;
    if (auto r = journal::Reader::open(opts_.journal_dir))
        for (auto& seg : (*r)->segments()) disk += seg.file_bytes;
    std::vector<AgentStatus::Server> servers;
    if (shipper_)
        for (auto& srv : shipper_->status()) {
            std::vector<AgentStatus::Rejected> rejected;
            for (auto& r : srv.rejected) rejected.push_back({.lsn = r.lsn, .path = r.path, .error = r.message});
            servers.push_back({.endpoint = srv.endpoint,
                               .connected = srv.connected,
                               .acked_lsn = srv.acked_lsn,
                               .records_behind = srv.records_behind,
                               .bytes_behind = srv.bytes_behind,
                               .data_bytes_sent = srv.data_bytes_sent,
                               .wire_bytes_sent = srv.wire_bytes_sent,
                               .conflicts = srv.conflicts,
                               .rejected = std::move(rejected),
                               .last_error = srv.last_error,
                               .peer = srv.peer,
                               .tls = srv.tls});
        }
    AgentStatus st{
        .dir = opts_.dir,
        .pid = getpid(),
        .journal = opts_.journal_dir.string(),
        .state_dir = opts_.state_dir.string(),
        .capture = mode(),
        .capture_detail = capture_reason_,
        .root_removed = root_removed_,
        .queue_events = fan_->queue_events(),
        .records = s.records,
        .events = s.events,
        .events_outside = s.outside_events,
        .events_per_s = events_per_s_,
        .overflows = s.overflows,
        .rescans = s.rescans,
        .journal_errors = s.journal_errors,
        .head_lsn = writer_->head_lsn(),
        .durable_lsn = writer_->durable_lsn(),
        .journal_disk_bytes = disk,
        .uptime_s = std::chrono::duration<double>(Clock::now() - started_).count(),
        .servers = std::move(servers),
        .scrub = verify_ ? verify_->status() : AgentStatus::Scrub{},
    };
    if (auto f = writer_->failure()) st.journal_failure = f->message;
    return st;
}

}  // namespace iz::agent
