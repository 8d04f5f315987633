// The records of a rename skipped for making a cycle (fileset_journal.hpp).
#include <fcntl.h>
#include <sys/stat.h>

#include <filesystem>

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

void FilesetJournal::note_subtree(const std::string& server, const std::string& agent, const proto::OpMsg& op,
                                  const std::string& dir) {
    namespace fs = std::filesystem;
    auto one = [&](const std::string& rel) {
        struct stat st{};
        if (::lstat((root_ / rel).c_str(), &st) != 0) return;
        proto::OpMsg m;
        m.lsn = op.lsn;
        m.time_ns = op.time_ns;
        m.path = rel;
        m.mode = st.st_mode;
        m.uid = st.st_uid;
        m.gid = st.st_gid;
        m.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
        if (S_ISDIR(st.st_mode)) {
            m.kind = proto::OpKind::mkdir;
        } else if (S_ISREG(st.st_mode)) {
            m.kind = proto::OpKind::content_end;  // journaled as a write of the whole file
            m.size = static_cast<uint64_t>(st.st_size);
        } else if (S_ISLNK(st.st_mode)) {
            std::error_code ec;
            auto to = fs::read_symlink(root_ / rel, ec);
            if (ec) return;
            m.kind = proto::OpKind::symlink;
            m.target = to.string();
        } else {
            return;
        }
        note_applied(server, m, agent);
    };
    one(dir);
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root_ / dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
        one(dir + "/" + fs::relative(it->path(), root_ / dir).string());
    // Directory times last: the entries made in them changed them.
    auto times = [&](const std::string& rel) {
        struct stat st{};
        if (::lstat((root_ / rel).c_str(), &st) != 0) return;
        proto::OpMsg m;
        m.lsn = op.lsn;
        m.kind = proto::OpKind::setattr;
        m.path = rel;
        m.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
        note_applied(server, m, agent);
    };
    for (auto it = fs::recursive_directory_iterator(root_ / dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
        times(dir + "/" + fs::relative(it->path(), root_ / dir).string());
    }
    times(dir);
}

}  // namespace iz::replicator
