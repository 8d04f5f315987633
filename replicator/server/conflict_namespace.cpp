// Concurrent namespace changes (conflict_resolver.hpp, "Where an operation
// lands"): an agent's operation is placed in the tree as the fileset's
// order left it, by the moves and directory removals it had not seen.
#include "conflict_resolver.hpp"

#include <string_view>

namespace iz::replicator {

using proto::OpKind;

namespace {

bool has_target(OpKind k) { return k == OpKind::rename || k == OpKind::link || k == OpKind::exchange; }

}  // namespace

// A move seen by nobody the agent heard of after `seen` is followed; the
// next one only if the fileset made it after the one followed (a directory
// moved away and back ends where it was, not in a loop).
std::string ConflictResolver::follow_moves(const ConflictHistory& h, const std::string& agent, uint64_t seen,
                                           std::string path, bool self, Placement& p,
                                           std::vector<std::pair<std::string, std::string>>* moves) const {
    uint64_t after = seen;
    for (bool hit = true; hit;) {
        hit = false;
        for (size_t pos = 0;;) {
            size_t slash = path.find('/', pos);
            bool whole = slash == std::string::npos;
            if (!whole || self) {
                std::string_view q = std::string_view(path).substr(0, whole ? path.size() : slash);
                auto it = h.moved.find(q);
                if (it != h.moved.end() && it->second.lsn > after && it->second.origin != agent) {
                    if (moves) moves->emplace_back(it->first, it->second.to);
                    if (!p.winner_lsn) {
                        p.winner_lsn = it->second.lsn;
                        p.winner_origin = it->second.origin;
                    }
                    after = it->second.lsn;
                    path = it->second.to + path.substr(q.size());
                    hit = true;
                    break;
                }
            }
            if (whole) break;
            pos = slash + 1;
        }
    }
    return path;
}

// Whether `path`, or a directory above it, was removed by another origin
// after `seen` (its latest change is that removal).
bool ConflictResolver::removed_concurrently(const ConflictHistory& h, const std::string& agent, uint64_t seen,
                                            const std::string& path, Placement& p) const {
    auto by_other = [&](uint64_t lsn, const std::string& origin) {
        if (lsn <= seen || origin == agent) return false;
        if (!p.winner_lsn) {
            p.winner_lsn = lsn;
            p.winner_origin = origin;
        }
        return true;
    };
    if (auto it = h.last.find(path); it != h.last.end() && it->second.removed && by_other(it->second.lsn, it->second.origin))
        return true;
    for (size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1)) {
        auto it = h.removed.find(std::string_view(path).substr(0, slash));
        if (it != h.removed.end() && by_other(it->second.lsn, it->second.origin)) return true;
    }
    return false;
}

ConflictResolver::Placement ConflictResolver::place(const std::string& agent, const proto::OpMsg& op) const {
    Placement p;
    p.path = op.path;
    p.target = op.target;
    const ConflictHistory& h = history(agent, op.seen);
    if (op.kind == OpKind::setattr && !h.emptied.empty()) {
        // Without `seen`: a directory's times the agent's shipper read
        // itself (after a rename) cannot say what they saw; sent back,
        // its agent only gets the times it sent.
        auto it = h.emptied.find(op.path == "." ? std::string_view() : std::string_view(op.path));
        if (it != h.emptied.end() && (!op.seen || it->second.lsn > *op.seen) && it->second.origin != agent)
            p.echo = true;
    }
    if (op.kind == OpKind::rmdir && op.seen) {
        std::string prefix = p.path + "/";
        for (auto it = h.last.lower_bound(prefix); it != h.last.end() && it->first.starts_with(prefix); ++it)
            if (!it->second.removed && it->second.lsn > *op.seen && it->second.origin != agent) {
                p.keep_dir = true;
                p.winner_lsn = it->second.lsn;
                p.winner_origin = it->second.origin;
                return p;
            }
    }
    if (!op.seen || (h.moved.empty() && h.removed.empty() && op.kind != OpKind::rename)) return p;
    if (op.kind == OpKind::noop || op.kind == OpKind::repair || op.kind == OpKind::conflict) return p;
    uint64_t seen = *op.seen;
    bool two = has_target(op.kind);

    // A rename's or link's source is an entry: it follows its own moves.
    std::vector<std::pair<std::string, std::string>> moves;
    p.path = follow_moves(h, agent, seen, op.path, op.kind == OpKind::rename || op.kind == OpKind::link, p, &moves);
    if (two) p.target = follow_moves(h, agent, seen, op.target, false, p, &moves);
    p.moved = p.path != op.path || p.target != op.target;
    p.echo = p.echo || p.moved;

    if (op.kind == OpKind::unlink || op.kind == OpKind::rmdir) {
        // The entry itself moved by another (not only a directory above
        // it): the move wins over the removal.
        Placement self;
        std::string at = follow_moves(h, agent, seen, op.path, true, self, nullptr);
        if (at != p.path) {
            p.keep = std::move(at);
            p.winner_lsn = self.winner_lsn;
            p.winner_origin = self.winner_origin;
            return p;
        }
    }
    if (op.kind == OpKind::rename && removed_concurrently(h, agent, seen, p.path, p)) p.remake = true;

    if (op.kind == OpKind::rename && p.target.size() > p.path.size() && p.target.starts_with(p.path) &&
        p.target[p.path.size()] == '/') {
        // Into its own subtree, as the fileset stands: the later move is
        // skipped; the agent, which made it, is given its tree back.
        p.cycle = true;
        p.undo.emplace_back(op.target, op.path);
        for (auto& m : moves) p.undo.push_back(m);
        return p;
    }

    // A removal beneath a removed directory agrees with it; anything else
    // there is an update, which wins: the directories on its way come back.
    if (op.kind == OpKind::unlink || op.kind == OpKind::rmdir || op.kind == OpKind::exchange) return p;
    const std::string& made = two ? p.target : p.path;
    bool found = false;
    for (size_t slash = made.find('/'); slash != std::string::npos; slash = made.find('/', slash + 1)) {
        std::string_view q = std::string_view(made).substr(0, slash);
        if (!found) {
            auto it = h.removed.find(q);
            if (it == h.removed.end() || it->second.lsn <= seen || it->second.origin == agent) continue;
            found = true;
            if (!p.winner_lsn) {
                p.winner_lsn = it->second.lsn;
                p.winner_origin = it->second.origin;
            }
        }
        p.revive.emplace_back(q);
    }
    if (found) p.echo = true;
    return p;
}

}  // namespace iz::replicator
