// The records of a rename skipped for making a cycle (fileset_journal.hpp).
#include <fcntl.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include "fileset_journal.hpp"
#include "replicator/fs/beneath.hpp"

namespace iz::replicator {

bool FilesetJournal::has(const std::string& path) const {
    return static_cast<bool>(open_beneath(root_fd_.get(), path, O_PATH | O_NOFOLLOW));
}

void FilesetJournal::note_move_conflict(const std::string& server, const std::string& agent, const proto::OpMsg& op,
                                        const ConflictResolver::Placement& p) {
    journal::Record r;
    r.op = journal::Op::conflict;
    r.time_ns = op.time_ns.value_or(0);
    r.path = op.path;
    r.target = op.target;
    r.origin = agent;
    r.origin_lsn = op.lsn;
    r.message = fmt::format(
        "concurrent with {} (server LSN {}): {}'s LSN {} moves '{}' to '{}', which is beneath it now ('{}'); the move "
        "is not applied",
        p.winner_origin, p.winner_lsn, agent, op.lsn, op.path, op.target, p.target);
    (void)writer_->append(std::move(r));
    // The agent made its move and has the concurrent ones still to come,
    // which meet its tree, not the fileset's: its move is undone there, and
    // the concurrent moves follow again. Elsewhere the first finds nothing
    // to move (its target is there) and the others are where they go.
    for (auto& [from, to] : p.undo) {
        proto::OpMsg m;
        m.lsn = op.lsn;
        m.kind = proto::OpKind::rename;
        m.path = from;
        m.target = to;
        m.time_ns = op.time_ns;
        note_applied(server, m, agent);
    }
    // A rename sets no times of what it moves; the agent's moved
    // directories have the times its own moves gave them.
    for (auto& [from, to] : p.undo) {
        auto node = open_beneath(root_fd_.get(), to, O_PATH | O_NOFOLLOW);
        struct stat st{};
        if (!node || ::fstat(node->get(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        proto::OpMsg m;
        m.lsn = op.lsn;
        m.kind = proto::OpKind::setattr;
        m.path = to;
        m.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
        m.time_ns = op.time_ns;
        note_applied(server, m, agent);
    }
}

}  // namespace iz::replicator
