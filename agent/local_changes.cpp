#include "local_changes.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace iz::agent {

Status LocalChanges::poll() {
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
        if (!mutation || !r.origin.empty()) continue;
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
    }
}

}  // namespace iz::agent
