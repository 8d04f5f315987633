#include "agent/daemon.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "bpf/bpf_capture.hpp"
#include "agent/capture.hpp"
#include "agent/control.hpp"
#include "agent/crash_recovery.hpp"
#include "agent/fanotify_source.hpp"
#include "agent/verify_service.hpp"
#include "agent/watch_paths.hpp"
#include "common/unique_fd.hpp"
#include "journal/reader.hpp"
#include "journal/retention.hpp"
#include "journal/writer.hpp"
#include "replicator/ship/shipper.hpp"
#include "writeback_flusher.hpp"

namespace iz::agent {

namespace {

using Clock = std::chrono::steady_clock;

// How long a start waits for the journal's lock of an agent that died.
constexpr std::chrono::seconds kJournalLockWait{10};

class DaemonImpl final : public Daemon {
public:
    explicit DaemonImpl(WatchOptions o) : opts_(std::move(o)) {}

    ~DaemonImpl() override {
        close_settles();
        // Its threads signal ack_fd_: they end before the descriptor does.
        if (shipper_) shipper_->stop();
        if (verify_) verify_->stop();
        if (settle_fd_ >= 0) ::close(settle_fd_);
        if (control_fd_ >= 0) {
            ::close(control_fd_);
            ::unlink(control_socket_path(opts_.dir).c_str());
        }
        if (epoll_fd_ >= 0) ::close(epoll_fd_);
        if (ack_fd_ >= 0) ::close(ack_fd_);
        if (signal_fd_ >= 0) ::close(signal_fd_);
        if (root_fd_ >= 0) ::close(root_fd_);
    }

    Status arm() {
        // Blocked before any thread starts (journal committer, io_uring
        // workers, shipper): threads inherit the mask, so SIGTERM reaches
        // only the signalfd and stopping is always the clean shutdown.
        sigemptyset(&stop_signals_);
        sigaddset(&stop_signals_, SIGTERM);
        sigaddset(&stop_signals_, SIGINT);
        pthread_sigmask(SIG_BLOCK, &stop_signals_, nullptr);
        std::error_code ec;
        std::filesystem::create_directories(opts_.state_dir, ec);
        if (ec) return fail(Error{fmt::format("create state directory '{}': {}", opts_.state_dir.string(), ec.message()), ec.value()});
        // Readable, not O_PATH: it is also the mount reference for
        // open_by_handle_at, which refuses O_PATH descriptors.
        root_fd_ = ::open(opts_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root_fd_ < 0) return fail(sys_error("open watched directory", opts_.dir, errno));
        struct stat st{};
        ::fstat(root_fd_, &st);

        auto saved = load_tree(opts_.state_dir / "tree.state");
        if (!saved) return fail(saved.error());

        // An agent killed a moment ago holds the journal's lock until its
        // process is wholly torn down (journal/writer.hpp): waited for.
        auto writer = open_journal(kJournalLockWait);
        if (!writer) return fail(writer.error());
        writer_ = std::move(*writer);

        auto fan = FanotifySource::open(opts_.dir, opts_.queue_events);
        if (!fan) return fail(fan.error());
        fan_ = std::move(*fan);
        if (!fan_->queue_note().empty())
            spdlog::warn("fanotify queue: {} (it holds {} events)", fan_->queue_note(), fan_->queue_events());

        if (opts_.no_bpf) {
            capture_reason_ = "eBPF disabled with --no-bpf";
        } else {
            auto bpf = BpfCapture::open(st.st_dev);
            if (bpf) {
                bpf_ = std::move(*bpf);
                capture_reason_ = bpf_->description();
            } else {
                capture_reason_ = "eBPF unavailable: " + bpf.error().message;
                spdlog::warn("running on fanotify alone: {}", bpf.error().message);
            }
        }
        capture_ = std::make_unique<Capture>(opts_.dir, root_fd_, opts_.excludes, *writer_, bpf_ != nullptr);

        bool baseline = saved->tree.empty();
        if (auto ok = bring_up_to_journal(*saved); !ok) return ok;

        journal::Record start;
        start.op = journal::Op::start;
        start.pid = static_cast<int32_t>(getpid());
        start.comm = "izwatch";
        start.message = fmt::format("watching {} ({})", opts_.dir, mode());
        if (auto ok = writer_->append(start); !ok) return fail(ok.error());
        if (auto ok = capture_->catch_up(saved->tree, baseline ? "baseline" : "restart"); !ok) return ok;
        if (auto ok = writer_->flush(); !ok) return ok;
        if (auto ok = save_tree(capture_->tree(), writer_->head_lsn(), opts_.state_dir / "tree.state"); !ok) return ok;

        // The shipper signals it on every ack: pending syncs are answered
        // the moment a server has what they wait for, without polling.
        ack_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (ack_fd_ < 0) return fail(sys_error("create eventfd for replication acks", opts_.dir, errno));
        if (auto ok = start_shipper(); !ok) return ok;
        settle_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (settle_fd_ < 0) return fail(sys_error("create eventfd for verification", opts_.dir, errno));
        start_verification();
        if (bpf_) {
            // Only eBPF sees stores through a mapping, and only at writeback
            // when they dirtied nothing: a sync has that done first.
            auto flusher = WritebackFlusher::start(root_fd_, opts_.dir);
            if (flusher) flusher_ = std::move(*flusher);
            else spdlog::warn("izwatch sync will not write back mapped files first: {}", flusher.error().message);
        }

        auto control = listen_control(control_socket_path(opts_.dir));
        if (!control) return fail(control.error());
        control_fd_ = *control;

        signal_fd_ = ::signalfd(-1, &stop_signals_, SFD_CLOEXEC | SFD_NONBLOCK);
        ::signal(SIGPIPE, SIG_IGN);

        epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
        add(fan_->fd(), 1);
        add(control_fd_, 2);
        add(signal_fd_, 3);
        if (bpf_) add(bpf_->fd(), 4);
        add(ack_fd_, 5);
        add(settle_fd_, 6);
        if (flusher_) add(flusher_->fd(), 7);
        started_ = Clock::now();
        return {};
    }

    int run() override {
        auto last_persist = Clock::now();
        auto last_event = Clock::now();
        auto last_retention = Clock::now() - std::chrono::seconds(55);
        auto last_rate = Clock::now();
        uint64_t events_at_rate = 0;
        uint64_t records_at_persist = capture_->stats().records;
        while (!stopping_) {
            int timeout = std::min(1000, ms_until_sync_deadline());
            if (auto due = capture_->next_flush_in()) timeout = static_cast<int>(std::min<int64_t>(due->count(), timeout));
            epoll_event evs[8];
            int n = ::epoll_wait(epoll_fd_, evs, 8, timeout);
            if (n < 0 && errno != EINTR) {
                spdlog::error("epoll_wait: {}", std::strerror(errno));
                break;
            }
            for (int i = 0; i < n; ++i) {
                switch (evs[i].data.u32) {
                    case 1:
                        gather();
                        drain();
                        last_event = Clock::now();
                        break;
                    case 2: serve_control(); break;
                    case 3: stopping_ = true; break;
                    case 4:
                        drain();
                        last_event = Clock::now();
                        break;
                    case 5: take_acks(); break;
                    case 6: answer_settles(); break;
                    case 7: take_flushes(); break;
                }
            }
            capture_->flush_writes(false);
            if (shipper_) shipper_->notify(writer_->durable_lsn());
            answer_syncs();
            auto now = Clock::now();
            if (now - last_rate >= std::chrono::seconds(1)) {
                check_root();
                double secs = std::chrono::duration<double>(now - last_rate).count();
                events_per_s_ = static_cast<double>(capture_->stats().events - events_at_rate) / secs;
                events_at_rate = capture_->stats().events;
                last_rate = now;
                retry_failed_journal();
            }
            if (now - last_retention >= std::chrono::seconds(60)) {
                apply_retention();
                last_retention = now;
            }
            // Saving the tree state serialises every entry (tens of ms for a
            // large tree) on this thread: done during a lull, so a burst of
            // changes is not held up by it, unless none came for a minute.
            bool lull = now - last_event >= kPersistLull || now - last_persist >= kPersistAtMost;
            if (lull && now - last_persist >= kPersistEvery && capture_->stats().records != records_at_persist) {
                persist();
                records_at_persist = capture_->stats().records;
                last_persist = now;
            }
        }
        return shutdown();
    }

private:
    void add(int fd, uint32_t tag) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = tag;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    }

    std::string mode() const { return bpf_ ? "fanotify+ebpf" : "fanotify only"; }

    // The watched directory itself deleted: what was in it is journaled as
    // it went (and shipped), but nothing can be created in it any more. The
    // agent keeps serving (servers still get the deletions, and sync and
    // status keep working) and says so until it is stopped.
    void check_root() {
        if (root_removed_) return;
        struct stat st{};
        if (::fstat(root_fd_, &st) != 0 || st.st_nlink > 0) return;
        root_removed_ = true;
        spdlog::error("the watched directory {} was removed; what it held is journaled as deleted; "
                      "stop this agent with 'izwatch stop {}'",
                      opts_.dir, opts_.dir);
    }

    // Under a stream of events, waking for every few of them costs more
    // than the events (a context switch each, on machines with few cores):
    // when the last read was small, let a few milliseconds' worth gather.
    void gather() {
        if (last_batch_ >= kGatherBelow) return;
        timespec pause{0, 3'000'000};
        ::nanosleep(&pause, nullptr);
    }
    static constexpr size_t kGatherBelow = 256;
    // The tree state is saved at most this often, after this long without
    // filesystem events, or at the latest this long after the last save.
    static constexpr auto kPersistEvery = std::chrono::seconds(10);
    static constexpr auto kPersistLull = std::chrono::milliseconds(1000);
    static constexpr auto kPersistAtMost = std::chrono::seconds(60);

    // The kernel emits a write's eBPF event before its fanotify event, so
    // once fanotify is read, the ring buffer holds the ranges of every
    // write read (and the exits of every process named).
    void drain() {
        batch_.clear();
        auto got = fan_->drain([this](const FanEvent& ev) { batch_.push_back(ev); });
        if (!got) spdlog::error("{}", got.error().message);
        consume_bpf();
        last_batch_ = batch_.size();
        // The batch's records reach the journal as one write.
        struct Held {
            journal::Writer& w;
            ~Held() { w.release(); }
        } held{*writer_};
        writer_->hold();
        for (auto& ev : batch_) capture_->on_event(ev);
        capture_->end_of_batch();
    }

    void consume_bpf() {
        if (!bpf_) return;
        auto got = bpf_->consume([this](const DirtyRangeEvent& ev) { capture_->on_dirty_range(ev); });
        if (!got) spdlog::error("eBPF ring buffer: {}", got.error().message);
        auto dropped = bpf_->stats().dropped;
        if (dropped != bpf_dropped_) {
            spdlog::warn("eBPF ring buffer dropped {} events; writes in flight are journaled as whole-file",
                         dropped - bpf_dropped_);
            bpf_dropped_ = dropped;
            capture_->on_dirty_ranges_lost();
        }
    }

    // Whole segments go once every consumer has passed them and the history
    // window is over. Without servers the agent is the only consumer.
    void apply_retention() {
        if (opts_.servers.empty()) {
            if (auto ok = journal::save_consumer_lsn(opts_.journal_dir, "local", writer_->durable_lsn()); !ok)
                spdlog::warn("journal retention: {}", ok.error().message);
        }
        journal::RetentionPolicy policy;
        policy.history = opts_.history;
        auto dropped = writer_->apply_retention(policy);
        if (!dropped) spdlog::warn("journal retention: {}", dropped.error().message);
        else if (*dropped) spdlog::info("journal retention: dropped {} segment(s)", *dropped);
    }

    // The LSN every server has durably applied (the journal's durable LSN
    // when there are no servers).
    uint64_t replicated_lsn() const {
        uint64_t lsn = writer_->durable_lsn();
        if (shipper_) lsn = std::min(lsn, shipper_->acked_by_all());
        return lsn;
    }

    // Replication: the shipper follows the journal on its own threads; a
    // conflict a server reports becomes a journal record, so izlog shows it
    // and the shipper re-sends the file's whole content.
    Status start_shipper() {
        if (opts_.servers.empty()) return {};
        if (opts_.key_file.empty())
            return fail(make_error("--server needs --key KEYFILE (the key the servers were given; make one with "
                                   "'izreplicate keygen KEYFILE')"));
        replicator::ShipperOptions so;
        so.journal_dir = opts_.journal_dir;
        so.watched_root = opts_.dir;
        so.fileset = opts_.fileset;
        so.agent_id = opts_.agent_id;
        so.key_file = opts_.key_file;
        so.compression = opts_.compress == "always" ? replicator::Compression::always
                         : opts_.compress == "never" ? replicator::Compression::never
                                                     : replicator::Compression::adaptive;
        for (auto& text : opts_.servers) {
            auto ep = replicator::parse_endpoint(text);
            if (!ep) return fail(make_error(fmt::format("--server '{}': {}", text, ep.error().message)));
            so.servers.push_back(*ep);
        }
        so.on_acked = [fd = ack_fd_] {
            uint64_t one = 1;
            // EAGAIN only when the counter is saturated: the loop wakes anyway.
            (void)!::write(fd, &one, sizeof one);
        };
        so.on_conflict = [this](const replicator::ConflictEvent& c) {
            journal::Record r;
            r.op = journal::Op::conflict;
            r.path = c.path;
            r.target = c.conflict_copy;
            r.comm = "izreplicate";
            r.message = fmt::format("server {} ({}) kept its own version as {}: {}", c.server, c.server_host,
                                    c.conflict_copy, c.message);
            {
                std::lock_guard lock(writer_mu_);
                if (auto ok = writer_->append(r); !ok) spdlog::error("journaling a conflict: {}", ok.error().message);
            }
            spdlog::warn("conflict on {}: {}", c.path, r.message);
        };
        auto shipper = replicator::Shipper::start(std::move(so));
        if (!shipper) return fail(shipper.error());
        shipper_ = std::move(*shipper);
        shipper_ptr_.store(shipper_.get());
        return {};
    }

    // The shipper sends only what the journal holds durably, and learns of
    // it from the writer's committer thread the moment it is so (this
    // thread's loop may sleep in epoll_wait for up to a second).
    std::function<void(uint64_t)> durable_relay() {
        return [this](uint64_t lsn) {
            if (auto* s = shipper_ptr_.load()) s->notify(lsn);
        };
    }

    // ---- verification (verify_service.hpp) ---------------------------------

    // What a verification thread asks of this one: settle() runs here, on
    // the thread that owns capture, woken through settle_fd_.
    struct SettleRequest {
        std::mutex mu;
        std::condition_variable cv;
        bool done = false;
        std::string error;
        uint64_t lsn = 0;
    };

    class Host final : public VerifyHost {
    public:
        explicit Host(DaemonImpl& d) : d_(d) {}
        Result<uint64_t> settle() override { return d_.settle_from_thread(); }
        Result<uint64_t> journal(std::vector<journal::Record> records) override {
            std::lock_guard lock(d_.writer_mu_);
            uint64_t last = 0;
            for (auto& r : records) {
                auto lsn = d_.writer_->append(std::move(r));
                if (!lsn) return fail(lsn.error());
                last = *lsn;
            }
            return last;
        }

    private:
        DaemonImpl& d_;
    };

    void start_verification() {
        VerifySetup vs;
        vs.root_fd = root_fd_;
        vs.journal_dir = opts_.journal_dir;
        vs.state_dir = opts_.state_dir;
        vs.excludes = opts_.excludes;
        if (shipper_)
            for (auto& srv : shipper_->status()) vs.servers.push_back(srv.endpoint);
        vs.shipper = shipper_.get();
        vs.host = &host_;
        vs.scrub_interval = opts_.scrub_interval;
        vs.scrub_bytes_per_s = opts_.scrub_bytes_per_s;
        verify_ = std::make_unique<VerifyService>(std::move(vs));
        verify_->start();
    }

    Result<uint64_t> settle_from_thread() {
        // The verification thread may block: it writes back here what a
        // sync has the flusher write back (see writeback_flusher.hpp).
        if (bpf_ && ::syncfs(root_fd_) != 0)
            spdlog::warn("{}", sys_error("write back the watched filesystem (syncfs)", opts_.dir, errno).message);
        auto req = std::make_shared<SettleRequest>();
        {
            std::lock_guard lock(settle_mu_);
            if (settles_closed_) return fail(make_error("the agent is stopping"));
            settles_.push_back(req);
        }
        uint64_t one = 1;
        (void)!::write(settle_fd_, &one, sizeof one);
        std::unique_lock lock(req->mu);
        if (!req->cv.wait_for(lock, std::chrono::minutes(5), [&] { return req->done; }))
            return fail(make_error("the agent did not settle its captured changes within 5 minutes"));
        if (!req->error.empty()) return fail(make_error(req->error));
        return req->lsn;
    }

    void finish_settles(const std::string& error) {
        std::vector<std::shared_ptr<SettleRequest>> reqs;
        {
            std::lock_guard lock(settle_mu_);
            reqs.swap(settles_);
        }
        for (auto& r : reqs) {
            std::lock_guard lock(r->mu);
            r->done = true;
            r->error = error;
            r->lsn = writer_ ? writer_->head_lsn() : 0;
            r->cv.notify_all();
        }
    }

    void answer_settles() {
        uint64_t n = 0;
        while (::read(settle_fd_, &n, sizeof n) == static_cast<ssize_t>(sizeof n)) {
        }
        auto ok = settle();
        finish_settles(ok ? std::string() : ok.error().message);
    }

    void close_settles() {
        {
            std::lock_guard lock(settle_mu_);
            settles_closed_ = true;
        }
        finish_settles("the agent is stopping");
    }

    void take_acks() {
        uint64_t n = 0;
        // Nonblocking: EAGAIN once drained. Pending syncs are answered below.
        while (::read(ack_fd_, &n, sizeof n) == static_cast<ssize_t>(sizeof n)) {
        }
    }

    // Until the earliest pending sync times out (acks wake the loop earlier).
    int ms_until_sync_deadline() const {
        int64_t best = INT32_MAX;
        auto now = Clock::now();
        for (auto& s : syncs_)
            best = std::min<int64_t>(best, std::chrono::ceil<std::chrono::milliseconds>(s.deadline - now).count());
        for (auto& f : flushes_)
            best = std::min<int64_t>(best, std::chrono::ceil<std::chrono::milliseconds>(f.deadline - now).count());
        return static_cast<int>(std::max<int64_t>(0, best));
    }

    // A sync is taken (its LSN fixed) once it settled what was captured.
    void begin_sync(int conn, Clock::time_point deadline) {
        if (auto ok = settle(); !ok) {
            send_reply(conn, {{"ok", false}, {"error", ok.error().message}});
            ::close(conn);
            return;
        }
        // Answered from the loop once every server has it, so capture goes
        // on while the servers catch up.
        syncs_.push_back(PendingSync{conn, writer_->head_lsn(), deadline});
    }

    // Syncs whose writeback has been done: what it raised is in the ring
    // buffer now, and settle() journals it with the rest.
    void take_flushes() {
        auto done = flusher_->take();
        std::vector<PendingFlush> ready;
        std::erase_if(flushes_, [&](const PendingFlush& f) {
            if (f.ticket > done.through) return false;
            ready.push_back(f);
            return true;
        });
        if (ready.empty()) return;
        // Pages it could not write are still dirty: their stores are
        // reported when a later writeback succeeds, so the sync goes on.
        if (done.failure) spdlog::warn("{}", done.failure->message);
        if (auto ok = settle(); !ok) {
            for (auto& f : ready) {
                send_reply(f.conn, {{"ok", false}, {"error", ok.error().message}});
                ::close(f.conn);
            }
            return;
        }
        for (auto& f : ready) syncs_.push_back(PendingSync{f.conn, writer_->head_lsn(), f.deadline});
    }

    // Called after every drain of events: nothing to do most of the time.
    void answer_syncs() {
        auto now = Clock::now();
        std::erase_if(flushes_, [&](const PendingFlush& f) {
            if (now < f.deadline) return false;
            send_reply(f.conn, {{"ok", false},
                                {"error", fmt::format("timed out: the kernel has not finished writing back {} (syncfs)",
                                                      opts_.dir)}});
            ::close(f.conn);
            return true;
        });
        if (syncs_.empty()) return;
        uint64_t done = replicated_lsn();
        std::erase_if(syncs_, [&](const PendingSync& s) {
            if (done >= s.lsn) {
                // Applied through the LSN, but not everything: what a server
                // could never apply is not on it.
                if (auto missing = rejected_through(s.lsn); !missing.empty())
                    send_reply(s.conn, {{"ok", false}, {"error", missing}});
                else
                    send_reply(s.conn, {{"ok", true}, {"lsn", s.lsn}});
            } else if (now >= s.deadline) {
                send_reply(s.conn, {{"ok", false}, {"error", sync_timeout_reason(s.lsn)}});
            } else {
                return false;
            }
            ::close(s.conn);
            return true;
        });
    }

    // What servers reported they can never apply, up to `lsn`; "" for none.
    std::string rejected_through(uint64_t lsn) const {
        if (!shipper_) return {};
        std::string why;
        size_t named = 0, more = 0;
        for (auto& srv : shipper_->status())
            for (auto& r : srv.rejected) {
                if (r.lsn > lsn) continue;
                if (named++ < 5)
                    why += fmt::format("{}{} cannot apply '{}' (LSN {}): {}", why.empty() ? "" : "; ", srv.endpoint,
                                       r.path, r.lsn, r.message);
                else
                    ++more;
            }
        if (why.empty()) return {};
        if (more) why += fmt::format("; and {} more", more);
        return "applied, except what a server cannot apply: " + why;
    }

    std::string sync_timeout_reason(uint64_t lsn) const {
        if (auto failed = writer_->failure())
            return fmt::format("timed out: the journal failed ({}); it is retried every few seconds", failed->message);
        if (writer_->durable_lsn() < lsn || !shipper_)
            return fmt::format("timed out: LSN {} is not yet durable (durable LSN {})", lsn, writer_->durable_lsn());
        std::string why;
        for (auto& srv : shipper_->status()) {
            if (srv.acked_lsn >= lsn) continue;
            why += fmt::format("{}{} has applied through LSN {} ({})", why.empty() ? "" : "; ", srv.endpoint, srv.acked_lsn,
                               !srv.connected ? "not connected" + (srv.last_error.empty() ? "" : ": " + srv.last_error)
                                              : fmt::format("{} records behind{}", srv.records_behind,
                                                            srv.last_error.empty() ? "" : "; last error: " + srv.last_error));
        }
        return fmt::format("timed out waiting for LSN {}: {}", lsn, why);
    }

    // The saved tree is what the next start compares the directory with, so
    // it is never saved ahead of the journal: a change it holds whose record
    // is not durable (still being coalesced, or lost with a failed journal)
    // would be missed by that comparison and never reach the servers.
    // It is saved with the LSN it describes, so that a start after a crash
    // replays the records journaled after it (see bring_up_to_journal).
    void persist() {
        capture_->flush_writes(true);
        // Everything the capture journaled so far is in its tree; records
        // appended meanwhile by the shipper's thread are conflicts, which
        // change no tree.
        uint64_t lsn = writer_->head_lsn();
        if (!writer_->flush()) return;
        if (auto ok = save_tree(capture_->tree(), lsn, opts_.state_dir / "tree.state"); !ok)
            spdlog::error("saving agent state: {}", ok.error().message);
    }

    // A journal that failed (its disk full, an I/O error) takes no more
    // records, and the changes made meanwhile are journaled the way a
    // restart journals what happened while no agent ran: every few seconds
    // the journal is opened anew, and once that works the last saved tree
    // (never ahead of the journal, see persist()) is compared with a fresh
    // scan and the differences are journaled.
    void retry_failed_journal() {
        auto failed = writer_->failure();
        if (!failed) return;
        auto now = Clock::now();
        if (now - last_journal_retry_ < kJournalRetryEvery) return;
        if (last_journal_retry_ == Clock::time_point{})
            spdlog::error("the journal failed: {}; changes are journaled again, from a rescan, once it can be written",
                          failed->message);
        last_journal_retry_ = now;
        auto ok = reopen_journal();
        if (!ok) {
            spdlog::debug("the journal cannot be reopened yet: {}", ok.error().message);
            return;
        }
        last_journal_retry_ = {};
        spdlog::info("the journal is written again; what changed while it failed is journaled from a rescan");
    }

    Result<std::unique_ptr<journal::Writer>> open_journal(std::chrono::milliseconds lock_wait = {}) {
        journal::WriterOptions wo;
        wo.dir = opts_.journal_dir;
        wo.lock_wait = lock_wait;
        wo.segment_bytes = opts_.segment_bytes;
        wo.on_durable = durable_relay();
        return journal::Writer::open(wo);
    }

    Status reopen_journal() {
        auto saved = load_tree(opts_.state_dir / "tree.state");
        if (!saved) return fail(saved.error());
        // The failed writer holds the journal's lock until it is closed; it
        // stays in place, failed, if the new one cannot be opened.
        (void)writer_->close();
        auto writer = open_journal();
        if (!writer) return fail(writer.error());
        auto capture = std::make_unique<Capture>(opts_.dir, root_fd_, opts_.excludes, **writer, bpf_ != nullptr);
        capture->carry_stats(capture_->stats());
        {
            std::lock_guard lock(writer_mu_);  // the shipper's thread journals conflicts
            capture_ = std::move(capture);
            writer_ = std::move(*writer);
        }
        if (auto ok = bring_up_to_journal(*saved); !ok) return ok;
        if (auto ok = capture_->catch_up(saved->tree, "journal failure"); !ok) return ok;
        if (auto ok = writer_->flush(); !ok) return ok;
        if (auto ok = save_tree(capture_->tree(), writer_->head_lsn(), opts_.state_dir / "tree.state"); !ok) return ok;
        return {};
    }

    // The saved tree becomes what the servers hold once they have applied
    // the whole journal, which is what the rescan must compare the
    // directory with: the records journaled after it was saved (before a
    // crash, or before the journal failed) are replayed onto it. A state
    // saved without its LSN (by an older agent) gets back, at least, the
    // entries those records made that are gone.
    Status bring_up_to_journal(SavedTree& saved) {
        if (saved.tree.empty()) return {};  // a baseline: everything is journaled anew
        if (saved.lsn) {
            auto replayed = replay_journal(opts_.journal_dir, *saved.lsn, saved.tree);
            if (!replayed) return fail(replayed.error());
            if (*replayed)
                spdlog::info("{} records journaled after the saved tree state (LSN {}) are replayed onto it", *replayed,
                             *saved.lsn);
            return {};
        }
        auto recovered = recover_unsaved_entries(opts_.journal_dir, root_fd_, saved.tree);
        if (!recovered) return fail(recovered.error());
        if (*recovered) spdlog::info("after an unclean stop: {} entries journaled since the last saved state are gone", *recovered);
        return {};
    }

    Status settle() {
        drain();
        capture_->resolve_inodes_now();
        capture_->flush_writes(true);
        return writer_->flush();
    }

    static nlohmann::json rejected_json(const std::vector<replicator::RejectedRecord>& rejected) {
        nlohmann::json out = nlohmann::json::array();
        for (auto& r : rejected) out.push_back({{"lsn", r.lsn}, {"path", r.path}, {"error", r.message}});
        return out;
    }

    nlohmann::json status() const {
        auto& s = capture_->stats();
        uint64_t disk = 0;
        if (auto r = journal::Reader::open(opts_.journal_dir))
            for (auto& seg : (*r)->segments()) disk += seg.file_bytes;
        nlohmann::json servers = nlohmann::json::array();
        if (shipper_)
            for (auto& srv : shipper_->status())
                servers.push_back({{"endpoint", srv.endpoint},
                                   {"connected", srv.connected},
                                   {"acked_lsn", srv.acked_lsn},
                                   {"records_behind", srv.records_behind},
                                   {"bytes_behind", srv.bytes_behind},
                                   {"data_bytes_sent", srv.data_bytes_sent},
                                   {"wire_bytes_sent", srv.wire_bytes_sent},
                                   {"conflicts", srv.conflicts},
                                   {"rejected", rejected_json(srv.rejected)},
                                   {"last_error", srv.last_error}});
        nlohmann::json j = {
            {"dir", opts_.dir},
            {"pid", getpid()},
            {"journal", opts_.journal_dir.string()},
            {"state_dir", opts_.state_dir.string()},
            {"capture", mode()},
            {"capture_detail", capture_reason_},
            {"root_removed", root_removed_},
            {"queue_events", fan_->queue_events()},
            {"records", s.records},
            {"events", s.events},
            {"events_outside", s.outside_events},
            {"events_per_s", events_per_s_},
            {"overflows", s.overflows},
            {"rescans", s.rescans},
            {"journal_errors", s.journal_errors},
            {"head_lsn", writer_->head_lsn()},
            {"durable_lsn", writer_->durable_lsn()},
            {"journal_disk_bytes", disk},
            {"uptime_s", std::chrono::duration<double>(Clock::now() - started_).count()},
            {"servers", servers},
            {"scrub", verify_ ? verify_->status() : nlohmann::json::object()},
        };
        if (auto f = writer_->failure()) j["journal_failure"] = f->message;
        return j;
    }

    void serve_control() {
        for (;;) {
            UniqueFd conn(::accept4(control_fd_, nullptr, nullptr, SOCK_CLOEXEC));
            if (!conn.valid()) return;
            auto req = read_request(conn.get());
            if (!req) {
                send_reply(conn.get(), {{"ok", false}, {"error", req.error().message}});
                continue;
            }
            auto cmd = req->value("cmd", "");
            if (cmd == "status") {
                auto j = status();
                j["ok"] = true;
                send_reply(conn.get(), j);
            } else if (cmd == "sync") {
                double secs = req->value("timeout_s", 30.0);
                auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(secs * 1000));
                if (flusher_) flushes_.push_back(PendingFlush{conn.release(), flusher_->request(), deadline});
                else begin_sync(conn.release(), deadline);
            } else if (cmd == "verify") {
                // On a thread of its own, which has this one settle what
                // was captured (settle_fd_) before it syncs and compares.
                verify_->serve(std::move(conn), *req);
            } else if (cmd == "stop") {
                stopping_ = true;
                int code = shutdown();
                send_reply(conn.get(), {{"ok", code == 0}, {"head_lsn", writer_->head_lsn()}});
                conn.reset();
                shut_down_ = true;
                return;
            } else {
                send_reply(conn.get(), {{"ok", false}, {"error", fmt::format("unknown command '{}'", cmd)}});
            }
        }
    }

    int shutdown() {
        if (shut_down_) return exit_code_;
        shut_down_ = true;
        close_settles();
        auto ok = settle();
        answer_syncs();
        for (auto& s : syncs_) {
            send_reply(s.conn, {{"ok", false}, {"error", "the agent is stopping; " + sync_timeout_reason(s.lsn)}});
            ::close(s.conn);
        }
        syncs_.clear();
        for (auto& f : flushes_) {
            send_reply(f.conn, {{"ok", false}, {"error", "the agent is stopping before its writeback ended"}});
            ::close(f.conn);
        }
        flushes_.clear();
        journal::Record stop;
        stop.op = journal::Op::stop;
        stop.pid = static_cast<int32_t>(getpid());
        stop.comm = "izwatch";
        stop.message = fmt::format("stopped watching {}", opts_.dir);
        (void)writer_->append(stop);
        persist();
        auto closed = writer_->close();
        // After the journal is closed: what was captured is durable, and the
        // servers resume from their acknowledged LSN on the next start.
        if (shipper_) shipper_->stop();
        // Its threads wait for servers no more once the shipper is stopped.
        if (verify_) verify_->stop();
        if (!ok || !closed) {
            spdlog::error("stopping: {}", (!ok ? ok.error() : closed.error()).message);
            exit_code_ = 1;
        }
        return exit_code_;
    }

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
    std::atomic<replicator::Shipper*> shipper_ptr_{nullptr};  // for the writer's committer thread
    sigset_t stop_signals_{};
    std::vector<FanEvent> batch_;
    struct PendingSync {
        int conn;
        uint64_t lsn;
        Clock::time_point deadline;
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
    Clock::time_point started_;
    bool stopping_ = false;
    bool shut_down_ = false;
    int exit_code_ = 0;
};

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::start(const WatchOptions& options) {
    auto d = std::make_unique<DaemonImpl>(options);
    if (auto ok = d->arm(); !ok) return fail(ok.error());
    return std::unique_ptr<Daemon>(std::move(d));
}

}  // namespace iz::agent
