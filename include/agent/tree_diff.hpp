#pragma once
// The records that turn the tree a replica holds into the tree as it is:
// what a restart, a reopened journal or a rescan after a queue overflow
// journals. Entries are matched by identity (their file handle), not by
// name, so what moved is journaled as moved.
#include <vector>

#include "agent/tree_state.hpp"
#include "journal/record.hpp"

namespace iz::agent {

// `before` is what the replicas hold once they have applied the journal;
// `after` is a fresh scan. The records, applied in order by a replica that
// holds `before`, give it `after`:
//  - one object (same handle and type) under other names is renamed there
//    (a directory with its subtree, in one record); a name it gained is a
//    link to one it has, a name it lost is unlinked;
//  - an object gone is removed by the names and types the replica holds,
//    what lies beneath a directory first (unlinks and rmdirs, never a
//    removal of a non-empty directory);
//  - a new object is created parents first, with its content, at a name no
//    other entry holds any more (a name still needed by an entry that moves
//    away is freed first; two entries that swapped names are exchanged in
//    one record, which a server replaying it finds done; longer cycles go
//    through a temporary name at the root);
//  - an entry of the same type that took the name of one that is gone
//    (a file saved by writing a new one and renaming it over the old) is
//    treated as that one, its content compared;
//  - content travels only when size or mtime differ (or the replica's is
//    not known): a whole-file write, which the shipper sends as the blocks
//    that differ; attributes and xattrs that differ follow.
std::vector<journal::Record> diff_trees(const Tree& before, const Tree& after);

}  // namespace iz::agent
