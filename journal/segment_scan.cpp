#include "segment_scan.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
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

bool MappedSegment::later_batch_exists(uint64_t bad_offset, uint64_t min_lsn, uint64_t* examined) const {
    // Frames are not aligned, so every byte position is a candidate. But a
    // frame that starts a batch has a nonzero flags byte, and what follows a
    // torn batch at the write head is zeros: in a preallocated segment mostly
    // unwritten extents, which the filesystem reports as holes (SEEK_DATA)
    // without anything being read. Inside data, zero words are skipped eight
    // bytes at a time, and only positions whose flags byte marks a batch
    // start get their header checked. Meeting the write head thus costs the
    // few pages written around it, not the rest of the segment.
    constexpr uint64_t kFlagsAt = offsetof(FrameHeader, flags);
    uint64_t scanned = 0;
    auto done = [&](bool found) {
        if (examined) *examined = scanned;
        return found;
    };
    if (size_ < kFrameHeaderBytes || bad_offset + 1 > size_ - kFrameHeaderBytes) return done(false);
    uint64_t p = bad_offset + 1 + kFlagsAt;               // flags byte of the first candidate
    const uint64_t p_end = size_ - kFrameHeaderBytes + kFlagsAt + 1;  // past the last one's
    const uint64_t max_lsn = min_lsn + size_ / kFrameHeaderBytes;
    while (p < p_end) {
        uint64_t region_end = p_end;
        off_t data = ::lseek(fd_, static_cast<off_t>(p), SEEK_DATA);
        if (data < 0 && errno == ENXIO) break;  // nothing but holes from here on
        if (data >= 0) {
            // Any other failure (no support for holes): read everything.
            p = std::max(p, static_cast<uint64_t>(data));
            if (p >= p_end) break;
            off_t hole = ::lseek(fd_, static_cast<off_t>(p), SEEK_HOLE);
            if (hole >= 0) region_end = std::min(p_end, std::max(p + 1, static_cast<uint64_t>(hole)));
        }
        scanned += region_end - p;
        while (p < region_end) {
            if ((p & 7) == 0 && p + 8 <= region_end) {
                uint64_t word;
                std::memcpy(&word, data_ + p, sizeof word);
                if (word == 0) {
                    p += 8;
                    continue;
                }
            }
            if (static_cast<uint8_t>(data_[p]) & format::kBatchStart) {
                uint64_t off = p - kFlagsAt;
                FrameHeader h;
                std::memcpy(&h, data_ + off, sizeof h);
                if (h.lsn >= min_lsn && h.lsn <= max_lsn && h.payload_bytes <= format::kMaxPayloadBytes &&
                    h.reserved == 0 && read_at(off).status == FrameStatus::ok)
                    return done(true);
            }
            ++p;
        }
    }
    return done(false);
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
            bool later = seg.later_batch_exists(offset, expected_lsn, &out.later_search_bytes);
            // The writer starts a batch only once the one before it is
            // written in full. A reader following a live journal can catch a
            // frame mid-write and find the next batch already there when it
            // looks further: if a second look finds the frame whole, it was
            // torn only in the first view.
            if (later) {
                FrameRead again = seg.read_at(offset);
                if (again.status == FrameStatus::ok && again.header.lsn == expected_lsn) f = again;
            }
            if (f.status == FrameStatus::bad) {
                out.damaged = true;
                out.bad_offset = offset;
                out.expected_lsn = expected_lsn;
                out.why = f.why;
                out.corrupt = later;
                break;
            }
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
