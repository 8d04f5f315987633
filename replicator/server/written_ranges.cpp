#include "written_ranges.hpp"

namespace iz::replicator {

using proto::OpKind;

void WrittenRanges::gather(Pending& p, const proto::OpMsg& op) {
    for (auto& e : op.extents) p.ranges.push_back({e.offset, e.raw_length});
    for (auto& h : op.holes) p.ranges.push_back({h.offset, h.length});
    if (p.ranges.size() > kMaxRanges) p.ranges = journal::coalesce(std::move(p.ranges));
    if (p.ranges.size() > kMaxRanges) p.whole = true;
}

std::vector<journal::ByteRange> WrittenRanges::add(const std::string& agent, const proto::OpMsg& op) {
    switch (op.kind) {
        case OpKind::content_begin: {
            Pending p{.lsn = op.lsn, .path = op.path, .whole = op.base == proto::ContentBase::empty};
            gather(p, op);
            pending_[agent] = std::move(p);
            return {};
        }
        case OpKind::content_data: {
            auto it = pending_.find(agent);
            if (it == pending_.end()) return {};
            if (it->second.lsn != op.lsn || it->second.path != op.path) it->second.whole = true;
            else gather(it->second, op);
            return {};
        }
        case OpKind::content_end: {
            auto it = pending_.find(agent);
            if (it == pending_.end()) return {};
            Pending p = std::move(it->second);
            pending_.erase(it);
            if (p.whole || p.lsn != op.lsn || p.path != op.path) return {};
            return journal::coalesce(std::move(p.ranges));
        }
        case OpKind::write: {
            if (op.more) return {};
            Pending p;
            gather(p, op);
            if (p.whole) return {};
            return journal::coalesce(std::move(p.ranges));
        }
        default:
            return {};
    }
}

}  // namespace iz::replicator
