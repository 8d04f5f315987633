#pragma once
// The byte ranges one shipped change of a file wrote (its extents and
// holes), gathered over the parts of its record, for the fileset journal's
// write record (Record::ranges): forwards send only those ranges.
//
// Promises:
//  - A content sequence (content_begin, content_data..., content_end of one
//    LSN and path) patching the server's copy (base existing) gives the
//    union of its extents and holes; one that starts from an empty file, a
//    part missing (a content_data without its beginning), or more than
//    kMaxRanges ranges give none: "the whole file", as Record::ranges says.
//  - A range write gives its own extents and holes when it is one part;
//    a write in several parts gives none (the whole file).
//  - One sequence per agent at a time: a content_begin starts it anew.
//  - Not thread-safe (the fileset journal calls it under its lock).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "journal/record.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

class WrittenRanges {
public:
    static constexpr size_t kMaxRanges = 4096;
    // Called with every applied part of `agent`'s operations. For the part
    // that ends a change (content_end, a write), returns its ranges (empty:
    // the whole file); for any other part, an empty list.
    std::vector<journal::ByteRange> add(const std::string& agent, const proto::OpMsg& op);

private:
    struct Pending {
        uint64_t lsn = 0;
        std::string path;
        bool whole = false;
        std::vector<journal::ByteRange> ranges;
    };
    std::map<std::string, Pending> pending_;  // per agent
    static void gather(Pending& p, const proto::OpMsg& op);
};

}  // namespace iz::replicator
