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
#include <atomic>
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
    std::string agent_id;             // names conflict copies (none yet: see Applier::share)
    // Appends one record to this agent's journal (the caller's writer, under
    // its lock); an error is logged, not fatal.
    std::function<Status(journal::Record)> journal;
    // Called after the cursor moved (any thread): wakes pending syncs.
    std::function<void()> moved;
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
    void stop();

private:
    explicit Receiver(ReceiverOptions o) : opts_(std::move(o)) {}
    void run();
    void apply(const replicator::proto::Forward& f, bool last_queued);

    ReceiverOptions opts_;
    std::unique_ptr<replicator::Applier> applier_;
    std::atomic<uint64_t> applied_{0};
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
