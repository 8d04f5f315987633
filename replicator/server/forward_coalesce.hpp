#pragma once
// Repeated writes of one file pending for one subscriber (shared filesets):
// a forward reads the file as it is when sent, so the later write's
// forward carries the earlier one's bytes too once it covers its ranges.
//
// Promises:
//  - coalesce_writes() marks a write record of `batch` to be passed over
//    when a later write record of the batch forwarded to `subscriber` (not
//    its own) names the same path and no record between them names that
//    path (as path or target) or is the subscriber's own record of it:
//    the same file where the subscriber applies them (not the same handle:
//    the server replaces a file it patches, so each write names another). The later record then names the union of both ranges,
//    or none (the whole file) when either did or when the earlier one's
//    LSN is at or below `whole_through` (the subscriber asked for those
//    whole). Records other than writes are never passed over.
//  - The order of everything else is kept; the cursor still moves past
//    what is passed over (the later record is sent after it).
#include <cstdint>
#include <string>
#include <vector>

#include "journal/record.hpp"

namespace iz::replicator {

// One flag per record of `batch`: true where it is passed over.
std::vector<bool> coalesce_writes(std::vector<journal::Record>& batch, const std::string& subscriber,
                                  uint64_t whole_through);

}  // namespace iz::replicator
