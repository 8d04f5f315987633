#pragma once
// Where an open file has data and where it has holes, as the filesystem
// tells with lseek SEEK_DATA/SEEK_HOLE, so that holes are neither read,
// hashed, sent nor written.
//
// Promises:
//  - The extents are in order, do not overlap and lie within [from, to);
//    what lies between them reads as zeros.
//  - Where the filesystem cannot tell (no SEEK_DATA), all of it is data.
//  - Unwritten (preallocated) extents are whatever the filesystem reports:
//    ext4 and XFS report those with no data in the page cache as holes,
//    tmpfs as data. Either way the bytes read the same.
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace iz::replicator {

struct DataExtent {
    uint64_t offset = 0;
    uint64_t length = 0;
    uint64_t end() const { return offset + length; }
};

// The data extents of [from, to) of `fd`; `what` names the file in errors.
// `end`, when given, is set to where the range ends in the file as it is
// now: short of `to` when the file has shrunk below it.
Result<std::vector<DataExtent>> data_extents(int fd, uint64_t from, uint64_t to, const std::string& what,
                                             uint64_t* end = nullptr);

// Whether [from, to) of `extents` (as data_extents gave them) holds any data.
bool has_data(const std::vector<DataExtent>& extents, uint64_t from, uint64_t to);

// Whether all `len` bytes at `p` are zero.
bool all_zero(const char* p, size_t len);

}  // namespace iz::replicator
