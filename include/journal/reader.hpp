#pragma once
// Reading a journal directory, possibly while a writer appends to it.
//
// Promises:
//  - Records come back exactly as appended, in LSN order (forwards) or
//    reverse LSN order (backwards).
//  - A torn last batch (a crash in the middle of a write) is the end of the
//    journal, not an error. Damage anywhere else is an Error naming the LSN,
//    the segment file and the byte offset: never skipped silently.
//  - wait() blocks (inotify, no polling) until the journal grows or the
//    timeout passes, so followers cost nothing while idle.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "common/error.hpp"
#include "journal/record.hpp"

namespace iz::journal {

struct SegmentInfo {
    std::filesystem::path path;
    uint64_t base_lsn = 0;      // LSN of its first record
    int64_t first_time_ns = 0;  // time of its first record
    uint64_t file_bytes = 0;    // bytes on disk (allocated)
};

class Reader {
public:
    static Result<std::unique_ptr<Reader>> open(const std::filesystem::path& dir);
    virtual ~Reader() = default;

    // Positioning. After seek_*, next() returns the first record at or after
    // the position and prev() the last one before it.
    virtual Status seek_head() = 0;
    virtual Status seek_tail() = 0;
    virtual Status seek_lsn(uint64_t lsn) = 0;
    // First record whose time is >= t (records are in time order as far as
    // the clock was; ties go to the lower LSN).
    virtual Status seek_time(int64_t time_ns) = 0;

    // nullopt at the end (or beginning, for prev()).
    virtual Result<std::optional<Record>> next() = 0;
    virtual Result<std::optional<Record>> prev() = 0;

    // Blocks until records may have been appended after the current end, or
    // the timeout passes. Returns true if the journal changed.
    virtual Result<bool> wait(std::chrono::milliseconds timeout) = 0;

    // Rescans the directory for segments (new ones, retention).
    virtual Status refresh() = 0;
    virtual std::vector<SegmentInfo> segments() const = 0;
};

struct VerifyReport {
    uint64_t records = 0;
    uint64_t first_lsn = 0;
    uint64_t last_lsn = 0;
    bool torn_tail = false;            // a torn last batch was seen (not an error)
    std::optional<Error> first_error;  // the first bad record, if any
    std::optional<uint64_t> first_bad_lsn;
};

// Checks every frame's checksum and the LSN sequence across all segments.
Result<VerifyReport> verify_journal(const std::filesystem::path& dir);

}  // namespace iz::journal
