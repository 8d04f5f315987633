// Joining a shared fileset with a non-empty directory (docs/SHARING.md,
// "Joining a non-empty directory"): before the first start's baseline is
// journaled, this directory's hash tree is compared with the fileset's on
// the first server (the comparison `izwatch verify` and `revert` use), and
// the entries both hold alike are adopted: their baseline records carry an
// origin (Capture::adopt_at_catch_up), so their data is never sent.
//
// What it promises: a path is adopted when the server has an entry there
// of the same kind with the same content (the bytes of a regular file, the
// text of a symlink, a device's number; a directory always, what differs
// beneath it is decided entry by entry), whatever its attributes (mode,
// owner, times, xattrs: the fileset's win, set by the forwards from cursor
// 0). Everything else is left to the baseline and the server's conflict
// rules: what only this directory has is sent, a file that differs is sent
// and kept by the server as NAME.conflict-<agent>-<time> (the fileset's
// version stays at the name), and what only the fileset has arrives as
// forwards. Nothing is removed on either side.
#pragma once

#include <chrono>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/error.hpp"
#include "replicator/fs/verify_compare.hpp"
#include "replicator/ship/shipper.hpp"

namespace iz::agent {

struct JoinPlan {
    std::unordered_set<std::string> adopted;  // paths the fileset holds alike
    size_t differing = 0;                     // entries the fileset holds otherwise
    size_t only_here = 0;                     // entries (subtrees) the fileset lacks
    uint64_t compare_bytes = 0;               // both ways, of the comparison's frames
};

// The plan from a comparison's differences and this directory's tree
// (pure: tested without a server).
JoinPlan plan_join(const replicator::tree::Node& local, const std::vector<replicator::Difference>& diffs);

// Compares the directory open as `root_fd` with the fileset on the first
// of `shipping.servers`, through a connection of its own that sends
// nothing (a Shipper with send = false), made and ended here. Fails when
// the server does not answer within `timeout`.
Result<JoinPlan> compare_for_join(int root_fd, replicator::ShipperOptions shipping,
                                  const std::vector<std::string>& excludes, std::chrono::milliseconds timeout);

}  // namespace iz::agent
