#include "background_sync.hpp"

#include <pthread.h>
#include <unistd.h>

namespace iz::replicator {

BackgroundSync::~BackgroundSync() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void BackgroundSync::start(int root_fd, UniqueFd log, std::string what, std::function<void()> done) {
    {
        std::lock_guard lock(mu_);
        root_fd_ = root_fd;
        log_ = std::move(log);
        what_ = std::move(what);
        done_ = std::move(done);
        outcome_.reset();
        queued_ = started_ = true;
        if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    }
    cv_.notify_all();
}

std::optional<Status> BackgroundSync::take() {
    std::lock_guard lock(mu_);
    if (!started_ || !outcome_) return std::nullopt;
    started_ = false;
    return std::exchange(outcome_, std::nullopt);
}

Status BackgroundSync::wait() {
    std::unique_lock lock(mu_);
    if (!started_) return {};
    cv_.wait(lock, [&] { return outcome_.has_value(); });
    started_ = false;
    return *std::exchange(outcome_, std::nullopt);
}

void BackgroundSync::run() {
    pthread_setname_np(pthread_self(), "iz-sync");
    std::unique_lock lock(mu_);
    for (;;) {
        cv_.wait(lock, [&] { return queued_ || stopping_; });
        // A job queued before the stop still runs: its caller waits for it.
        if (!queued_) return;
        queued_ = false;
        int root = root_fd_;
        int log = log_.get();
        std::string what = what_;
        lock.unlock();
        Status st;
        if (::syncfs(root) != 0) st = fail(sys_error("syncfs", what, errno));
        else if (log >= 0 && ::fdatasync(log) != 0) st = fail(sys_error("fdatasync the file memory of", what, errno));
        lock.lock();
        log_.reset();
        outcome_ = std::move(st);
        auto done = std::move(done_);
        done_ = nullptr;
        lock.unlock();
        cv_.notify_all();
        // Outside the lock: it may post work that calls take() at once. No
        // exception leaves this thread: the outcome is taken by the next
        // commit or the applier's end even if no one is told.
        try {
            if (done) done();
        } catch (...) {
        }
        lock.lock();
    }
}

}  // namespace iz::replicator
