#pragma once
// The data of a forwarded write (shared filesets): what a subscriber is
// sent of the server's copy of a file for one write record.
//
// Promises:
//  - Whole: content_begin (base empty), then the file's data (where
//    SEEK_DATA finds it; holes are not read, and stay holes on the
//    receiver) in parts of at most kMaxExtentBytes, all with `more`.
//  - As ranges (`ranges` not empty): content_begin with base existing,
//    then, within each range clipped to the file's size, its data as
//    extents (read where SEEK_DATA finds data) and the rest as holes, at
//    most one extent and kMaxHolesPerPart holes a part. The receiver
//    patches its copy: equal to the server's once the records after it
//    have arrived too, provided its copy was the server's before them.
//  - Read now, not as the record left the file: a later version
//    converges, the records after it bring their own ranges.
//  - The caller adds content_end (size, attributes) itself.
#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "journal/record.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

inline constexpr size_t kMaxHolesPerPart = 1024;

// The parts (kind, base, more, extents, holes; the caller sets the rest):
// `fd` is the file, `size` its size now, `path` names it in errors.
Result<std::vector<proto::OpMsg>> forward_content(int fd, uint64_t size, const std::vector<journal::ByteRange>& ranges,
                                                  const std::string& path);

}  // namespace iz::replicator
