#include "agent/agent_metrics.hpp"

#include "metrics/exposition.hpp"

namespace iz::agent {

std::string agent_metrics(const AgentStatus& s) {
    metrics::Exposition e;
    e.counter("iz_agent_records_journaled_total",
              "Records the capture journaled since the agent started (changes, rescans and overflows; not the agent's "
              "own start and stop records).",
              s.records);
    e.counter("iz_agent_events_read_total", "fanotify events read since the agent started, outside the tree included.",
              s.events);
    e.counter("iz_agent_events_outside_total", "fanotify events read about files outside the watched tree.",
              s.events_outside);
    e.counter("iz_agent_overflows_total", "Times the fanotify queue overflowed (each followed by a rescan).", s.overflows);
    e.counter("iz_agent_rescans_total", "Rescans of the tree (after an overflow, or a journal that failed).", s.rescans);
    e.counter("iz_agent_journal_errors_total", "Records the journal refused to take.", s.journal_errors);
    e.gauge("iz_agent_journal_failed", "1 while the journal cannot be written (izwatch status says why), else 0.",
            uint64_t{s.journal_failure ? 1u : 0u});
    e.gauge("iz_agent_journal_head_lsn", "LSN of the last record appended to the journal.", s.head_lsn);
    e.gauge("iz_agent_journal_durable_lsn", "LSN through which the journal is durable (fdatasync done).", s.durable_lsn);
    e.gauge("iz_agent_journal_durable_lag_records", "Records appended to the journal and not yet durable.",
            s.head_lsn > s.durable_lsn ? s.head_lsn - s.durable_lsn : uint64_t{0});
    e.gauge("iz_agent_journal_disk_bytes", "Bytes the journal's segments take on disk.", s.journal_disk_bytes);
    e.gauge("iz_agent_fanotify_queue_capacity_events", "Length of the fanotify event queue.", uint64_t{s.queue_events});
    if (s.queue_depth)
        e.gauge("iz_agent_fanotify_queue_events", "Events waiting in the fanotify queue when scraped.", *s.queue_depth);
    e.gauge("iz_agent_ebpf_attached", "1 when the eBPF programs are attached (exact dirty ranges), 0 on fanotify alone.",
            uint64_t{s.ebpf ? 1u : 0u});
    e.gauge("iz_agent_root_removed", "1 once the watched directory itself was deleted.", uint64_t{s.root_removed ? 1u : 0u});
    e.gauge("iz_agent_uptime_seconds", "Seconds since the agent armed capture.", s.uptime_s);
    e.counter("iz_agent_scrub_runs_total", "Scrubs (verification and repair of every replica) run since start.",
              s.scrub.runs);
    e.counter("iz_agent_scrub_differences_total", "Differences scrubs found between the source and a replica.",
              s.scrub.found_total);
    e.counter("iz_agent_scrub_repaired_total", "Differences scrubs repaired.", s.scrub.repaired_total);

    for (auto& srv : s.servers) {
        metrics::Labels server{{"server", srv.endpoint}};
        e.gauge("iz_agent_server_connected", "1 while connected to the server (handshake passed), else 0.",
                uint64_t{srv.connected ? 1u : 0u}, server);
        e.gauge("iz_agent_server_acked_lsn", "LSN the server has durably applied.", srv.acked_lsn, server);
        e.gauge("iz_agent_server_behind_records", "Journal records the server has not acknowledged.", srv.records_behind,
                server);
        e.gauge("iz_agent_server_behind_bytes", "Bytes sent and not acknowledged, plus data read and not yet sent.",
                srv.bytes_behind, server);
        e.gauge("iz_agent_server_unacked_age_seconds",
                "Seconds since the oldest record the server has not acknowledged was journaled (0 when it has all).",
                srv.unacked_age_s, server);
        e.counter("iz_agent_server_data_sent_bytes_total", "File data shipped to the server, before compression.",
                  srv.data_bytes_sent, server);
        e.counter("iz_agent_server_wire_sent_bytes_total", "Bytes of every frame sent to the server (after compression).",
                  srv.wire_bytes_sent, server);
        e.counter("iz_agent_server_conflicts_total",
                  "Files the server found changed on its side and kept as a conflict copy.", srv.conflicts, server);
        e.counter("iz_agent_server_reconnects_total", "Connections to the server made after the first one.",
                  srv.reconnects, server);
        auto errors = [&](const char* kind) { return metrics::Labels{{"server", srv.endpoint}, {"kind", kind}}; };
        const char* help =
            "Operations the server could not apply: rejected (never can, left out), failed (it ended the connection "
            "with a reason; sent again).";
        e.counter("iz_agent_server_apply_errors_total", help, srv.rejected_total, errors("rejected"));
        e.counter("iz_agent_server_apply_errors_total", help, srv.server_errors, errors("failed"));
    }
    return e.text();
}

}  // namespace iz::agent
