#pragma once
// The journal writer: many threads append, one committer thread writes
// batches with io_uring and makes them durable with fdatasync (group commit).
//
// Promises:
//  - LSNs are assigned in append order, contiguous, starting after the last
//    record already in the journal.
//  - append() never waits for a sync; it waits only when the pending buffer is
//    over its limit (back-pressure), never for disk latency of others.
//  - A record is reported durable (durable_lsn(), wait_durable(), callback)
//    only after the fdatasync covering it completed.
//  - On a write error (full disk, I/O error) nothing after the last durable
//    record is reported durable; the writer turns failed and every pending and
//    later append fails with the error. Reopening recovers: the torn tail is
//    cut and appending continues after the last complete record.
//  - Exactly one writer per journal directory (an flock on journal.lock).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>

#include "common/error.hpp"
#include "journal/record.hpp"
#include "journal/retention.hpp"

namespace iz::journal {

struct WriterOptions {
    std::filesystem::path dir;
    // A segment is sealed and a new one started once it would exceed this.
    uint64_t segment_bytes = 64ull << 20;
    // Largest single write handed to the kernel.
    uint64_t max_batch_bytes = 4ull << 20;
    // append() blocks while this many bytes wait for the committer.
    uint64_t max_pending_bytes = 64ull << 20;
    // false: never fdatasync (tests, or a caller that syncs by other means).
    bool sync = true;
    // Reserve each segment's space up front (fallocate), so a full disk shows
    // up when a segment is created rather than in the middle of a record.
    bool preallocate = true;
    // Called on the committer thread each time the durable LSN moves, with
    // the new one (for a reader in the same process that must not go past
    // it). Keep it short; it must not call into the writer. An exception
    // it throws is dropped.
    std::function<void(uint64_t durable_lsn)> on_durable;
    // How long open() waits for another writer's lock to go before it
    // fails. The lock belongs to the open lock file, so a writer that was
    // killed holds it until the kernel has released every file of its
    // process, not when the kill lands: an exiting process releases its
    // files one after another, and izwatch's eBPF links (an RCU tasks-trace
    // grace period each) and fanotify group (freeing its queue) take most
    // of a second (0.7-0.8 s measured) before the lock file's turn comes.
    std::chrono::milliseconds lock_wait{0};
};

// Called on the committer thread once the record's fate is known: OK when
// durable, an Error when it can no longer become durable. Keep it short. An
// exception it throws is dropped: the records after it are still written
// and their callbacks called.
using DurableCallback = std::function<void(uint64_t lsn, const Status& status)>;

struct WriterStats {
    uint64_t records = 0;
    uint64_t bytes = 0;
    uint64_t batches = 0;
    uint64_t syncs = 0;
};

class Writer {
public:
    // Creates the directory if needed, recovers the tail (cutting a torn last
    // batch), and starts the committer thread.
    static Result<std::unique_ptr<Writer>> open(WriterOptions options);

    virtual ~Writer() = default;

    // Stamps rec.lsn (and rec.time_ns when it is 0) and queues it.
    virtual Result<uint64_t> append(Record rec) = 0;
    virtual Result<uint64_t> append(Record rec, DurableCallback on_durable) = 0;

    // Between hold() and release(), appends do not wake the committer
    // thread (unless a batch's worth is pending or someone waits for
    // durability): a burst of records, such as one read of an event queue,
    // then goes to disk as one write instead of costing a thread wake-up
    // (two context switches) per record. release() wakes it.
    virtual void hold() = 0;
    virtual void release() = 0;

    // Blocks until `lsn` is durable or can no longer become so.
    virtual Status wait_durable(uint64_t lsn) = 0;
    virtual Status wait_durable_for(uint64_t lsn, std::chrono::milliseconds timeout) = 0;
    // Everything appended so far is durable.
    virtual Status flush() = 0;

    // Last LSN assigned (0 when the journal is empty) and last durable LSN.
    virtual uint64_t head_lsn() const = 0;
    virtual uint64_t durable_lsn() const = 0;
    virtual WriterStats stats() const = 0;
    // The error that failed the writer, if it has.
    virtual std::optional<Error> failure() const = 0;

    // Deletes sealed segments whose every record has an LSN below `lsn` and
    // a time before `older_than_ns`. The active segment always stays.
    // Returns the number of segments removed.
    virtual Result<size_t> drop_segments_below(uint64_t lsn, int64_t older_than_ns = INT64_MAX) = 0;
    // drop_segments_below(the consumers' horizon, now - policy.history);
    // nothing goes while no consumer is registered.
    virtual Result<size_t> apply_retention(const RetentionPolicy& policy) = 0;

    // Flushes and stops the committer. Idempotent; the destructor calls it.
    virtual Status close() = 0;
};

}  // namespace iz::journal
