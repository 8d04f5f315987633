#pragma once
// The journal records that make a replica's entry what the source holds,
// after a verification found it different (verify_compare.hpp). They ship
// like any others; the first is a `repair` record naming what differed, so
// that izlog shows each repair and the server takes what follows for a
// repair, not for a conflict.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "journal/record.hpp"
#include "replicator/fs/tree_hash.hpp"
#include "replicator/fs/verify_compare.hpp"

namespace iz::agent {

// `source`: the source's entry at d.path as it is now (nullopt: gone).
// `replica`: the replica's entries at and beneath d.path, parents first
// (what must go when the source has nothing there, or another type).
// A file that is another name of one before it in walk order (its link
// group) is linked to that name rather than sent again; repairs must be
// journaled in walk order (tree::walk_order_less), so that the first name
// of a group is repaired before the others are linked to it.
std::vector<journal::Record> repair_records(const replicator::Difference& d, const std::optional<replicator::tree::Node>& source,
                                            const std::vector<std::pair<std::string, replicator::tree::EntryMeta>>& replica);

// Moves the records that set a directory's attributes (its mtime among
// them) after every other record of a repair, keeping each group's order:
// an entry made, removed or renamed in a directory moves its mtime, and a
// repair lists the directory (walk order) before what differs beneath it.
void directory_times_last(std::vector<journal::Record>& records);

}  // namespace iz::agent
