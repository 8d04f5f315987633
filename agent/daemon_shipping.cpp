// Replication: starting the shipper, telling it what is durable, and what
// every server has applied.

#include "daemon_impl.hpp"

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

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
    if (opts_.mode == "send-receive" || opts_.mode == "receive-only") {
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
        ro.moved = so.on_acked;
        ro.resubscribe = [this](const std::string& why) {
            if (auto* s = shipper_ptr_.load()) s->resubscribe(why);
        };
        auto receiver = Receiver::open(std::move(ro));
        if (!receiver) return fail(receiver.error());
        receiver_ = *receiver;
        so.receiver = receiver_;
        // What the receiver applies is journaled by it, with its origin.
        capture_->ignore_changes_of(static_cast<int32_t>(::getpid()));
    }
    auto shipper = replicator::Shipper::start(std::move(so));
    if (!shipper) return fail(shipper.error());
    shipper_ = std::move(*shipper);
    shipper_ptr_.store(shipper_.get());
    return {};
}

// The shipper sends only what the journal holds durably, and learns of
// it from the writer's committer thread the moment it is so (this
// thread's loop may sleep in epoll_wait for up to a second).
std::function<void(uint64_t)> DaemonImpl::durable_relay() {
    return [this](uint64_t lsn) {
        if (auto* s = shipper_ptr_.load()) s->notify(lsn);
    };
}
}  // namespace iz::agent
