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
//  - No forward is lost. One that fails in a way that may pass (the
//    applier's Outcome::failed: no space, an I/O error, a busy file) holds
//    the cursor before it: what came after it on that connection is
//    dropped, and after a backoff (kFirstRetry doubling to kMaxRetry) the
//    receiver has the connection made anew (ReceiverOptions::resubscribe),
//    so the server forwards again from the cursor and the record is tried
//    again, until it applies. The server keeps everything it forwards, so
//    holding nothing in memory meanwhile costs only the re-sending. Until
//    it applies, failure() names it (status, and every sync fails with it).
//  - One that can never apply here as it stands (Outcome::rejected or
//    refused: a name or size this filesystem refuses, a path it cannot
//    resolve beneath the root) would hold every later change back for
//    ever: it is passed over, but kept in permanent_failures(), durably
//    (the file `failed` in the state directory, written before the cursor
//    moves past it), so every sync fails naming it, across restarts, until
//    a later record of the fileset sets that path whole here (its whole
//    content, its removal, or a rename away from it) or forget_failures()
//    is called once the directory was made equal to the fileset.
//  - A write forwarded as ranges (protocol version 6) is patched over the
//    local copy only where that copy is what the receiver last left there
//    (Applier::left_unchanged); otherwise the receiver commits what it
//    applied and subscribes anew asking for every write through it whole,
//    so the local copy is replaced as before (and the rules below hold).
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
//  - Nor does it replace a file under its writer: a forward that would
//    replace or remove a regular file some local process holds open for
//    writing (open_writers.hpp) waits, and every forward after it, until
//    the writer closed; then what the capture read is journaled
//    (ReceiverOptions::settle_capture) and the forward waits for the
//    server to acknowledge that local change, as above: the conflict rules
//    keep both versions. The check is made again just before the forward
//    is applied (a whole content's end, where it replaces the file), so a
//    writer that opens the file meanwhile is waited for too. Set only with
//    settle_capture (send-receive).
//  - seen() is the last server LSN applied (durable or not): what a local
//    change captured now had seen (Record::seen).
//  - Conflicts the server forwards are journaled and counted (conflicts()).
//  - Receive-only (ReceiverOptions::local_change): a forward that would
//    replace or remove a path holding a local change first keeps the local
//    version beside it as NAME.conflict-<agent>-<time> (keep_local.hpp),
//    journals a conflict record naming both (no origin: it is this
//    agent's, and receive-only sends nothing), warns and counts it in
//    conflicts(). Only then is the forward applied. A copy that cannot be
//    made holds the forward as a failure that may pass: nothing of the
//    user's is replaced unkept.
#include <atomic>
#include <chrono>
#include <optional>
#include <set>
#include <vector>
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

// A forward this agent could not apply.
struct ReceiveFailure {
    uint64_t lsn = 0;  // the server's fileset-journal LSN
    std::string op;    // op_kind_name
    std::string path;
    std::string origin;
    std::string message;
    uint64_t attempts = 0;  // transient: how often it was tried
    bool operator==(const ReceiveFailure&) const = default;
};

struct ReceiverOptions {
    std::filesystem::path root;       // the watched directory
    std::filesystem::path state_dir;  // the applier's state and the cursor
    std::string agent_id;             // the applier's host name (the server names conflict copies)
    // Appends one record to this agent's journal (the caller's writer, under
    // its lock); an error is logged, not fatal.
    std::function<Status(journal::Record)> journal;
    // Waits until every record journal() appended is durable; called
    // before the cursor moves past them (none: not waited for).
    std::function<Status()> journal_durable;
    // Called after the cursor moved (any thread): wakes pending syncs.
    std::function<void()> moved;
    // Ends the connection forwards come on, so that a new one subscribes
    // from cursor() (Shipper::resubscribe); called on the receiver's thread.
    std::function<void(const std::string& why)> resubscribe;
    // Retry backoff for a forward that failed and may succeed later.
    std::chrono::milliseconds first_retry{200};
    std::chrono::milliseconds max_retry{5000};
    // The LSN (in this agent's journal) of the latest local change of
    // `path` or `target` the server has not acknowledged; 0 for none.
    std::function<uint64_t(const std::string& path, const std::string& target)> unacked_local;
    // The same for any path beneath a directory: a forwarded removal of the
    // directory waits for those too (it takes what the directory holds).
    std::function<uint64_t(const std::string& dir)> unacked_beneath;
    // Waits up to `timeout` for the server to acknowledge `lsn`; true once it has.
    std::function<bool(uint64_t lsn, std::chrono::milliseconds timeout)> wait_acked;
    // Journals what the capture has read so far (a write whose writer just
    // closed), so that unacked_local knows it. Set: a forward that would
    // replace or remove a file open for writing here waits for its writer
    // (see above); none: it does not.
    std::function<Status()> settle_capture;
    // How often a forward waiting for a file's writer looks again.
    std::chrono::milliseconds writer_poll{50};
    // Receive-only: whether `path` holds a local change no forward has
    // replaced yet (LocalChanges::holds), and that it was kept aside.
    std::function<bool(const std::string& path)> local_change;
    std::function<void(const std::string& path)> local_change_kept;
    // Called with each forward's path (and target, none for a symlink's
    // text) just before it is applied and again once it was: the capture's
    // rescans must not take what the receiver changed for local changes,
    // whether or not it is journaled yet (Capture::applied_by_receiver).
    std::function<void(const std::string& path, const std::string& target)> applying;
};

class Receiver final : public replicator::ForwardSink {
public:
    static Result<std::shared_ptr<Receiver>> open(ReceiverOptions options);
    ~Receiver() override;

    uint64_t cursor() override;
    void on_connected() override;
    void on_forward(replicator::proto::Forward f) override;
    // Writes come as ranges (version 6), except those through the LSN of
    // the last one this agent could not patch (needs_whole()).
    std::optional<uint64_t> ranges_whole_through() override;
    // Forwards of writes asked for again whole since start.
    uint64_t whole_requests() const { return whole_requests_.load(); }

    // The server LSN applied durably here.
    uint64_t applied() const { return applied_.load(); }
    // The last failure to apply (empty when none), for status and sync.
    std::string last_error() const;
    // The forward held back now, being retried (nullopt when none).
    std::optional<ReceiveFailure> failure() const;
    // The paths forwards may have changed without the change being
    // committed (the agent was killed between): written durably to the
    // state directory before they are applied, cleared by each commit.
    // A restart's rescan takes what it finds changed there for the
    // receiver's work, not a local change: the server forwards those
    // records again from the cursor, and they are journaled then.
    static std::vector<std::string> unconfirmed_paths(const std::filesystem::path& state_dir);
    // Failed attempts to apply a forward since start (it only grows).
    uint64_t failed_attempts() const { return failed_attempts_.load(); }
    // Forwards passed over for good and not yet superseded (see above).
    std::vector<ReceiveFailure> permanent_failures() const;
    // The directory was made equal to the fileset: the permanent failures
    // are no longer differences. Returns how many went.
    size_t forget_failures();
    uint64_t seen() const { return seen_.load(); }
    // Conflicts the server forwarded since start.
    uint64_t conflicts() const { return conflicts_.load(); }
    // `izwatch revert`: the next connection subscribes from cursor 0, so
    // that the server forwards every record of its fileset again (each
    // write with the replica's current content), and until end_revert()
    // no local version is kept aside (the revert discards them on
    // purpose). The cursor starts again from 0 when that connection's
    // first item is taken; rewound() counts those, so the caller knows
    // the replay began.
    void rewind();
    void end_revert();
    uint64_t rewound() const { return rewound_.load(); }
    void stop();

private:
    explicit Receiver(ReceiverOptions o) : opts_(std::move(o)) {}
    void run();
    void apply(const replicator::proto::Forward& f, bool last_queued);
    // A write forwarded as ranges over a copy that is not the one they
    // patch: asks for it whole (a new connection); true when it did.
    bool needs_whole(const replicator::proto::OpMsg& op);
    uint64_t whole_through_ = 0;  // under mu_
    std::atomic<uint64_t> whole_requests_{0};
    // Makes what was applied so far durable and moves the cursor.
    bool commit();
    void with_handle(journal::Record& r, const replicator::proto::OpMsg& op) const;
    // A forward failed and may succeed later: hold the cursor, retry.
    void hold(ReceiveFailure failure);
    void pass_over(ReceiveFailure failure);
    void supersede(const replicator::proto::OpMsg& op);
    Status save_permanent_locked() const;
    // Writes (durably) the paths of `ops` not written yet since the last commit.
    void note_applying(const std::vector<const replicator::proto::OpMsg*>& ops);
    void clear_applying();
    std::set<std::string> applying_;

    ReceiverOptions opts_;
    std::unique_ptr<replicator::Applier> applier_;
    std::atomic<uint64_t> applied_{0};
    std::atomic<uint64_t> seen_{0};
    std::atomic<uint64_t> conflicts_{0};
    // Blocks until the local changes a forward would overwrite are
    // acknowledged; false when stopping.
    // `also_content`: a whole content's data and end wait too (after a
    // writer closed: its change came after the beginning waited).
    bool wait_for_local(const replicator::proto::OpMsg& op, bool also_content = false);
    // Blocks while the file `op` would replace or remove is open for
    // writing here, then until its writer's change is acknowledged; false
    // when stopping.
    bool wait_for_writers(const replicator::proto::OpMsg& op);
    bool stopping_within(std::chrono::milliseconds timeout);
    bool writers_unknown_told_ = false;  // warned once that a writer could not be looked for
    // Receive-only: keeps aside the local version `f` would replace; what
    // failed when it could not (the forward is held, to be tried again).
    std::optional<ReceiveFailure> keep_local(const replicator::proto::Forward& f);
    struct Restart {  // a new connection: what came in part is void
        bool from_zero = false;  // it subscribed from cursor 0 (rewind())
    };
    using Item = std::variant<replicator::proto::Forward, Restart>;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Item> queue_;
    bool stopping_ = false;
    std::string last_error_;
    uint64_t uncommitted_ = 0;  // last complete record applied, not yet committed
    // After a failure, until the next connection: forwards are dropped
    // (they come again from the cursor).
    bool dropping_ = false;
    uint64_t connections_ = 0;  // on_connected calls
    std::optional<ReceiveFailure> failure_;
    std::vector<ReceiveFailure> permanent_;
    bool permanent_dirty_ = false;  // to be written before the next commit
    std::chrono::milliseconds backoff_{0};
    std::atomic<uint64_t> failed_attempts_{0};
    bool rewind_pending_ = false;     // the next connection subscribes from 0
    bool rewind_subscribed_ = false;  // this connection did
    std::atomic<bool> reverting_{false};
    std::atomic<uint64_t> rewound_{0};
    std::thread thread_;
};

}  // namespace iz::agent
