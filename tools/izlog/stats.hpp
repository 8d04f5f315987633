#pragma once
// --stats: what a journal holds, in numbers.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "journal/reader.hpp"
#include "journal/record.hpp"

namespace iz::izlog {

class StatsCollector {
public:
    void add(const journal::Record& r);
    std::string report(const std::vector<journal::SegmentInfo>& segments) const;

private:
    std::map<journal::Op, uint64_t> per_op_;
    uint64_t records_ = 0;
    uint64_t bytes_written_ = 0;
    int64_t first_ns_ = 0, last_ns_ = 0;
    uint64_t first_lsn_ = 0, last_lsn_ = 0;
};

}  // namespace iz::izlog
