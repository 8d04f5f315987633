// What the agent reports to `izwatch status` and its metrics (agent_status.hpp).
#include "daemon_impl.hpp"

#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

#include "common/service_notify.hpp"
#include "journal/reader.hpp"

namespace iz::agent {

AgentStatus DaemonImpl::status() const {
    auto st = capture_status();
    add_shared_status(st);
    return st;
}

AgentStatus DaemonImpl::capture_status() const {
    auto& s = capture_->stats();
    AgentStatus st{
        .dir = opts_.dir,
        .pid = getpid(),
        .journal = opts_.journal_dir.string(),
        .state_dir = opts_.state_dir.string(),
        .capture = mode(),
        .capture_detail = capture_reason_,
        .root_removed = root_removed_,
        .queue_events = fan_->queue_events(),
        .ebpf = bpf_ != nullptr,
        .records = s.records,
        .events = s.events,
        .events_outside = s.outside_events,
        .events_per_s = events_per_s_,
        .overflows = s.overflows,
        .rescans = s.rescans,
        .journal_errors = s.journal_errors,
        .head_lsn = writer_->head_lsn(),
        .durable_lsn = writer_->durable_lsn(),
        .uptime_s = std::chrono::duration<double>(Clock::now() - started_).count(),
    };
    if (auto f = writer_->failure()) st.journal_failure = f->message;
    return st;
}

// Cheap enough for every second: no journal walk (status() sums the
// segments' sizes), only counters and the shipper's per-server state.
std::string DaemonImpl::status_line() const {
    std::string line = fmt::format("{}: {} records, durable LSN {}", mode(), capture_->stats().records,
                                   writer_->durable_lsn());
    if (shipper_) {
        size_t connected = 0;
        uint64_t behind = 0;
        auto servers = shipper_->status();
        for (auto& srv : servers) {
            connected += srv.connected ? 1 : 0;
            behind = std::max(behind, srv.records_behind);
        }
        line += fmt::format("; {}/{} servers connected, {} records behind", connected, servers.size(), behind);
    }
    if (root_removed_) line += "; REMOVED: the watched directory was deleted";
    if (auto f = writer_->failure()) line += "; JOURNAL FAILED: " + f->message;
    return line;
}

void DaemonImpl::report_status() {
    if (!service_manager_listens()) return;
    auto line = status_line();
    if (line == reported_status_) return;
    notify_status(line);
    reported_status_ = std::move(line);
}

void DaemonImpl::add_shared_status(AgentStatus& st) const {
    uint64_t disk = 0;
    if (auto r = journal::Reader::open(opts_.journal_dir))
        for (auto& seg : (*r)->segments()) disk += seg.file_bytes;
    st.journal_disk_bytes = disk;
    st.servers = shipper_ ? shipper_->status() : std::vector<AgentStatus::Server>{};
    if (receiving() && !st.servers.empty()) add_receive_status(st.servers.front());
    // Shared filesets: the conflicts the first server found between this
    // agent's changes and others' come forwarded from it (receiver.hpp).
    if (receiver_ && !st.servers.empty()) st.servers.front().conflicts += receiver_->conflicts();
    st.scrub = verify_ ? verify_->status() : AgentStatus::Scrub{};
    st.queue_depth = fan_->queued();
    if (local_changes_) {
        st.local_changes = local_changes_->count();
        st.local_change_paths = local_changes_->paths();
    }
}

// Forwards come from the first server: how far this agent is, and what
// it could not apply. The head is asked now when the server is reachable
// (the last answer otherwise).
void DaemonImpl::add_receive_status(AgentStatus::Server& srv) const {
    if (srv.connected)
        if (auto head = shipper_->ask_head(std::chrono::seconds(1))) last_head_ = *head;
    uint64_t applied = receiver_->applied();
    srv.received_lsn = applied;
    srv.server_head = last_head_;
    if (last_head_) srv.records_to_receive = *last_head_ > applied ? *last_head_ - applied : 0;
    auto failure = receiver_->failure();
    srv.receive_error = failure ? fmt::format("cannot apply {} '{}' (server LSN {}, from {}): {}; retrying (attempt {})",
                                              failure->op, failure->path, failure->lsn, failure->origin,
                                              failure->message, failure->attempts)
                                : receiver_->last_error();
    if (!srv.subscribe_refused.empty()) srv.receive_error = srv.subscribe_refused;
    std::vector<replicator::RejectedRecord> passed;
    for (auto& f : receiver_->permanent_failures())
        passed.push_back({.lsn = f.lsn, .path = f.path, .message = fmt::format("{} from {}: {}", f.op, f.origin, f.message)});
    srv.not_applied = std::move(passed);
}

}  // namespace iz::agent
