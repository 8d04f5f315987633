#pragma once
// How far the agent's journal is durable, as its writer reports it. The
// shipper sends nothing past this mark: a record read from the page cache
// before the journal's fdatasync can vanish with the machine, and after the
// restart its LSN goes to another record, which a server that applied the
// first would then skip as already applied.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace iz::replicator {

class DurableMark {
public:
    // Any thread; the mark never goes back.
    void advance(uint64_t lsn) {
        uint64_t prev = lsn_.load();
        while (lsn > prev && !lsn_.compare_exchange_weak(prev, lsn)) {
        }
        if (lsn > prev) wake();
    }

    uint64_t get() const { return lsn_.load(); }

    // Returns once `lsn` is durable (true), or after `timeout` or a wake()
    // (false).
    bool wait_for(uint64_t lsn, std::chrono::milliseconds timeout) {
        std::unique_lock lock(mu_);
        uint64_t woken = wakes_;
        cv_.wait_for(lock, timeout, [&] { return lsn_.load() >= lsn || wakes_ != woken; });
        return lsn_.load() >= lsn;
    }

    void wake() {
        std::lock_guard lock(mu_);
        ++wakes_;
        cv_.notify_all();
    }

private:
    std::atomic<uint64_t> lsn_{0};
    std::mutex mu_;
    std::condition_variable cv_;
    uint64_t wakes_ = 0;
};

}  // namespace iz::replicator
