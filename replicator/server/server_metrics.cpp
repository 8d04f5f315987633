// izreplicate's metrics: what each (agent, fileset) had applied, and the
// connections the server took and refused.
#include <fmt/format.h>

#include "metrics/exposition.hpp"
#include "server_context.hpp"

namespace iz::replicator {

void SlotCounters::count(const proto::OpMsg& op, const ApplyResult& r, const Applier& applier) {
    auto o = static_cast<size_t>(r.outcome);
    if (o < kOutcomes) operations[o].fetch_add(1, std::memory_order_relaxed);
    if (r.outcome != Outcome::applied) return;
    uint64_t bytes = 0;
    for (auto& e : op.extents) bytes += e.raw_length;
    if (bytes) data_bytes.fetch_add(bytes, std::memory_order_relaxed);
    // A record travels as several operations (a write's parts, content
    // begin, data and end) sharing its LSN.
    if (op.lsn != last_counted_lsn) {
        records.fetch_add(1, std::memory_order_relaxed);
        last_counted_lsn = op.lsn;
    }
    applied_lsn.store(applier.resume_lsn(), std::memory_order_relaxed);
}

std::string server_metrics(ServerContext& ctx) {
    std::vector<std::pair<std::pair<std::string, std::string>, std::shared_ptr<FilesetSlot>>> slots;
    size_t open = 0;
    {
        std::lock_guard lock(ctx.mu);
        open = ctx.sessions.size();
        for (auto& [key, slot] : ctx.slots) slots.emplace_back(key, slot);
    }
    metrics::Exposition e;
    e.gauge("iz_server_connections", "Connections open (agents, and peers still in their handshake).", uint64_t{open});
    e.counter("iz_server_connections_accepted_total", "Connections accepted since the server started.",
              ctx.accepted.load());
    e.counter("iz_server_handshake_failures_total",
              "Connections dropped before their handshake was done (wrong key, not the protocol, too slow).",
              ctx.handshake_failures.load());
    for (auto& [key, slot] : slots) {
        auto& c = slot->counters;
        metrics::Labels labels{{"agent", key.first}, {"fileset", key.second}};
        e.gauge("iz_server_applied_lsn", "LSN of the agent's journal applied through (not all of it durable yet).",
                c.applied_lsn.load(), labels);
        e.gauge("iz_server_durable_lsn", "LSN of the agent's journal applied and durable (acknowledged).",
                c.durable_lsn.load(), labels);
        e.counter("iz_server_records_applied_total", "Journal records applied since the server started.",
                  c.records.load(), labels);
        e.counter("iz_server_applied_data_bytes_total", "File data written into the replica since the server started.",
                  c.data_bytes.load(), labels);
        e.counter("iz_server_forwarded_bytes_total",
                  "Bytes of forward frames sent to the agent (shared filesets) since the server started.",
                  c.forwarded_bytes.load(), labels);
        e.counter("iz_server_forwarded_records_total",
                  "Records of the fileset journal forwarded to the agent since the server started.",
                  c.forwarded_records.load(), labels);
        for (size_t o = 0; o < SlotCounters::kOutcomes; ++o) {
            auto name = outcome_name(static_cast<Outcome>(o));
            if (name == "unknown") continue;
            auto with = labels;
            with.push_back({"outcome", std::string(name)});
            e.counter("iz_server_operations_total",
                      "Operations received, by outcome: applied; skipped (the replica is not in the state it expects); "
                      "rejected (can never be applied: left out); refused (hostile or malformed: the connection is "
                      "dropped); failed (could not be applied now: sent again).",
                      c.operations[o].load(), with);
        }
    }
    return e.text();
}

}  // namespace iz::replicator
