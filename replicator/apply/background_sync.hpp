#pragma once
// One durability job at a time, on a thread of its own: syncfs of a fileset
// root's filesystem, then fdatasync of a log kept beside it. A commit on the
// server costs a syncfs of tens of milliseconds while a burst is written;
// made here, the applying thread goes on applying what arrives meanwhile.
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace iz::replicator {

class BackgroundSync {
public:
    BackgroundSync() = default;
    ~BackgroundSync();
    BackgroundSync(const BackgroundSync&) = delete;
    BackgroundSync& operator=(const BackgroundSync&) = delete;

    // Starts syncfs(root_fd) then fdatasync(log); `done` is called on the
    // job's thread when both have returned. Only once the previous job's
    // outcome was taken; root_fd must stay open until then. `what` names
    // the root in error messages.
    void start(int root_fd, UniqueFd log, std::string what, std::function<void()> done);
    // The outcome of the job, once it has finished (nullopt before).
    std::optional<Status> take();
    // Waits for the job and returns its outcome.
    Status wait();

private:
    void run();

    std::mutex mu_;
    std::condition_variable cv_;
    std::thread thread_;
    bool stopping_ = false;
    bool queued_ = false;   // a job for the thread to run
    bool started_ = false;  // started, outcome not taken
    std::optional<Status> outcome_;
    int root_fd_ = -1;
    UniqueFd log_;
    std::string what_;
    std::function<void()> done_;
};

}  // namespace iz::replicator
