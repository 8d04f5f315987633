// The daemon's lifetime: arming (in the order that makes every later change
// captured), the clean shutdown, and the destructor's order of closing.
// Its parts are in daemon_*.cpp (see daemon_impl.hpp).
#include "agent/daemon.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "agent/control.hpp"
#include "agent/crash_recovery.hpp"
#include "agent/watch_paths.hpp"
#include "common/service_notify.hpp"
#include "join_merge.hpp"
#include "daemon_impl.hpp"
#include "open_writers.hpp"

namespace iz::agent {

namespace {

// How long a start waits for the journal's lock of an agent that died.
constexpr std::chrono::seconds kJournalLockWait{10};
// How long a first start joining a fileset with a non-empty directory waits
// for the server to compare the two trees.
constexpr std::chrono::seconds kJoinCompareWait{10};
// The origin of the baseline records of entries the fileset had alike.
constexpr const char* kJoinOrigin = "izwatch-join";

}  // namespace

DaemonImpl::~DaemonImpl() {
    stop_metrics();
    close_settles();
    // Its threads signal ack_fd_: they end before the descriptor does.
    if (shipper_) shipper_->stop();
    if (receiver_) receiver_->stop();
    if (verify_) verify_->stop();
    stop_revert();
    if (settle_fd_ >= 0) ::close(settle_fd_);
    if (metrics_fd_ >= 0) ::close(metrics_fd_);
    if (control_fd_ >= 0) {
        ::close(control_fd_);
        ::unlink(control_socket_path(opts_.dir).c_str());
    }
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (ack_fd_ >= 0) ::close(ack_fd_);
    if (signal_fd_ >= 0) ::close(signal_fd_);
    if (root_fd_ >= 0) ::close(root_fd_);
}

Status DaemonImpl::arm() {
    // Blocked before any thread starts (journal committer, io_uring
    // workers, shipper): threads inherit the mask, so SIGTERM reaches
    // only the signalfd and stopping is always the clean shutdown.
    sigemptyset(&stop_signals_);
    sigaddset(&stop_signals_, SIGTERM);
    sigaddset(&stop_signals_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals_, nullptr);
    // The receiver's test for a writer takes read leases (open_writers.hpp).
    block_lease_signal();
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
        auto bpf = BpfCapture::open(st.st_dev, ::getpid());
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
    // Receive-only: what the restart finds changed is a local change too;
    // a baseline is not (it is what the directory held when it joined),
    // unless it was compared with the fileset: then what differs from it is.
    uint64_t before_catch_up = writer_->head_lsn();
    if (opts_.mode != "send-only" && !baseline) {
        capture_->not_local_at_catch_up(Receiver::unconfirmed_paths(opts_.state_dir / "receive"));
        if (saved->lsn) {
            if (auto received = received_paths_after(opts_.journal_dir, *saved->lsn))
                capture_->received_at_catch_up(std::move(*received));
            else
                spdlog::warn("reading what was received since the saved tree: {}", received.error().message);
        }
    }
    if (auto ok = open_receiver(); !ok) return ok;
    // Joining a fileset with what the directory holds: what the fileset
    // has alike is adopted (its records are not sent), and in receive-only
    // mode the rest is a local change like any other (kept aside before a
    // forward replaces it, never sent).
    bool joined = baseline && receiver_ && receiver_->cursor() == 0 && adopt_at_join();
    if (auto ok = capture_->catch_up(saved->tree, baseline ? "baseline" : "restart"); !ok) return ok;
    if (auto ok = writer_->flush(); !ok) return ok;
    if (opts_.mode == "receive-only")
        local_changes_ = std::make_unique<LocalChanges>(
            opts_.journal_dir, baseline && !joined ? writer_->head_lsn() : before_catch_up);
    if (auto ok = save_tree(capture_->tree(), writer_->head_lsn(), opts_.state_dir / "tree.state"); !ok) return ok;

    // The shipper signals it on every ack: pending syncs are answered
    // the moment a server has what they wait for, without polling.
    ack_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ack_fd_ < 0) return fail(sys_error("create eventfd for replication acks", opts_.dir, errno));
    // Before the shipper, which may ask for a settle at once.
    settle_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (settle_fd_ < 0) return fail(sys_error("create eventfd for settles", opts_.dir, errno));
    if (auto ok = start_shipper(); !ok) return ok;
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
    // Last: a scrape finds everything it reads in place.
    return start_metrics();
}

bool DaemonImpl::adopt_at_join() {
    replicator::ShipperOptions so = opts_.shipping;
    so.journal_dir = opts_.journal_dir;
    so.watched_root = opts_.dir;
    auto plan = compare_for_join(root_fd_, std::move(so), opts_.excludes, kJoinCompareWait);
    if (!plan) {
        spdlog::warn("joining the fileset with what {} holds, without comparing it first ({}): every entry is "
                     "sent, and the server keeps those it holds already as conflict copies",
                     opts_.dir, plan.error().message);
        return false;
    }
    if (plan->adopted.empty() && plan->differing == 0 && plan->only_here == 0) return false;  // an empty directory
    spdlog::info("joining the fileset with what {} holds: {} entries the fileset holds alike are adopted, {} differ "
                 "(kept both), {} the fileset lacks; the comparison cost {} bytes",
                 opts_.dir, plan->adopted.size(), plan->differing, plan->only_here, plan->compare_bytes);
    capture_->adopt_at_catch_up(std::move(plan->adopted), kJoinOrigin);
    return true;
}

int DaemonImpl::shutdown() {
    if (shut_down_) return exit_code_;
    shut_down_ = true;
    revert_cancel_ = true;  // it journals nothing more
    notify_stopping(fmt::format("stopping: making what was captured durable ({})", status_line()));
    // This thread answers scrapes no more.
    stop_metrics();
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
    stop_revert();
    if (!ok || !closed) {
        spdlog::error("stopping: {}", (!ok ? ok.error() : closed.error()).message);
        exit_code_ = 1;
    }
    return exit_code_;
}
Result<std::unique_ptr<Daemon>> Daemon::start(const WatchOptions& options) {
    auto d = std::make_unique<DaemonImpl>(options);
    if (auto ok = d->arm(); !ok) return fail(ok.error());
    return std::unique_ptr<Daemon>(std::move(d));
}

}  // namespace iz::agent
