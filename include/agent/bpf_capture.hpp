#pragma once
// Exact dirty byte ranges from inside the kernel. Tracepoint programs on the
// ext4 and XFS write, truncate, fallocate, punch-hole and zero-range paths,
// filtered in the kernel to one filesystem's device, report (ino, offset,
// length) and who did it through a ring buffer. Where the kernel refuses BPF
// (lockdown, no capability), open() fails with the reason and the agent runs
// on fanotify alone.
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/error.hpp"

namespace iz::agent {

enum class DirtyKind : uint8_t { write = 1, truncate, fallocate, punch_hole, zero_range };

struct DirtyRangeEvent {
    uint64_t ino = 0;
    DirtyKind kind = DirtyKind::write;
    uint64_t offset = 0;  // truncate: the new size
    uint64_t length = 0;  // truncate: 0
    int32_t pid = 0;      // thread group id
    uint32_t uid = 0;
    uint32_t gid = 0;
    std::string comm;
    uint64_t time_ns = 0;  // CLOCK_MONOTONIC (bpf_ktime_get_ns)
};

struct BpfCaptureStats {
    uint64_t events = 0;
    uint64_t dropped = 0;  // ring buffer full: the agent must treat files as wholly dirty
};

class BpfCapture {
public:
    // Loads and attaches the programs, filtered to the filesystem `dev` (the
    // st_dev of the watched directory).
    static Result<std::unique_ptr<BpfCapture>> open(dev_t dev);
    virtual ~BpfCapture() = default;

    // Readable when events are waiting (for epoll).
    virtual int fd() const = 0;
    // Delivers every waiting event; returns how many.
    virtual Result<size_t> consume(const std::function<void(const DirtyRangeEvent&)>& sink) = 0;
    virtual BpfCaptureStats stats() const = 0;
    // Human-readable list of attached tracepoints, for `izwatch status`.
    virtual std::string description() const = 0;
};

}  // namespace iz::agent
