// Session::place (server_context.hpp): an agent's operation placed by the
// moves and directory removals it had not seen (conflict_resolver.hpp).
#include <sys/stat.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "server_context.hpp"

namespace iz::replicator {

const proto::OpMsg& Session::place(const proto::OpMsg& m, proto::OpMsg& placed, bool& echo) {
    auto p = journal_->place(agent_, m);
    // Not applied as it stands: a noop passes its LSN.
    auto skipped = [&]() -> const proto::OpMsg& {
        placed = proto::OpMsg{.lsn = m.lsn, .kind = proto::OpKind::noop, .more = m.more};
        return placed;
    };
    // What the replica holds at `path`, journaled whole again with the
    // server as origin (noted as this agent's), for every agent.
    auto send_again = [&](const std::string& path) {
        if (auto ok = journal_->note_subtree(ctx_.options.host_name, agent_, m, path); !ok)
            spdlog::error("{}: '{}' is not journaled again for the agents: {}", who(), path, ok.error().message);
    };
    if (p.cycle) {
        spdlog::warn("{}: rename '{}' to '{}' at LSN {} is concurrent with the move of {} (server LSN {}) that put "
                     "'{}' beneath it ('{}'): not applied, reported as a conflict",
                     who(), m.path, m.target, m.lsn, p.winner_origin, p.winner_lsn, m.target, p.target);
        journal_->note_move_conflict(ctx_.options.host_name, agent_, m, p);
        return skipped();
    }
    if (p.keep_dir) {
        spdlog::warn("{}: rmdir '{}' at LSN {} did not see the change of {} beneath it (server LSN {}): the change "
                     "wins, the directory stays and is sent again",
                     who(), m.path, m.lsn, p.winner_origin, p.winner_lsn);
        send_again(m.path);
        return skipped();
    }
    if (!p.keep.empty()) {
        spdlog::warn("{}: {} '{}' at LSN {} did not see {} move it (server LSN {}): the move wins, '{}' stays and is "
                     "sent again",
                     who(), proto::op_kind_name(m.kind), m.path, m.lsn, p.winner_origin, p.winner_lsn, p.keep);
        if (journal_->has(p.keep)) send_again(p.keep);
        return skipped();
    }
    for (auto& dir : p.revive) {
        if (journal_->has(dir)) continue;
        // Removed by another agent that had not seen this one's change
        // beneath it: the change wins, and the directory comes back (as a
        // plain directory: the removed one's attributes are gone).
        proto::OpMsg mk{.lsn = m.lsn, .kind = proto::OpKind::mkdir, .more = true};
        mk.path = dir;
        mk.mode = S_IFDIR | 0755;
        mk.time_ns = m.time_ns;
        auto r = slot_->applier->apply(mk);
        if (r.outcome != Outcome::applied) {
            spdlog::warn("{}: cannot make '{}' again for {} '{}' at LSN {}: {}", who(), dir,
                         proto::op_kind_name(m.kind), m.path, m.lsn, r.message);
            break;
        }
        spdlog::warn("{}: {} '{}' at LSN {} is beneath '{}', which {} removed concurrently (server LSN {}): made "
                     "again",
                     who(), proto::op_kind_name(m.kind), m.path, m.lsn, dir, p.winner_origin, p.winner_lsn);
        journal_->note_applied(ctx_.options.host_name, mk, agent_);
    }
    if (p.remake && !journal_->has(p.path) && !journal_->has(p.target)) {
        // The rename wins for what it moves: made again at its target from
        // what the server kept of the removal, and sent to every agent.
        if (auto ok = journal_->remake(p.path, p.target); !ok) {
            spdlog::warn("{}: rename '{}' to '{}' at LSN {}: its source was removed by {} (server LSN {}) and cannot "
                         "be made again: {}",
                         who(), m.path, m.target, m.lsn, p.winner_origin, p.winner_lsn, ok.error().message);
        } else {
            spdlog::warn("{}: rename '{}' to '{}' at LSN {} did not see {} remove its source (server LSN {}): the "
                         "rename wins, its source is made again at '{}'",
                         who(), m.path, m.target, m.lsn, p.winner_origin, p.winner_lsn, p.target);
            send_again(p.target);
            return skipped();
        }
    }
    echo = p.echo;
    if (!p.moved) return m;
    if (m.kind != proto::OpKind::content_data && m.kind != proto::OpKind::content_end)
        spdlog::info("{}: {} '{}' at LSN {} follows the concurrent move of {} (server LSN {}): to '{}'", who(),
                     proto::op_kind_name(m.kind), m.path, m.lsn, p.winner_origin, p.winner_lsn, p.path);
    placed = m;
    placed.path = std::move(p.path);
    placed.target = std::move(p.target);
    return placed;
}

}  // namespace iz::replicator
