#include "ship_plan.hpp"

#include <map>
#include <optional>
#include <string>

#include "common/path_tree.hpp"

namespace iz::replicator {

using journal::Op;

namespace {

// What the window so far says about one path, since its last namespace change.
struct PathState {
    std::optional<size_t> created;    // created in this window
    std::vector<size_t> touched;      // every later record on it
    std::optional<size_t> last_write;
    std::optional<size_t> last_close; // a close_attrs still planned
    bool whole_dirty = false;         // a write with unknown ranges
};

}  // namespace

std::vector<PlannedRecord> plan_window(const std::vector<journal::Record>& window) {
    std::vector<PlannedRecord> plan(window.size());
    std::map<std::string, PathState> paths;
    // For a skipped record, the later record that carries its effect
    // (kNone: nothing does, it is superseded).
    constexpr size_t kNone = static_cast<size_t>(-1);
    std::vector<size_t> carrier(window.size(), kNone);
    auto skip_for = [&](size_t j, size_t by) {
        plan[j].action = ShipAction::skip;
        carrier[j] = by;
    };

    // A namespace change at `p` ends what we know about it and beneath it.
    auto barrier = [&](const std::string& p) {
        auto [first, last] = subtree_range(paths, p);
        paths.erase(first, last);
        paths.erase(p);
    };
    // The file at `p` is gone: if it was born in the window, none of its
    // records need to travel.
    auto vanished = [&](const std::string& p) {
        auto it = paths.find(p);
        if (it != paths.end() && it->second.created) {
            skip_for(*it->second.created, kNone);
            for (size_t j : it->second.touched) skip_for(j, kNone);
        }
    };

    for (size_t i = 0; i < window.size(); ++i) {
        const auto& r = window[i];
        auto& out = plan[i];
        out.ranges = r.ranges;
        if (!r.origin.empty()) {
            // Received from a server and applied here: never sent back.
            out.action = ShipAction::skip;
            continue;
        }
        switch (r.op) {
            case Op::create:
            case Op::mknod:
            case Op::symlink:
                barrier(r.path);
                paths[r.path].created = i;
                break;
            case Op::mkdir:
            case Op::rmdir:
                barrier(r.path);
                break;
            case Op::write: {
                auto& s = paths[r.path];
                if (s.last_write) {
                    auto& prev = plan[*s.last_write];
                    if (prev.action == ShipAction::send || prev.action == ShipAction::write_delta) {
                        bool whole = prev.ranges.empty() || r.ranges.empty();
                        if (!whole) {
                            auto merged = prev.ranges;
                            merged.insert(merged.end(), r.ranges.begin(), r.ranges.end());
                            out.ranges = journal::coalesce(std::move(merged));
                        } else {
                            out.ranges.clear();
                        }
                        skip_for(*s.last_write, i);
                    }
                }
                if (out.ranges.empty()) {
                    s.whole_dirty = true;
                    out.action = ShipAction::write_delta;
                }
                s.last_write = i;
                s.touched.push_back(i);
                break;
            }
            case Op::truncate:
            case Op::setattr:
            case Op::setxattr:
            case Op::removexattr:
                paths[r.path].touched.push_back(i);
                break;
            case Op::close_write: {
                auto& s = paths[r.path];
                if (s.created || s.whole_dirty) {
                    out.action = s.created ? ShipAction::content_full : ShipAction::content_delta;
                    // The content covers every write and truncate before it.
                    bool only_data = true;
                    for (size_t j : s.touched)
                        if (window[j].op == Op::write || window[j].op == Op::truncate || window[j].op == Op::close_write)
                            skip_for(j, i);
                        else
                            only_data = false;
                    // The whole content also carries the new file's mode,
                    // owner, mtime and parent mtime, and makes the file: its
                    // create need not travel. Sending it made the server
                    // create an empty file and then rename the content over
                    // it, and on ext4 a rename over an existing file forces
                    // writeback of the new data (auto_da_alloc), per file.
                    // Kept when anything else (attributes, xattrs) was done
                    // to the file in between: that needs the file there.
                    // Decided again at every close: an earlier close may
                    // have skipped the create before an attribute change
                    // that needs the file there (and that close's content
                    // is skipped now, this one covering it).
                    if (s.created && window[*s.created].op == Op::create) {
                        if (only_data) {
                            skip_for(*s.created, i);
                        } else {
                            plan[*s.created].action = ShipAction::send;
                            carrier[*s.created] = kNone;
                        }
                    }
                    s.last_write.reset();
                    s.last_close.reset();
                } else {
                    // Size and attributes are read when it ships, so an
                    // earlier close of the file says nothing this one does
                    // not; and writes on either side of a close merge like
                    // any others (their data is read at ship time too). A
                    // file appended to and closed over and over (logs) then
                    // costs one write and one close per window, not one
                    // of each per append.
                    out.action = ShipAction::close_attrs;
                    if (s.last_close) skip_for(*s.last_close, i);
                    s.last_close = i;
                }
                s.whole_dirty = false;
                s.touched.push_back(i);
                break;
            }
            case Op::unlink:
                vanished(r.path);
                barrier(r.path);
                break;
            case Op::rename:
                if (r.path != r.target) vanished(r.target);
                barrier(r.path);
                barrier(r.target);
                break;
            case Op::link:
            case Op::exchange:  // both names now hold another entry; neither is gone
                barrier(r.path);
                barrier(r.target);
                break;
            case Op::repair:
                // Sent as it is: the server then takes what follows for
                // the repair it is, not for a conflict.
                break;
            case Op::conflict:
                out.action = ShipAction::content_delta;
                paths[r.path].touched.push_back(i);
                break;
            case Op::start:
            case Op::stop:
            case Op::overflow:
            case Op::rescan:
                out.action = ShipAction::skip;
                break;
        }
    }

    // Spans from each skipped record to the record that finally carries
    // it (a carrier may itself be carried further, or vanish).
    std::vector<int> opened(window.size() + 1, 0);
    for (size_t j = 0; j < window.size(); ++j) {
        if (plan[j].action != ShipAction::skip || carrier[j] == kNone) continue;
        size_t c = carrier[j];
        while (plan[c].action == ShipAction::skip && carrier[c] != kNone) c = carrier[c];
        if (plan[c].action == ShipAction::skip) continue;  // the carrier vanished: nothing to carry
        ++opened[j];
        --opened[c];
    }
    int open = 0;
    for (size_t i = 0; i < window.size(); ++i) {
        open += opened[i];
        plan[i].boundary = open == 0;
    }
    return plan;
}

}  // namespace iz::replicator
