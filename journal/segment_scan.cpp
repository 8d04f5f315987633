#include "segment_scan.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstring>
#include <utility>

namespace iz::journal {

using format::FrameHeader;
using format::kFrameHeaderBytes;

Result<MappedSegment> MappedSegment::open(const std::filesystem::path& path) {
    MappedSegment seg;
    seg.path_ = path;
    seg.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (seg.fd_ < 0) return fail(sys_error("open segment", path.string(), errno));
    auto grown = seg.remap();
    if (!grown) return fail(grown.error());
    if (seg.size_ < sizeof(format::SegmentHeader))
        return fail(make_error(fmt::format("segment '{}' is shorter than its header ({} bytes)", path.string(), seg.size_)));
    std::memcpy(&seg.header_, seg.data_, sizeof seg.header_);
    if (auto ok = format::check_segment_header(seg.header_, path.string()); !ok) return fail(ok.error());
    return seg;
}

MappedSegment::MappedSegment(MappedSegment&& o) noexcept
    : path_(std::move(o.path_)),
      fd_(std::exchange(o.fd_, -1)),
      data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      header_(o.header_) {}

MappedSegment& MappedSegment::operator=(MappedSegment&& o) noexcept {
    if (this != &o) {
        this->~MappedSegment();
        new (this) MappedSegment(std::move(o));
    }
    return *this;
}

MappedSegment::~MappedSegment() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
}

Result<bool> MappedSegment::remap() {
    struct stat st{};
    if (::fstat(fd_, &st) != 0) return fail(sys_error("stat segment", path_.string(), errno));
    auto size = static_cast<uint64_t>(st.st_size);
    if (size <= size_) return false;
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) return fail(sys_error("map segment", path_.string(), errno));
    if (data_) ::munmap(const_cast<char*>(data_), size_);
    data_ = static_cast<const char*>(p);
    size_ = size;
    return true;
}

FrameRead MappedSegment::read_at(uint64_t offset) const {
    FrameRead r;
    if (offset == size_) return r;  // end of file at a frame boundary
    if (offset + kFrameHeaderBytes > size_) {
        // A few trailing zero bytes are just the end; anything else is a cut frame.
        bool zeros = true;
        for (uint64_t i = offset; i < size_; ++i) zeros &= data_[i] == 0;
        if (zeros) return r;
        r.status = FrameStatus::bad;
        r.why = "frame header cut short";
        return r;
    }
    std::memcpy(&r.header, data_ + offset, sizeof r.header);
    static const FrameHeader zero{};
    if (std::memcmp(&r.header, &zero, sizeof zero) == 0) return r;
    r.status = FrameStatus::bad;
    if (r.header.payload_bytes > format::kMaxPayloadBytes) {
        r.why = "implausible payload length";
        return r;
    }
    if (offset + kFrameHeaderBytes + r.header.payload_bytes > size_) {
        r.why = "frame cut short";
        return r;
    }
    r.payload = std::string_view(data_ + offset + kFrameHeaderBytes, r.header.payload_bytes);
    if (format::frame_checksum(r.header, r.payload) != r.header.checksum) {
        r.why = "checksum mismatch";
        return r;
    }
    r.status = FrameStatus::ok;
    r.next_offset = offset + kFrameHeaderBytes + r.header.payload_bytes;
    return r;
}

bool MappedSegment::later_batch_exists(uint64_t bad_offset, uint64_t min_lsn) const {
    // Frames are not aligned, so every byte position is a candidate. This runs
    // only on damage, and cheap field checks reject almost every position
    // before a checksum is computed.
    for (uint64_t off = bad_offset + 1; off + kFrameHeaderBytes <= size_; ++off) {
        FrameHeader h;
        std::memcpy(&h, data_ + off, sizeof h);
        if (!(h.flags & format::kBatchStart) || h.lsn < min_lsn || h.lsn > min_lsn + (size_ / kFrameHeaderBytes) ||
            h.payload_bytes > format::kMaxPayloadBytes || h.reserved != 0)
            continue;
        if (read_at(off).status == FrameStatus::ok) return true;
    }
    return false;
}

ScanResult scan_frames(const MappedSegment& seg, uint64_t offset, uint64_t expected_lsn) {
    ScanResult out;
    for (;;) {
        FrameRead f = seg.read_at(offset);
        if (f.status == FrameStatus::ok && f.header.lsn != expected_lsn) {
            f.status = FrameStatus::bad;
            f.why = "LSN out of sequence";
        }
        if (f.status == FrameStatus::end) break;
        if (f.status == FrameStatus::bad) {
            out.damaged = true;
            out.bad_offset = offset;
            out.expected_lsn = expected_lsn;
            out.why = f.why;
            out.corrupt = seg.later_batch_exists(offset, expected_lsn);
            break;
        }
        out.entries.push_back({offset, f.header.lsn, f.header.time_ns});
        offset = f.next_offset;
        ++expected_lsn;
    }
    out.end_offset = offset;
    return out;
}

Error corruption_error(const MappedSegment& seg, const ScanResult& scan) {
    return make_error(fmt::format("corrupt record at LSN {} in segment '{}' at offset {}: {}", scan.expected_lsn,
                                  seg.path().string(), scan.bad_offset, scan.why));
}

}  // namespace iz::journal
