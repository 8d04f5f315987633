#include "conflict_history.hpp"

namespace iz::replicator {

using proto::OpKind;

namespace {

// The directory holding `path` ("" for the root).
std::string parent_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

template <class Map>
void drop_to(Map& m, uint64_t floor) {
    std::erase_if(m, [floor](const auto& kv) { return kv.second.lsn <= floor; });
}

template <class Map>
void lay_over(Map& m, const Map& later) {
    for (const auto& [k, v] : later) m.insert_or_assign(k, v);
}

}  // namespace

void ConflictHistory::note(uint64_t lsn, const std::string& origin, OpKind kind, const std::string& path,
                           const std::string& target) {
    if (kind == OpKind::rename && !target.empty()) {
        moved[path] = Moved{lsn, origin, target};
        emptied[parent_of(path)] = Removed{lsn, origin};
        emptied[parent_of(target)] = Removed{lsn, origin};
    } else if (kind == OpKind::rmdir || kind == OpKind::unlink) {
        if (kind == OpKind::rmdir) removed[path] = Removed{lsn, origin};
        emptied[parent_of(path)] = Removed{lsn, origin};
    }
    switch (kind) {
        case OpKind::noop:
        case OpKind::repair:
        case OpKind::conflict:
            return;
        case OpKind::unlink:
        case OpKind::rmdir:
            last[path] = Change{lsn, origin, true};
            return;
        case OpKind::rename:
            last[path] = Change{lsn, origin, true};
            last[target] = Change{lsn, origin, false};
            return;
        case OpKind::link:
        case OpKind::exchange:
            last[path] = Change{lsn, origin, false};
            last[target] = Change{lsn, origin, false};
            return;
        default:
            last[path] = Change{lsn, origin, false};
            return;
    }
}

void ConflictHistory::prune(uint64_t floor) {
    drop_to(last, floor);
    drop_to(moved, floor);
    drop_to(removed, floor);
    drop_to(emptied, floor);
}

void ConflictHistory::overlay(const ConflictHistory& later) {
    lay_over(last, later.last);
    lay_over(moved, later.moved);
    lay_over(removed, later.removed);
    lay_over(emptied, later.emptied);
}

}  // namespace iz::replicator
