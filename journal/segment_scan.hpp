#pragma once
// Read access to one segment file and the frame-level rules shared by the
// reader, the writer's recovery and verify: what is a frame, what is the end
// of the data, and whether damage is a torn last batch or real corruption.
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "segment_format.hpp"

namespace iz::journal {

enum class FrameStatus {
    ok,   // a complete frame with a good checksum
    end,  // end of the data: zero header or end of file at a frame boundary
    bad,  // incomplete, implausible or checksum mismatch
};

struct FrameRead {
    FrameStatus status = FrameStatus::end;
    format::FrameHeader header{};
    std::string_view payload;
    uint64_t next_offset = 0;
    const char* why = "";  // for bad: what was wrong
};

struct IndexEntry {
    uint64_t offset;
    uint64_t lsn;
    int64_t time_ns;
};

// A read-only, shared mapping of a segment. Writes by the writer (same page
// cache) become visible without re-reading; remap() picks up a grown file.
class MappedSegment {
public:
    static Result<MappedSegment> open(const std::filesystem::path& path);
    MappedSegment() = default;
    MappedSegment(MappedSegment&&) noexcept;
    MappedSegment& operator=(MappedSegment&&) noexcept;
    ~MappedSegment();

    const std::filesystem::path& path() const { return path_; }
    const format::SegmentHeader& header() const { return header_; }
    uint64_t mapped_bytes() const { return size_; }

    // Maps the file again if it grew. Returns true if it did.
    Result<bool> remap();

    FrameRead read_at(uint64_t offset) const;

    // After damage at `bad_offset`: is there a complete frame flagged as a
    // batch start, with an LSN of at least `min_lsn`, further on? If so the
    // damaged batch was followed by later ones and the damage is corruption;
    // if not it is a torn last batch. Costs what lies in data (not holes)
    // after `bad_offset`, which at a live write head is a few pages: cheap
    // enough for a follower that meets a batch still being written.
    // `examined`, if given, receives the bytes it had to look at.
    bool later_batch_exists(uint64_t bad_offset, uint64_t min_lsn, uint64_t* examined = nullptr) const;

private:
    std::filesystem::path path_;
    int fd_ = -1;
    const char* data_ = nullptr;
    uint64_t size_ = 0;
    format::SegmentHeader header_{};
};

// The outcome of scanning a segment's frames from some point on.
struct ScanResult {
    std::vector<IndexEntry> entries;
    uint64_t end_offset = 0;  // where the valid data ends
    bool damaged = false;     // stopped at a bad frame
    bool corrupt = false;     // damaged, and later batches exist: an error
    uint64_t bad_offset = 0;
    uint64_t expected_lsn = 0;  // LSN the bad frame should have carried
    std::string why;
    uint64_t later_search_bytes = 0;  // looked at to tell torn from corrupt
};

// Scans frames from `offset`, expecting LSN `expected_lsn` first.
ScanResult scan_frames(const MappedSegment& seg, uint64_t offset, uint64_t expected_lsn);

// "corrupt record at LSN n in segment 'p' at offset o: why"
Error corruption_error(const MappedSegment& seg, const ScanResult& scan);

}  // namespace iz::journal
