#pragma once
// Exact dirty byte ranges from inside the kernel. Tracepoint programs on the
// ext4 and XFS write, truncate, fallocate, punch-hole and zero-range paths,
// filtered in the kernel to one filesystem's device, report (ino, offset,
// length) and who did it through a ring buffer. Where the kernel refuses BPF
// (lockdown, no capability), open() fails with the reason and the agent runs
// on fanotify alone.
//
// What arrives, per syscall that changes content on the watched filesystem:
//  - write: XFS gives one event per write call (the requested range); ext4
//    one per page-cache folio written (the bytes copied), so a write that
//    crosses folio boundaries comes in adjacent pieces. Sequential writes
//    measured on 6.18: about one event per write call plus one per page
//    boundary crossed (1 per MiB in 1 MiB writes, 256 per MiB in 4 KiB
//    writes). Direct I/O (also libaio and io_uring): one event per call.
//  - clone, dedupe and copy_file_range sharing extents on XFS: a write
//    event with the destination range.
//  - stores through a shared mapping: an `unknown` event when a store
//    dirties a clean folio (on XFS: at every write fault), and again when
//    the writeback of an inode faulted in through a mapping starts and ends
//    (later stores into a folio already dirty fault no more). On ext4 a
//    store into a folio that a write(2) left dirty raises none until then.
//    Faults alone (reading through a mapping) raise none.
//  - truncate, ftruncate and open with O_TRUNC of an existing file (on ext4
//    only when it held data): one truncate event with the new size, only
//    when the call succeeded.
//  - fallocate: one event, its kind from the mode (punch hole, zero range,
//    collapse, insert, else fallocate), with the call's offset and length.
//  - a truncate or fallocate that failed once the filesystem had begun on
//    it: an `unknown` event (ext4 moves the mtime of some it refuses).
// Events of one thread arrive in the order its syscalls ran.
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/error.hpp"

namespace iz::agent {

// The same numbers as IZ_DIRTY_* in bpf/capture_events.h (static_asserts in
// bpf_capture.cpp fail the build when they differ).
enum class DirtyKind : uint8_t {
    write = 1,
    truncate,
    fallocate,
    punch_hole,
    zero_range,
    collapse_range,  // bytes after offset moved down by length: the tail is dirty
    insert_range,    // bytes after offset moved up by length: the tail is dirty
    // Not a range: process `pid` ended. Carries its comm and ids so that
    // namespace events of short-lived processes can still be attributed.
    process_exit,
    // Not a range: the file changed in a way no range describes (stores
    // through a shared mapping, or a truncate or fallocate that failed
    // after it had changed the file): compare the whole file, read its
    // attributes again.
    unknown,
};

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
    // st_dev of the watched directory, on ext4 or XFS). Fails with the reason
    // (what the kernel refused and its errno text) where BPF is not allowed:
    // the caller then runs on fanotify alone. Files that process `own_pid`
    // maps are not watched for stores through the mapping: the agent maps
    // only its own journal, to read it (0: every process's mappings are).
    static Result<std::unique_ptr<BpfCapture>> open(dev_t dev, pid_t own_pid = 0);
    virtual ~BpfCapture() = default;

    // Readable when events are waiting (for epoll).
    virtual int fd() const = 0;
    // Delivers every waiting event; returns how many.
    virtual Result<size_t> consume(const std::function<void(const DirtyRangeEvent&)>& sink) = 0;
    virtual BpfCaptureStats stats() const = 0;
    // How many inodes the safety net for stores through shared mappings
    // remembers now: each was faulted in through a mapping (or dirtied
    // without a write) and its inode not yet evicted; at most
    // kMappedFilesCapacity, the least recently faulted going first. Walks
    // the kernel's map: for tests and diagnostics, not for every event.
    virtual size_t mapped_files() const = 0;
    static constexpr size_t kMappedFilesCapacity = 8192;  // IZ_MAPPED_FILES
    // Human-readable list of attached tracepoints, for `izwatch status`.
    virtual std::string description() const = 0;
};

}  // namespace iz::agent
