#include "segment_format.hpp"

#include <xxhash.h>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace iz::journal::format {

SegmentHeader make_segment_header(uint64_t base_lsn, int64_t first_time_ns) {
    SegmentHeader h{};
    std::memcpy(h.magic, kSegmentMagic, sizeof h.magic);
    h.version = kFormatVersion;
    h.header_bytes = static_cast<uint32_t>(kSegmentHeaderBytes);
    h.base_lsn = base_lsn;
    h.first_time_ns = first_time_ns;
    h.checksum = XXH3_64bits(&h, offsetof(SegmentHeader, checksum));
    return h;
}

Status check_segment_header(const SegmentHeader& h, std::string_view path) {
    if (std::memcmp(h.magic, kSegmentMagic, sizeof h.magic) != 0)
        return fail(make_error(fmt::format("'{}' is not a journal segment (bad magic)", path)));
    if (h.checksum != XXH3_64bits(&h, offsetof(SegmentHeader, checksum)))
        return fail(make_error(fmt::format("segment header of '{}' is corrupt (checksum mismatch)", path)));
    if (h.version != kFormatVersion)
        return fail(make_error(fmt::format("segment '{}' has format version {}, this build reads {}", path,
                                           h.version, kFormatVersion)));
    if (h.header_bytes != kSegmentHeaderBytes)
        return fail(make_error(fmt::format("segment '{}' has an unexpected header size {}", path, h.header_bytes)));
    return {};
}

uint64_t frame_checksum(const FrameHeader& h, std::string_view payload) {
    // The header's hash seeds the payload's: one pass over each, no state.
    uint64_t seed = XXH3_64bits(&h, offsetof(FrameHeader, checksum));
    return XXH3_64bits_withSeed(payload.data(), payload.size(), seed);
}

void append_frame(std::string& out, uint64_t lsn, int64_t time_ns, uint8_t op, uint8_t flags,
                  std::string_view payload) {
    FrameHeader h{};
    h.payload_bytes = static_cast<uint32_t>(payload.size());
    h.op = op;
    h.flags = flags;
    h.lsn = lsn;
    h.time_ns = time_ns;
    h.checksum = frame_checksum(h, payload);
    out.append(reinterpret_cast<const char*>(&h), sizeof h);
    out.append(payload);
}

void mark_batch_start(char* frame) {
    FrameHeader h;
    std::memcpy(&h, frame, sizeof h);
    if (h.flags & kBatchStart) return;
    h.flags |= kBatchStart;
    h.checksum = frame_checksum(h, std::string_view(frame + sizeof h, h.payload_bytes));
    std::memcpy(frame, &h, sizeof h);
}

std::string segment_file_name(uint64_t base_lsn) { return fmt::format("{:016x}.izj", base_lsn); }

std::optional<uint64_t> parse_segment_file_name(std::string_view name) {
    if (name.size() != 20 || name.substr(16) != ".izj") return std::nullopt;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(name.data(), name.data() + 16, v, 16);
    if (ec != std::errc() || p != name.data() + 16) return std::nullopt;
    return v;
}

Result<std::vector<SegmentFile>> list_segments(const std::filesystem::path& dir) {
    std::vector<SegmentFile> out;
    std::error_code ec;
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) return fail(Error{fmt::format("read journal directory '{}': {}", dir.string(), ec.message()), ec.value()});
    for (auto& entry : it) {
        auto base = parse_segment_file_name(entry.path().filename().string());
        if (base) out.push_back({entry.path(), *base});
    }
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.base_lsn < b.base_lsn; });
    return out;
}

}  // namespace iz::journal::format
