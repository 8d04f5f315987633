#pragma once
// The committer's side of a segment: creating one (header, preallocation,
// directory fsync) and making a buffer durable at an offset with io_uring
// (write linked to fdatasync). Owned by the committer thread only.
#include <liburing.h>

#include <cstdint>
#include <filesystem>
#include <string_view>

#include "common/error.hpp"

namespace iz::journal {

class SegmentWriter {
public:
    SegmentWriter() = default;
    SegmentWriter(const SegmentWriter&) = delete;
    SegmentWriter& operator=(const SegmentWriter&) = delete;
    ~SegmentWriter();

    Status init_ring();

    // Creates <dir>/<base>.izj with its header, reserves `reserve_bytes` when
    // asked, and makes the file and its directory entry durable.
    Status create(const std::filesystem::path& dir, int dir_fd, uint64_t base_lsn, int64_t first_time_ns,
                  uint64_t reserve_bytes, bool preallocate);
    // Continues an existing segment at `offset` (after recovery).
    Status adopt(const std::filesystem::path& path, uint64_t offset);

    // Writes `bytes` at the current offset and, when `sync`, fdatasyncs the
    // file; both through io_uring, linked so the sync follows the write.
    Status write_durably(std::string_view bytes, bool sync);
    Status sync_now();
    void close_file();

    bool is_open() const { return fd_ >= 0; }
    uint64_t offset() const { return offset_; }
    const std::filesystem::path& path() const { return path_; }

private:
    Result<int> submit_and_reap(unsigned expected, int* first_result);

    io_uring ring_{};
    bool ring_ready_ = false;
    int fd_ = -1;
    uint64_t offset_ = 0;
    std::filesystem::path path_;
};

}  // namespace iz::journal
