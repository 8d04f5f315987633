#include "local_changes.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace iz::agent {

Status LocalChanges::poll() {
    std::lock_guard lock(mu_);
    return poll_locked();
}

bool LocalChanges::holds(const std::string& path) {
    std::lock_guard lock(mu_);
    if (auto ok = poll_locked(); !ok)
        spdlog::error("receive-only: reading the journal for local changes: {}", ok.error().message);
    return held_.count(path) > 0;
}

void LocalChanges::forget(const std::string& path) {
    std::lock_guard lock(mu_);
    held_.erase(path);
}

namespace {

// The held paths at and beneath `path`.
std::pair<std::set<std::string>::iterator, std::set<std::string>::iterator> at_and_beneath(std::set<std::string>& held,
                                                                                          const std::string& path) {
    auto first = held.lower_bound(path);
    auto last = first;
    while (last != held.end() && (*last == path || (last->size() > path.size() && last->compare(0, path.size(), path) == 0 &&
                                                    (*last)[path.size()] == '/')))
        ++last;
    return {first, last};
}

}  // namespace

// Only what a forward could destroy is held: a file or symlink left at a
// path. A removal leaves nothing there to keep (a forward that makes the
// path again destroys nothing), a directory keeps its entries, and a
// rename takes what it held to the new name: without this, every path a
// user ever changed stayed held for good.
void LocalChanges::hold(const journal::Record& r) {
    auto drop = [&](const std::string& path) {
        auto [first, last] = at_and_beneath(held_, path);
        held_.erase(first, last);
    };
    switch (r.op) {
        case journal::Op::unlink:
        case journal::Op::rmdir:
            drop(r.path);
            return;
        case journal::Op::mkdir:
            return;
        case journal::Op::rename: {
            std::vector<std::string> moved;
            auto [first, last] = at_and_beneath(held_, r.path);
            for (auto it = first; it != last; ++it) moved.push_back(r.target + it->substr(r.path.size()));
            held_.erase(first, last);
            drop(r.target);
            held_.insert(moved.begin(), moved.end());
            held_.insert(r.target);  // the moved entry itself, held or not before
            return;
        }
        default:
            held_.insert(r.path);
            if (!r.target.empty() && r.op != journal::Op::symlink) held_.insert(r.target);
            return;
    }
}

Status LocalChanges::clear() {
    std::lock_guard lock(mu_);
    auto ok = poll_locked();
    held_.clear();
    paths_.clear();
    count_ = 0;
    return ok;
}

Status LocalChanges::poll_locked() {
    if (!reader_) {
        auto r = journal::Reader::open(dir_);
        if (!r) return fail(r.error());
        reader_ = std::move(*r);
        if (auto ok = reader_->seek_lsn(after_ + 1); !ok) return ok;
    } else if (auto ok = reader_->refresh(); !ok) {
        return ok;
    }
    for (;;) {
        auto next = reader_->next();
        if (!next) return fail(next.error());
        if (!*next) return {};
        auto& r = **next;
        after_ = r.lsn;
        // Not applied from the server (no origin), and a change of the
        // tree (not one of the agent's own events).
        bool mutation = (r.op >= journal::kFirstOp && r.op <= journal::Op::removexattr) || r.op == journal::Op::exchange;
        // The receiver kept a local version aside before a forward replaced
        // it (receiver.hpp): the copy is a local change too, never sent.
        if (r.op == journal::Op::conflict && r.origin.empty() && !r.target.empty()) {
            r.op = journal::Op::create;
            r.path = std::move(r.target);
            r.target.clear();
            mutation = true;
        }
        if (!mutation || !r.origin.empty()) {
            // A forward sets the path (and a rename's target) as the
            // fileset has it: nothing local is there any more.
            if (mutation) held_.erase(r.path);
            if (mutation && !r.target.empty()) held_.erase(r.target);
            continue;
        }
        ++count_;
        if (count_ <= kMaxWarned || count_ % kWarnEvery == 0)
            spdlog::warn("receive-only: a local change is kept here and not sent: {} '{}'{} ({} so far; "
                         "`izwatch status` lists them)",
                         journal::op_name(r.op), r.path, r.target.empty() ? "" : " -> '" + r.target + "'", count_);
        for (auto* p : {&r.path, &r.target}) {
            if (p->empty()) continue;
            std::erase(paths_, *p);
            paths_.push_back(*p);
            if (paths_.size() > kPathsKept) paths_.pop_front();
        }
        hold(r);
    }
}

}  // namespace iz::agent
