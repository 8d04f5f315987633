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
    // Shared filesets: the conflicts the first server found between this
    // agent's changes and others' come forwarded from it (receiver.hpp).
    if (receiver_ && !st.servers.empty()) st.servers.front().conflicts += receiver_->conflicts();
    st.scrub = verify_ ? verify_->status() : AgentStatus::Scrub{};
    st.queue_depth = fan_->queued();
}

}  // namespace iz::agent
