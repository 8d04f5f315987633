#pragma once
// fanotify on a whole filesystem with file-handle reporting: the namespace
// truth. Events arrive as parent-directory handle + name (and, for
// renames, both ends), which the capture turns into paths.
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "common/file_handle.hpp"

namespace iz::agent {

struct FanEvent {
    uint64_t mask = 0;
    int32_t pid = 0;
    // Parent directory handle (the key of the directory map) and the
    // entry's name; empty name = the event is on the directory itself.
    FileHandle dir_handle;
    std::string name;
    // FAN_RENAME: the destination side.
    FileHandle new_dir_handle;
    std::string new_name;
    // The object's own handle where reported (FID / target FID).
    FileHandle object_handle;
};

class FanotifySource {
public:
    // Marks the whole filesystem holding `dir`, with an event queue of
    // `queue_events` (0: the system's fs.fanotify.max_queued_events).
    // Fails with a reason a person can act on: not root, no FID support on
    // this filesystem, old kernel.
    static Result<std::unique_ptr<FanotifySource>> open(const std::string& dir, uint32_t queue_events = 0);

    FanotifySource(const FanotifySource&) = delete;
    FanotifySource& operator=(const FanotifySource&) = delete;
    ~FanotifySource();

    int fd() const { return fd_; }
    // The queue length the group got (0 when unknown), and why it is not
    // what was asked for ("" when it is).
    uint32_t queue_events() const { return queue_events_; }
    const std::string& queue_note() const { return queue_note_; }
    // Events waiting in the kernel's queue (FIONREAD; any thread), nullopt
    // when the kernel does not say. The kernel counts them by walking its
    // queue under the lock that adding an event takes: for status and
    // scrapes, not for every batch.
    std::optional<uint64_t> queued() const;
    // Reads what is queued (non-blocking) and hands each event over.
    // FAN_Q_OVERFLOW arrives as an event with that bit in `mask`.
    Result<size_t> drain(const std::function<void(const FanEvent&)>& sink);

private:
    FanotifySource() = default;
    int fd_ = -1;
    uint32_t queue_events_ = 0;
    std::string queue_note_;
};

}  // namespace iz::agent
