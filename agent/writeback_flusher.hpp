#pragma once
// Has the kernel write back every dirty page of the watched filesystem
// (syncfs), on a thread of its own, for `izwatch sync`.
//
// A store through a shared mapping into a page that is already dirty (a
// write(2) left it so) raises no event when it is made: the eBPF safety net
// sees it only when the kernel writes that page back, which its flusher does
// some 30 s later. A sync that answered before then would say "done" with
// the replica still different. Writing back now makes those events fire now;
// once the flush returns they wait in the ring buffer, and the sync journals
// them before it takes its LSN.
//
// The flush may take a while on a busy filesystem (it writes everything that
// is dirty there), so it runs beside the capture loop, never in it. Requests
// that come while a flush runs share the next one.
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/error.hpp"

namespace iz::agent {

class WritebackFlusher {
public:
    // `fs_fd`: any descriptor on the filesystem (duplicated: the caller keeps
    // its own); `path` names it in messages.
    static Result<std::unique_ptr<WritebackFlusher>> start(int fs_fd, std::string path);
    ~WritebackFlusher();
    WritebackFlusher(const WritebackFlusher&) = delete;
    WritebackFlusher& operator=(const WritebackFlusher&) = delete;

    // A ticket, answered once a flush that began after this call has ended.
    uint64_t request();
    // Readable (eventfd) when a flush has ended.
    int fd() const { return event_fd_; }
    struct Done {
        uint64_t through = 0;          // every ticket up to this one is answered
        std::optional<Error> failure;  // the last flush failed (syncfs's errno)
    };
    // Clears fd()'s readiness and says what has ended so far.
    Done take();

private:
    WritebackFlusher(int fs_fd, int event_fd, std::string path);
    void run();

    int fs_fd_;
    int event_fd_;
    std::string path_;
    std::mutex mu_;
    std::condition_variable cv_;
    uint64_t requested_ = 0;
    uint64_t done_ = 0;
    std::optional<Error> failure_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace iz::agent
