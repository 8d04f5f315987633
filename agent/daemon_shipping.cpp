// Replication: starting the shipper, telling it what is durable, and what
// every server has applied.

#include "daemon_impl.hpp"

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

namespace iz::agent {

// The LSN every server has durably applied (the journal's durable LSN
// when there are no servers).
uint64_t DaemonImpl::replicated_lsn() const {
    uint64_t lsn = writer_->durable_lsn();
    if (shipper_ && opts_.mode != "receive-only") lsn = std::min(lsn, shipper_->acked_by_all());
    return lsn;
}

// Replication: the shipper follows the journal on its own threads; a
// conflict a server reports becomes a journal record, so izlog shows it
// and the shipper re-sends the file's whole content.
Status DaemonImpl::start_shipper() {
    if (opts_.shipping.servers.empty()) return {};
    replicator::ShipperOptions so = opts_.shipping;
    so.journal_dir = opts_.journal_dir;
    so.watched_root = opts_.dir;
    so.state_dir = opts_.state_dir;
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
    // A link's first name gone at ship time: the shipper has the capture
    // journal the move it may still hold before it decides (the loop
    // answers through settle_fd_, made before the shipper starts).
    so.settle_capture = [this] { return settle_from_thread(false); };

    // Receive-only: the links connect and subscribe, but nothing of the
    // journal is sent (local_changes.hpp reports what it holds), and no
    // server holds the journal back.
    if (opts_.mode == "receive-only") {
        so.send = false;
        so.register_consumers = false;
    }
    so.receiver = receiver_;
    auto shipper = replicator::Shipper::start(std::move(so));
    if (!shipper) return fail(shipper.error());
    shipper_ = std::move(*shipper);
    shipper_ptr_.store(shipper_.get());
    return {};
}

Status DaemonImpl::open_receiver() {
    if (opts_.mode == "send-only" || opts_.shipping.servers.empty()) return {};
    ReceiverOptions ro;
    ro.root = opts_.dir;
    ro.state_dir = opts_.state_dir / "receive";
    ro.agent_id = opts_.shipping.agent_id;
    ro.journal = [this](journal::Record r) -> Status {
        std::lock_guard lock(writer_mu_);
        auto lsn = writer_->append(std::move(r));
        if (!lsn) return fail(lsn.error());
        return {};
    };
    ro.journal_durable = [this]() -> Status {
        std::lock_guard lock(writer_mu_);
        return writer_->wait_durable(writer_->head_lsn());
    };
    ro.applying = [this](const std::string& path, const std::string& target) { note_applied(path, target); };
    ro.resubscribe = [this](const std::string& why) {
        if (auto* s = shipper_ptr_.load()) s->resubscribe(why);
    };
    // The eventfd is made after the receiver: read when the cursor moves.
    ro.moved = [this] {
        uint64_t one = 1;
        if (ack_fd_ >= 0) (void)!::write(ack_fd_, &one, sizeof one);
    };
    // Receive-only sends nothing: no local change is ever acknowledged, and
    // a forward does not wait for one (local_changes.hpp reports them).
    if (opts_.mode == "send-receive") {
        ro.unacked_local = [this](const std::string& path, const std::string& target) {
            return unacked_local(path, target);
        };
        ro.unacked_beneath = [this](const std::string& dir) { return unacked_beneath(dir); };
        // Forwards come from the first server only (docs/SHARING.md).
        ro.wait_acked = [this](uint64_t lsn, std::chrono::milliseconds timeout) {
            auto* s = shipper_ptr_.load();
            if (!s) {
                std::this_thread::sleep_for(timeout);
                return false;
            }
            return static_cast<bool>(s->wait_acked_by(0, lsn, timeout));
        };
        // A file open for writing here is not replaced under its writer:
        // once it closed, its change is journaled before the forward goes on.
        ro.settle_capture = [this]() -> Status {
            if (auto ok = settle_from_thread(false); !ok) return fail(ok.error());
            return {};
        };
    }
    // Receive-only: a forward over a local change keeps that aside first.
    // (local_changes_ is made after the receiver, before any forward.)
    if (opts_.mode == "receive-only") {
        ro.local_change = [this](const std::string& path) { return local_changes_ && local_changes_->holds(path); };
        ro.local_change_kept = [this](const std::string& path) {
            if (local_changes_) local_changes_->forget(path);
        };
    }
    auto receiver = Receiver::open(std::move(ro));
    if (!receiver) return fail(receiver.error());
    receiver_ = *receiver;
    // What the receiver applies is journaled by it, with its origin.
    capture_->ignore_changes_of(static_cast<int32_t>(::getpid()));
    stamp_capture(*capture_);
    return {};
}

void DaemonImpl::stamp_capture(Capture& capture) {
    capture.applied_by_receiver([this] { return take_applied(); });
    std::weak_ptr<Receiver> weak = receiver_;
    std::string server = opts_.shipping.servers.front().to_string();
    capture.stamp_with(
        [weak, server] {
            std::vector<journal::SeenLsn> seen;
            if (auto r = weak.lock()) seen.push_back(journal::SeenLsn{server, r->seen()});
            return seen;
        },
        [this](const std::string& path, const std::string& target, uint64_t lsn) {
            std::lock_guard lock(local_mu_);
            local_lsns_[path] = lsn;
            if (!target.empty()) local_lsns_[target] = lsn;
            // Only a forward of a path forgets it: what every server has
            // goes now and then, or each path ever changed would stay.
            // (Next when it doubled: an agent away from its server for long
            // does not walk them all at every change.)
            if (local_lsns_.size() < local_lsns_prune_at_) return;
            auto* s = shipper_ptr_.load();
            uint64_t acked = s ? s->acked_by_all() : 0;
            std::erase_if(local_lsns_, [acked](const auto& e) { return e.second <= acked; });
            local_lsns_prune_at_ = std::max(kLocalLsnsPrune, 2 * local_lsns_.size());
        });
}

uint64_t DaemonImpl::unacked_local(const std::string& path, const std::string& target) {
    uint64_t lsn = 0;
    {
        std::lock_guard lock(local_mu_);
        for (const std::string* p : {&path, &target}) {
            if (p == &target && p->empty()) continue;
            if (auto it = local_lsns_.find(*p); it != local_lsns_.end()) lsn = std::max(lsn, it->second);
        }
    }
    if (lsn == 0) return 0;
    auto* s = shipper_ptr_.load();
    if (!s || !s->wait_acked_by(0, lsn, std::chrono::milliseconds(0))) return lsn;
    // The server has it: forgotten, unless changed again meanwhile.
    std::lock_guard lock(local_mu_);
    for (const std::string* p : {&path, &target})
        if (auto it = local_lsns_.find(*p); it != local_lsns_.end() && it->second <= lsn) local_lsns_.erase(it);
    return 0;
}

// The shipper sends only what the journal holds durably, and learns of
// it from the writer's committer thread the moment it is so (this
// thread's loop may sleep in epoll_wait for up to a second).
std::function<void(uint64_t)> DaemonImpl::durable_relay() {
    return [this](uint64_t lsn) {
        if (auto* s = shipper_ptr_.load()) s->notify(lsn);
    };
}

// Noted before the forward is applied (a rescan scanning meanwhile finds
// it here, journaled or not) and again after (its events were queued
// before that number: a drain that began after it read them).
void DaemonImpl::note_applied(const std::string& path, const std::string& target) {
    std::lock_guard lock(applied_mu_);
    ++applied_seq_;
    applied_paths_.emplace_back(applied_seq_, path);
    if (!target.empty()) applied_paths_.emplace_back(applied_seq_, target);
}

// Kept, not cleared: one applied after the rescan's scan was not in it,
// and its events may be lost to the next overflow as well.
std::vector<std::string> DaemonImpl::take_applied() {
    std::lock_guard lock(applied_mu_);
    std::vector<std::string> paths;
    paths.reserve(applied_paths_.size());
    for (auto& [seq, path] : applied_paths_) paths.push_back(path);
    return paths;
}

uint64_t DaemonImpl::applied_mark() {
    std::lock_guard lock(applied_mu_);
    return applied_seq_;
}

void DaemonImpl::forget_applied_through(uint64_t seq) {
    std::lock_guard lock(applied_mu_);
    while (!applied_paths_.empty() && applied_paths_.front().first <= seq) applied_paths_.pop_front();
}

}  // namespace iz::agent
