#pragma once
// Shared filesets, send-receive mode: applies beneath the watched directory
// what a server forwards (the other agents' changes), journals each applied
// change with its origin, and keeps the cursor in the server's fileset
// journal.
//
// Promises:
//  - Forwards are applied in the order received, on a thread of the
//    receiver's own (the shipper's network thread only queues them), with
//    the server's applier (beneath the root, whole content atomically).
//  - The cursor (cursor(), applied()) moves past a record only once what it
//    applied is durable (Applier::commit: syncfs, then the applied LSN
//    fsynced in the receiver's state directory); it survives restarts.
//  - Each applied change becomes one journal record with its origin and
//    origin_lsn (Record::origin), which the shipper never sends back; the
//    capture does not journal this process's own changes (see
//    Capture::ignore_changes_of), so nothing comes back as a local change.
//  - A forward never overwrites a local change the server has not yet
//    acknowledged: one whose path or target has such a change waits (and
//    every forward after it, to keep the order) until the server acked it.
//    Deferring rather than keeping both here: the server orders the
//    fileset and decides every conflict once (conflict_resolver.hpp there).
//    Once the local change is acked, the server has it, either as the new
//    version (it saw what the forward brings: a forward of it is on the
//    way) or kept aside as a conflict copy (forwarded here after this
//    forward); applying the forward then loses nothing. Applied earlier, it
//    would replace the local version before it was read to be sent.
//  - seen() is the last server LSN applied (durable or not): what a local
//    change captured now had seen (Record::seen).
//  - Conflicts the server forwards are journaled and counted (conflicts()).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <variant>

#include "common/error.hpp"
#include "journal/writer.hpp"
#include "replicator/apply/apply.hpp"
#include "replicator/ship/shipper.hpp"

namespace iz::agent {

struct ReceiverOptions {
    std::filesystem::path root;       // the watched directory
    std::filesystem::path state_dir;  // the applier's state and the cursor
    std::string agent_id;             // the applier's host name (the server names conflict copies)
    // Appends one record to this agent's journal (the caller's writer, under
    // its lock); an error is logged, not fatal.
    std::function<Status(journal::Record)> journal;
    // Called after the cursor moved (any thread): wakes pending syncs.
    std::function<void()> moved;
    // The LSN (in this agent's journal) of the latest local change of
    // `path` or `target` the server has not acknowledged; 0 for none.
    std::function<uint64_t(const std::string& path, const std::string& target)> unacked_local;
    // Waits up to `timeout` for the server to acknowledge `lsn`; true once it has.
    std::function<bool(uint64_t lsn, std::chrono::milliseconds timeout)> wait_acked;
};

class Receiver final : public replicator::ForwardSink {
public:
    static Result<std::shared_ptr<Receiver>> open(ReceiverOptions options);
    ~Receiver() override;

    uint64_t cursor() override { return applied_.load(); }
    void on_connected() override;
    void on_forward(replicator::proto::Forward f) override;

    // The server LSN applied durably here.
    uint64_t applied() const { return applied_.load(); }
    // The last failure to apply (empty when none), for status and sync.
    std::string last_error() const;
    uint64_t seen() const { return seen_.load(); }
    // Conflicts the server forwarded since start.
    uint64_t conflicts() const { return conflicts_.load(); }
    void stop();

private:
    explicit Receiver(ReceiverOptions o) : opts_(std::move(o)) {}
    void run();
    void apply(const replicator::proto::Forward& f, bool last_queued);

    ReceiverOptions opts_;
    std::unique_ptr<replicator::Applier> applier_;
    std::atomic<uint64_t> applied_{0};
    std::atomic<uint64_t> seen_{0};
    std::atomic<uint64_t> conflicts_{0};
    // Blocks until the local changes a forward would overwrite are
    // acknowledged; false when stopping.
    bool wait_for_local(const replicator::proto::OpMsg& op);
    struct Restart {};  // a new connection: what came in part is void
    using Item = std::variant<replicator::proto::Forward, Restart>;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Item> queue_;
    bool stopping_ = false;
    std::string last_error_;
    uint64_t uncommitted_ = 0;  // last complete record applied, not yet committed
    std::thread thread_;
};

}  // namespace iz::agent
