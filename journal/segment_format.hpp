#pragma once
// On-disk layout of a journal directory (private to the journal).
//
//   <dir>/<base_lsn as 16 hex digits>.izj   segment files
//   <dir>/journal.lock                      flock'd by the one writer
//   <dir>/consumers/<name>                  retention cursors
//
// A segment is a SegmentHeader padded to kSegmentHeaderBytes, then frames
// back to back. Space past the last frame reads as zeros (preallocated or
// end of file): a zero frame header is the end of the data.
//
// Frame: FrameHeader (32 bytes, little-endian) then the encoded record.
// The checksum is XXH3-64 of the payload, seeded with the XXH3-64 of the
// header's first 24 bytes: it covers both.
// kBatchStart marks the first frame of every write the committer issued; it
// lets recovery tell a torn last batch (cut) from damage to a batch that was
// followed by later ones (reported).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace iz::journal::format {

inline constexpr char kSegmentMagic[8] = {'I', 'Z', 'J', 'S', 'E', 'G', '0', '1'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint64_t kSegmentHeaderBytes = 4096;
inline constexpr uint32_t kMaxPayloadBytes = 16u << 20;
inline constexpr uint8_t kBatchStart = 0x01;

struct SegmentHeader {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    uint64_t base_lsn;
    int64_t first_time_ns;
    uint64_t checksum;  // XXH3-64 of the preceding 32 bytes
};
static_assert(sizeof(SegmentHeader) == 40);

struct FrameHeader {
    uint32_t payload_bytes;
    uint8_t op;
    uint8_t flags;
    uint16_t reserved;
    uint64_t lsn;
    int64_t time_ns;
    uint64_t checksum;
};
static_assert(sizeof(FrameHeader) == 32);
inline constexpr uint64_t kFrameHeaderBytes = sizeof(FrameHeader);

SegmentHeader make_segment_header(uint64_t base_lsn, int64_t first_time_ns);
// Validates magic, version and checksum.
Status check_segment_header(const SegmentHeader& h, std::string_view path);

uint64_t frame_checksum(const FrameHeader& h, std::string_view payload);
// Appends a complete frame (header + payload) to `out`.
void append_frame(std::string& out, uint64_t lsn, int64_t time_ns, uint8_t op, uint8_t flags,
                  std::string_view payload);
// Sets kBatchStart on the frame at `frame` (a pointer into a buffer) and
// recomputes its checksum.
void mark_batch_start(char* frame);

std::string segment_file_name(uint64_t base_lsn);
// Parses "<16 hex>.izj"; nullopt for anything else.
std::optional<uint64_t> parse_segment_file_name(std::string_view name);

struct SegmentFile {
    std::filesystem::path path;
    uint64_t base_lsn;
};
// Segment files of `dir`, sorted by base LSN.
Result<std::vector<SegmentFile>> list_segments(const std::filesystem::path& dir);

}  // namespace iz::journal::format
