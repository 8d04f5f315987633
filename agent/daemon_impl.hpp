#pragma once
// The agent's one daemon object (Daemon, daemon.hpp), its parts each in a
// file of its own; they share this object's state, which is declared once
// below so that it is made and destroyed in one deliberate order.
//
// Everything here runs on the thread that calls arm() and run() (the main
// thread), except where a part says otherwise.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent_status.hpp"
#include "agent/capture.hpp"
#include "agent/daemon.hpp"
#include "agent/fanotify_source.hpp"
#include "agent/tree_state.hpp"
#include "agent/verifier.hpp"
#include "agent/verify_service.hpp"
#include "bpf/bpf_capture.hpp"
#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "journal/writer.hpp"
#include "metrics/http_server.hpp"
#include "local_changes.hpp"
#include "receiver.hpp"
#include "replicator/ship/shipper.hpp"
#include "writeback_flusher.hpp"

namespace iz::agent {

class DaemonImpl final : public Daemon {
public:
    using Clock = std::chrono::steady_clock;

    // ---- lifetime (daemon.cpp) ---------------------------------------------
    explicit DaemonImpl(WatchOptions o) : opts_(std::move(o)) {}
    // Stops the threads that signal this object's descriptors (shipper,
    // verification) before it closes them, then closes them.
    ~DaemonImpl() override;
    // Arms capture, journals the baseline or what changed since the last
    // run, starts shipping and verification and opens the control socket.
    Status arm();

    // ---- the event loop (daemon_loop.cpp) ----------------------------------
    // Serves until stopped (control "stop", SIGTERM, SIGINT), then shuts down.
    int run() override;
    std::string status_line() const override;  // daemon_status.cpp

private:
    // ---- lifetime (daemon.cpp) ---------------------------------------------
    // Once only (later calls return the first's code): answers what waits,
    // journals the stop, saves the tree and closes the journal, and only
    // then stops the shipper and verification.
    int shutdown();

    // ---- the event loop and capture (daemon_loop.cpp) ----------------------
    void add(int fd, uint32_t tag);
    std::string mode() const;
    void check_root();
    void gather();
    static constexpr size_t kGatherBelow = 256;
    // The tree state is saved at most this often, after this long without
    // filesystem events, or at the latest this long after the last save.
    static constexpr auto kPersistEvery = std::chrono::seconds(10);
    static constexpr auto kPersistLull = std::chrono::milliseconds(1000);
    static constexpr auto kPersistAtMost = std::chrono::seconds(60);
    // Reads every fanotify and eBPF event waiting and journals them.
    void drain();
    void consume_bpf();
    void take_acks();

    // ---- the journal keeper (daemon_journal.cpp) ---------------------------
    // The writer, the tree state saved beside it (never ahead of what is
    // durable), retention, and reopening a journal that failed.
    void apply_retention();
    void persist();
    void retry_failed_journal();
    Result<std::unique_ptr<journal::Writer>> open_journal(std::chrono::milliseconds lock_wait = {});
    Status reopen_journal();
    Status bring_up_to_journal(SavedTree& saved);
    // Everything captured so far is journaled and durable.
    Status settle();

    // ---- replication (daemon_shipping.cpp) ---------------------------------
    uint64_t replicated_lsn() const;
    Status start_shipper();
    // Send-receive: the receiver, opened before the start's rescan so that
    // what it journals carries what this agent had seen (Capture::stamp_with).
    Status open_receiver();
    // A first start joining a fileset with a non-empty directory: compares
    // it with the fileset and has the capture adopt what both hold alike
    // (join_merge.hpp). False when nothing was compared (the server was
    // not reached, or the directory is empty).
    bool adopt_at_join();
    void stamp_capture(Capture& capture);
    // The latest local change of each path (its LSN), for the receiver to
    // hold back forwards that would overwrite one not yet acknowledged.
    std::mutex local_mu_;
    std::unordered_map<std::string, uint64_t> local_lsns_;
    static constexpr size_t kLocalLsnsPrune = 4096;
    size_t local_lsns_prune_at_ = kLocalLsnsPrune;
    uint64_t unacked_local(const std::string& path, const std::string& target);
    // The same for any path beneath the directory `dir` (daemon_unacked.cpp).
    uint64_t unacked_beneath(const std::string& dir);
    std::function<void(uint64_t)> durable_relay();

    // ---- verification (daemon_verify.cpp, verify_service.hpp) --------------
    // What a verification thread asks of this one: settle() runs here, on
    // the thread that owns capture, woken through settle_fd_.
    struct SettleRequest {
        std::mutex mu;
        std::condition_variable cv;
        bool done = false;
        std::string error;
        uint64_t lsn = 0;
    };

    // Called on verification threads.
    class Host final : public VerifyHost {
    public:
        explicit Host(DaemonImpl& d) : d_(d) {}
        Result<uint64_t> settle() override;
        Result<uint64_t> journal(std::vector<journal::Record> records) override;

    private:
        DaemonImpl& d_;
    };

    void start_verification();
    // On a verification or shipper thread: waits until the main thread has
    // settled. `write_back`: the filesystem is written back first, so that
    // stores through mappings are reported (a verification compares
    // content; the shipper asks only after names).
    Result<uint64_t> settle_from_thread(bool write_back = true);
    void finish_settles(const std::string& error);
    void answer_settles();
    // No settle is waited for any more; those waiting are told so.
    void close_settles();

    // ---- control: requests and pending syncs (daemon_control.cpp) ----------
    // Answers every connection waiting on the control socket; a sync is
    // answered later, from the loop, once every server has what it covers.
    void serve_control();
    int ms_until_sync_deadline() const;
    void begin_sync(int conn, Clock::time_point deadline);
    void take_flushes();
    void answer_syncs();
    std::string rejected_through(uint64_t lsn) const;
    std::string sync_timeout_reason(uint64_t lsn) const;

    // ---- revert (daemon_revert.cpp) ----------------------------------------
    // Control request {"cmd": "revert", "timeout_s": N}: on a thread of its
    // own (one at a time), answered on `conn`.
    void serve_revert(UniqueFd conn, const nlohmann::json& request);
    Result<nlohmann::json> revert(std::chrono::milliseconds timeout);
    // Ends a revert under way and waits for it (after the shipper stopped:
    // nothing it waits for comes any more).
    void stop_revert();
    std::mutex revert_mu_;
    std::thread revert_thread_;
    bool revert_done_ = false;
    std::atomic<bool> revert_cancel_{false};

    // ---- status (daemon_status.cpp) ----------------------------------------
    AgentStatus status() const;
    // Tells a service manager the status line when it changed (every
    // second, from the loop; nothing when no manager listens).
    void report_status();
    // What this thread keeps (capture, the journal writer).
    AgentStatus capture_status() const;
    // What the other parts keep, read on any thread: the shipper's
    // servers, the journal's disk use, the scrub, the fanotify queue.
    void add_shared_status(AgentStatus& s) const;

    // ---- metrics (daemon_metrics.cpp) --------------------------------------
    // Serves /metrics on opts_.metrics (agent_metrics.hpp). A scrape is
    // rendered on the metrics thread: this thread only copies capture_status()
    // for it when the loop wakes (metrics_fd_), and a scrape that waits longer
    // than kMetricsWait for that gets the last copy.
    Status start_metrics();
    std::string metrics_page();
    void answer_metrics();
    // Ends the metrics thread (idempotent): before anything it reads goes.
    void stop_metrics();
    static constexpr auto kMetricsWait = std::chrono::milliseconds(500);

    // ---- state -------------------------------------------------------------
    // Destroyed in the reverse of this order, after ~DaemonImpl() has closed
    // the descriptors: keep the order when adding to it.
    WatchOptions opts_;
    int root_fd_ = -1, control_fd_ = -1, epoll_fd_ = -1, signal_fd_ = -1, ack_fd_ = -1;
    std::unique_ptr<journal::Writer> writer_;
    // Held by threads other than the main one while they use writer_ (the
    // main thread replaces it after a failure, see reopen_journal()).
    std::mutex writer_mu_;
    Clock::time_point last_journal_retry_{};
    static constexpr auto kJournalRetryEvery = std::chrono::seconds(2);
    std::unique_ptr<FanotifySource> fan_;
    std::unique_ptr<BpfCapture> bpf_;
    std::unique_ptr<Capture> capture_;
    std::unique_ptr<replicator::Shipper> shipper_;
    // Send-receive: what the servers forward is applied by it (receiver.hpp).
    std::shared_ptr<Receiver> receiver_;
    // The paths the receiver applies or applied (numbered in order) whose
    // fanotify events the capture may not have read yet: a rescan reads
    // them (Capture::applied_by_receiver); a drain that began after one
    // was applied read its events (or rescanned after it), and forgets it.
    std::mutex applied_mu_;
    std::deque<std::pair<uint64_t, std::string>> applied_paths_;
    uint64_t applied_seq_ = 0;
    void note_applied(const std::string& path, const std::string& target);
    std::vector<std::string> take_applied();
    void forget_applied_through(uint64_t seq);
    uint64_t applied_mark();
    // Receive-only: the local changes kept and not sent.
    std::unique_ptr<LocalChanges> local_changes_;
    bool receiving() const { return receiver_ != nullptr; }
    // Sends each pending sync's HeadRequest once the server is reachable.
    void ask_heads();
    std::string receive_failures() const;
    std::string subscribe_refused() const;
    uint64_t receive_attempts() const;
    void add_receive_status(AgentStatus::Server& srv) const;
    // The server's fileset-journal head, as it last answered (status).
    mutable std::optional<uint64_t> last_head_;
    std::atomic<replicator::Shipper*> shipper_ptr_{nullptr};  // for the writer's committer thread
    sigset_t stop_signals_{};
    std::vector<FanEvent> batch_;
    struct PendingSync {
        int conn;
        uint64_t lsn;
        Clock::time_point deadline;
        // Send-receive: the server's fileset-journal head when the sync was
        // taken; the sync is answered once the receiver applied through it.
        std::optional<uint64_t> head{};
        // Send-receive: failed attempts to apply a forward when it was
        // taken. A sync fails naming the forward held back once a retry
        // made after it began failed too (one that succeeds lets it pass).
        uint64_t receive_attempts = 0;
    };
    std::vector<PendingSync> syncs_;
    std::unique_ptr<WritebackFlusher> flusher_;
    struct PendingFlush {
        int conn;
        uint64_t ticket;  // WritebackFlusher::request()
        Clock::time_point deadline;
    };
    std::vector<PendingFlush> flushes_;  // syncs waiting for their writeback
    Host host_{*this};
    std::unique_ptr<VerifyService> verify_;
    int settle_fd_ = -1;
    std::mutex settle_mu_;
    std::vector<std::shared_ptr<SettleRequest>> settles_;
    bool settles_closed_ = false;
    size_t last_batch_ = 0;
    std::string capture_reason_;
    double events_per_s_ = 0;
    bool root_removed_ = false;
    uint64_t bpf_dropped_ = 0;
    // This process: its own writes (the journal's, the tree state's, often
    // on the watched filesystem) are no changes to capture. Set when the
    // loop starts, after any daemonizing fork.
    int32_t self_pid_ = 0;
    Clock::time_point started_;
    std::string reported_status_;
    bool stopping_ = false;
    bool shut_down_ = false;
    int exit_code_ = 0;
    int metrics_fd_ = -1;
    std::mutex metrics_mu_;
    std::condition_variable metrics_cv_;
    uint64_t metrics_asked_ = 0, metrics_answered_ = 0;
    bool metrics_closed_ = false;
    AgentStatus metrics_capture_;  // the last capture_status() copied for a scrape
    std::unique_ptr<metrics::HttpServer> metrics_;
};

}  // namespace iz::agent
