#include "izlog/stats.hpp"

#include <fmt/format.h>

#include "izlog/render.hpp"

namespace iz::izlog {

void StatsCollector::add(const journal::Record& r) {
    if (records_ == 0) {
        first_ns_ = r.time_ns;
        first_lsn_ = r.lsn;
    }
    last_ns_ = r.time_ns;
    last_lsn_ = r.lsn;
    ++records_;
    ++per_op_[r.op];
    if (r.op == journal::Op::write)
        for (auto& g : r.ranges) bytes_written_ += g.length;
}

std::string StatsCollector::report(const std::vector<journal::SegmentInfo>& segments) const {
    uint64_t disk = 0;
    for (auto& s : segments) disk += s.file_bytes;
    std::string out;
    out += fmt::format("records:       {}\n", records_);
    if (records_) {
        out += fmt::format("lsn range:     {}..{}\n", first_lsn_, last_lsn_);
        out += fmt::format("time span:     {} .. {} ({:.3f} s)\n", rfc3339_utc(first_ns_), rfc3339_utc(last_ns_),
                           static_cast<double>(last_ns_ - first_ns_) / 1e9);
    }
    out += fmt::format("bytes written: {}\n", bytes_written_);
    out += fmt::format("segments:      {}\n", segments.size());
    out += fmt::format("disk usage:    {} bytes ({:.1f} MiB)\n", disk, static_cast<double>(disk) / (1 << 20));
    out += "per op:\n";
    for (auto& [op, n] : per_op_) out += fmt::format("  {:<12} {}\n", journal::op_name(op), n);
    return out;
}

}  // namespace iz::izlog
