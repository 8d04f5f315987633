#include "conflict_resolver.hpp"

#include <algorithm>

#include "common/conflict_name.hpp"

namespace iz::replicator {

using proto::OpKind;

namespace {

// What makes the content or the kind of the entry at a path: two of these
// without one seeing the other are two versions of it.
bool makes_version(OpKind k) {
    switch (k) {
        case OpKind::create:
        case OpKind::mknod:
        case OpKind::symlink:
        case OpKind::write:
        case OpKind::truncate:
        case OpKind::content_begin:
        case OpKind::content_data:
        case OpKind::content_end:
            return true;
        default:
            return false;
    }
}

// What changes the attributes of the entry at a path and nothing else:
// each record carries the whole value it sets (a setattr the mode, owner
// and times; an xattr change its name's value), so the later one the
// fileset journals is the value, on every replica.
bool sets_attributes(OpKind k) {
    return k == OpKind::setattr || k == OpKind::setxattr || k == OpKind::removexattr;
}

// Operations that change a file already there: its copy starts as the
// fileset's current file (a delta against it is what the agent sent).
bool patches(const proto::OpMsg& op) {
    return op.kind == OpKind::write || op.kind == OpKind::truncate ||
           (op.kind == OpKind::content_begin && op.base == proto::ContentBase::existing);
}

}  // namespace

std::string ConflictResolver::copy_name(const std::string& path, const std::string& origin, int64_t time_ns) {
    return conflict_copy_name(path, origin, time_ns);
}

void ConflictResolver::note(uint64_t lsn, const std::string& origin, OpKind kind, const std::string& path,
                            const std::string& target, bool sent_back) {
    if ((echoing_ && echoing_->first == origin && echoing_->second == path) || (sent_back && sets_attributes(kind))) {
        echoes_[{origin, path}] = lsn;
        echoing_.reset();
    }
    recent_.note(lsn, origin, kind, path, target);
    for (auto& [agent, b] : behind_) b.history.note(lsn, origin, kind, path, target);
}

void ConflictResolver::note_kept_aside(uint64_t lsn, const std::string& agent, const std::string& path,
                                       const std::string& copy, uint64_t agent_lsn) {
    // The winner is the path's latest change before the conflict record;
    // gone from memory (pruned), the record itself bounds it.
    Aside a{copy, lsn, {}, agent_lsn, false};
    if (auto it = recent_.last.find(path); it != recent_.last.end() && it->second.lsn < lsn) {
        a.winner_lsn = it->second.lsn;
        a.winner_origin = it->second.origin;
    }
    aside_.insert_or_assign({agent, path}, std::move(a));
}

std::optional<uint64_t> ConflictResolver::prune_point() const {
    std::optional<uint64_t> least;
    for (const auto& [agent, seen] : reported_) least = std::min(least.value_or(seen), seen);
    return least;
}

void ConflictResolver::prune(uint64_t floor) {
    reported_.clear();
    if (floor <= floor_) return;
    floor_ = floor;
    recent_.prune(floor);
}

const ConflictHistory& ConflictResolver::history(const std::string& agent, std::optional<uint64_t> seen) const {
    if (!seen || *seen >= floor_) return recent_;
    auto it = behind_.find(agent);
    if (it != behind_.end() && it->second.from <= *seen) return it->second.history;
    return recent_;
}

std::optional<uint64_t> ConflictResolver::history_needed(const std::string& agent, const proto::OpMsg& op) const {
    if (!op.seen || *op.seen >= floor_) return std::nullopt;
    auto it = behind_.find(agent);
    if (it != behind_.end() && it->second.from <= *op.seen) return std::nullopt;
    return *op.seen;
}

void ConflictResolver::load_history(const std::string& agent, uint64_t from, ConflictHistory older) {
    older.overlay(recent_);
    behind_.insert_or_assign(agent, Behind{from, std::move(older)});
}

size_t ConflictResolver::entries() const {
    size_t n = recent_.size() + aside_.size() + echoes_.size();
    for (const auto& [agent, b] : behind_) n += b.history.size();
    return n;
}

ConflictDecision ConflictResolver::decide(const std::string& agent, const proto::OpMsg& op) {
    ConflictDecision d;
    if (!op.seen || op.kind == OpKind::noop || op.kind == OpKind::repair) return d;
    uint64_t seen = *op.seen;
    auto& reported = reported_[agent];
    reported = std::max(reported, seen);
    if (seen >= floor_) behind_.erase(agent);
    const ConflictHistory& h = history(agent, seen);

    // Already kept aside for this agent: its later records of the path
    // follow its version there until it has seen the winner.
    auto key = std::make_pair(agent, op.path);
    if (auto it = aside_.find(key); it != aside_.end()) {
        if (seen < it->second.winner_lsn) {
            if (op.kind == OpKind::unlink || op.kind == OpKind::rmdir) {
                d.action = ConflictDecision::Action::drop;
            } else {
                d.action = ConflictDecision::Action::keep_aside;
                d.copy = it->second.copy;
                // The record first kept there, sent again whole (a new
                // connection): the copy starts from the current file again,
                // as it did at first; its next part goes on from there.
                auto& a = it->second;
                if (op.lsn == a.agent_lsn) {
                    d.first = op.kind == OpKind::content_begin || (patches(op) && !a.more_pending);
                    a.more_pending = op.more;
                }
                d.from_current = d.first && patches(op);
            }
            d.winner_lsn = it->second.winner_lsn;
            d.winner_origin = it->second.winner_origin;
            return d;
        }
        aside_.erase(it);
    }

    auto it = h.last.find(op.path);
    if (it == h.last.end()) return d;
    const ConflictHistory::Change& c = it->second;
    if (c.lsn <= seen || c.origin == agent) {  // seen, or its own
        d.echo = echo_again(key, seen, op.kind);
        return d;
    }
    d.winner_lsn = c.lsn;
    d.winner_origin = c.origin;

    if (op.kind == OpKind::unlink || op.kind == OpKind::rmdir) {
        // Delete against update: the update wins. Against a delete: both
        // agree, nothing to keep.
        if (!c.removed) d.action = ConflictDecision::Action::drop;
        return d;
    }
    // An update after a concurrent delete makes the file again, there and
    // (sent back) on its agent; parts of content after their beginning go
    // where it went.
    if (c.removed) {
        d.echo = makes_version(op.kind);
        return d;
    }
    // Attributes against a concurrent change: applied (the later journaled
    // wins) and sent back to its own agent too, which applies the other
    // change once its own is acknowledged and would keep that one.
    if (sets_attributes(op.kind)) {
        d.echo = true;
        d.attributes_lost = true;
        echoing_ = key;
        return d;
    }
    if (!makes_version(op.kind) || op.kind == OpKind::content_data || op.kind == OpKind::content_end) return d;
    d.action = ConflictDecision::Action::keep_aside;
    d.copy = copy_name(op.path, agent, op.time_ns.value_or(0));
    d.fresh = d.first = true;
    d.from_current = patches(op);
    aside_[key] = Aside{d.copy, c.lsn, c.origin, op.lsn, op.more};
    return d;
}

// An agent whose attributes were sent back to it (echo) applies that
// record after everything it was concurrent with, once its own later
// changes of the path are acknowledged: a later change of its own that
// had not seen it goes back too, or the agent would end with the value it
// had before.
bool ConflictResolver::echo_again(const std::pair<std::string, std::string>& key, uint64_t seen, OpKind kind) {
    auto e = echoes_.find(key);
    if (e == echoes_.end()) return false;
    if (seen >= e->second) {
        echoes_.erase(e);
        return false;
    }
    if (!sets_attributes(kind) && !makes_version(kind)) return false;
    echoing_ = key;
    return true;
}

}  // namespace iz::replicator
