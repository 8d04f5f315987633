// The event loop: one thread waits on every descriptor (fanotify, the eBPF
// ring buffer, the control socket, signals, acks, settles, writebacks) and
// runs the periodic work (rates, journal retries, retention, tree saving).

#include "daemon_impl.hpp"

#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace iz::agent {

int DaemonImpl::run() {
    self_pid_ = static_cast<int32_t>(::getpid());
    auto last_persist = Clock::now();
    auto last_event = Clock::now();
    auto last_retention = Clock::now() - std::chrono::seconds(55);
    auto last_rate = Clock::now();
    uint64_t events_at_rate = 0;
    uint64_t records_at_persist = capture_->stats().records;
    while (!stopping_) {
        int timeout = std::min(1000, ms_until_sync_deadline());
        if (auto due = capture_->next_flush_in()) timeout = static_cast<int>(std::min<int64_t>(due->count(), timeout));
        if (auto due = capture_->held_due_in()) timeout = static_cast<int>(std::min<int64_t>(due->count(), timeout));
        epoll_event evs[8];
        int n = ::epoll_wait(epoll_fd_, evs, 8, timeout);
        if (n < 0 && errno != EINTR) {
            spdlog::error("epoll_wait: {}", std::strerror(errno));
            break;
        }
        bool drained = false;
        for (int i = 0; i < n; ++i) {
            switch (evs[i].data.u32) {
                case 1:
                    gather();
                    drain();
                    drained = true;
                    last_event = Clock::now();
                    break;
                case 2: serve_control(); break;
                case 3: stopping_ = true; break;
                case 4:
                    drain();
                    drained = true;
                    last_event = Clock::now();
                    break;
                case 5: take_acks(); break;
                case 6: answer_settles(); break;
                case 7: take_flushes(); break;
                case 8: answer_metrics(); break;
            }
        }
        // Most eBPF events wake nobody (a write's range comes before its
        // fanotify event, which does): those no fanotify event follows
        // (libaio's writes, process exits) are read whenever the loop turns,
        // at least once a second.
        if (!drained) consume_bpf();
        // A move held for the other half of an exchange that did not come.
        if (auto due = capture_->held_due_in(); due && due->count() == 0) capture_->release_held();
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
            if (local_changes_)
                if (auto ok = local_changes_->poll(); !ok)
                    spdlog::error("receive-only: reading the journal for local changes: {}", ok.error().message);
            report_status();
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

void DaemonImpl::add(int fd, uint32_t tag) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = tag;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
}

std::string DaemonImpl::mode() const { return bpf_ ? "fanotify+ebpf" : "fanotify only"; }

// The watched directory itself deleted: what was in it is journaled as
// it went (and shipped), but nothing can be created in it any more. The
// agent keeps serving (servers still get the deletions, and sync and
// status keep working) and says so until it is stopped.
void DaemonImpl::check_root() {
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
void DaemonImpl::gather() {
    if (last_batch_ >= kGatherBelow) return;
    timespec pause{0, 3'000'000};
    ::nanosleep(&pause, nullptr);
}

// The kernel emits a write's eBPF event before its fanotify event, so
// once fanotify is read, the ring buffer holds the ranges of every
// write read (and the exits of every process named).
void DaemonImpl::drain() {
    batch_.clear();
    // The forwards applied before this read began have their events in it
    // (read to the end of the queue), or in the overflow's rescan.
    uint64_t applied_before = applied_mark();
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
    capture_->on_drain(batch_);
    if (got) forget_applied_through(applied_before);
}

void DaemonImpl::consume_bpf() {
    if (!bpf_) return;
    auto got = bpf_->consume([this](const DirtyRangeEvent& ev) {
        // The agent's own writes: its journal and tree state, which are not
        // in the tree, and what the receiver applies, which is journaled by
        // the receiver (the capture drops its records) and reaches the
        // capture through fanotify all the same. Their ranges named inodes
        // the capture then looked for in vain, each miss a walk of the
        // whole tree.
        if (self_pid_ != 0 && ev.pid == self_pid_ && ev.kind != DirtyKind::process_exit) return;
        capture_->on_dirty_range(ev);
    });
    if (!got) spdlog::error("eBPF ring buffer: {}", got.error().message);
    auto dropped = bpf_->stats().dropped;
    if (dropped != bpf_dropped_) {
        spdlog::warn("eBPF ring buffer dropped {} events; writes in flight are journaled as whole-file",
                     dropped - bpf_dropped_);
        bpf_dropped_ = dropped;
        capture_->on_dirty_ranges_lost();
    }
}

void DaemonImpl::take_acks() {
    uint64_t n = 0;
    // Nonblocking: EAGAIN once drained. Pending syncs are answered below.
    while (::read(ack_fd_, &n, sizeof n) == static_cast<ssize_t>(sizeof n)) {
    }
}
}  // namespace iz::agent
