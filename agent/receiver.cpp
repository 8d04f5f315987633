#include "receiver.hpp"

#include "replicator/apply/applied_record.hpp"

#include <pthread.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace iz::agent {

namespace proto = replicator::proto;
using replicator::Outcome;

Result<std::shared_ptr<Receiver>> Receiver::open(ReceiverOptions options) {
    std::shared_ptr<Receiver> r(new Receiver(std::move(options)));
    replicator::ApplierOptions ao;
    ao.root = r->opts_.root;
    ao.state_dir = r->opts_.state_dir;
    ao.host = r->opts_.agent_id;
    auto applier = replicator::Applier::open(ao);
    if (!applier) return fail(Error{"receiving: " + applier.error().message, applier.error().sys_errno});
    r->applier_ = std::move(*applier);
    // The local user writes here too: conflicts are the server's to find
    // (what each change had seen), not this applier's (Applier::share).
    r->applier_->share();
    r->applied_ = r->applier_->durable_lsn();
    r->seen_ = r->applied_.load();
    r->thread_ = std::thread([raw = r.get()] {
        pthread_setname_np(pthread_self(), "iz-receive");
        raw->run();
    });
    return r;
}

Receiver::~Receiver() { stop(); }

void Receiver::stop() {
    {
        std::lock_guard lock(mu_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

std::string Receiver::last_error() const {
    std::lock_guard lock(mu_);
    return last_error_;
}

void Receiver::on_connected() {
    {
        std::lock_guard lock(mu_);
        queue_.emplace_back(Restart{});
    }
    cv_.notify_all();
}

void Receiver::on_forward(proto::Forward f) {
    {
        std::lock_guard lock(mu_);
        queue_.emplace_back(std::move(f));
    }
    cv_.notify_all();
}

void Receiver::run() {
    for (;;) {
        Item item;
        bool last_queued = false;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            item = std::move(queue_.front());
            queue_.pop_front();
            last_queued = queue_.empty();
        }
        try {
            if (std::holds_alternative<Restart>(item)) {
                applier_->abort_content();
                applier_->resume();
                continue;
            }
            apply(std::get<proto::Forward>(item), last_queued);
        } catch (const std::exception& e) {
            spdlog::error("receiving: internal error: {}", e.what());
            std::lock_guard lock(mu_);
            last_error_ = std::string("internal error: ") + e.what();
        }
    }
}

bool Receiver::wait_for_local(const proto::OpMsg& op) {
    if (!opts_.unacked_local || !opts_.wait_acked) return true;
    if (op.kind == proto::OpKind::noop || op.kind == proto::OpKind::conflict ||
        op.kind == proto::OpKind::content_data || op.kind == proto::OpKind::content_end)
        return true;  // changes nothing, or its beginning waited
    for (bool told = false;;) {
        uint64_t lsn = opts_.unacked_local(op.path, op.target);
        if (lsn == 0) return true;
        if (!told) {
            spdlog::info("receiving: {} '{}' (server LSN {}) waits until the server has this agent's change of it "
                         "(LSN {})",
                         proto::op_kind_name(op.kind), op.path, op.lsn, lsn);
            told = true;
        }
        if (opts_.wait_acked(lsn, std::chrono::milliseconds(200))) continue;
        std::lock_guard lock(mu_);
        if (stopping_) return false;
    }
}

void Receiver::apply(const proto::Forward& f, bool last_queued) {
    const auto& op = f.op;
    if (!wait_for_local(op)) return;
    auto result = applier_->apply(op);
    if (result.outcome == Outcome::applied && op.kind == proto::OpKind::conflict) {
        ++conflicts_;
        spdlog::warn("receiving: conflict on '{}' from {}: {}", op.path, f.origin, op.note);
    }
    for (auto& n : applier_->take_rejections())
        spdlog::error("receiving: cannot apply all of server LSN {} on '{}': {}", n.lsn, n.path, n.message);
    switch (result.outcome) {
        case Outcome::applied:
            if (!op.more)
                if (auto r = replicator::journal_record_of(op, f.origin, f.origin_lsn))
                    if (auto ok = opts_.journal(std::move(*r)); !ok)
                        spdlog::error("receiving: journaling server LSN {}: {}", op.lsn, ok.error().message);
            break;
        case Outcome::skipped:
            spdlog::debug("receiving: skipped {} '{}' (server LSN {}): {}", proto::op_kind_name(op.kind), op.path,
                          op.lsn, result.message);
            break;
        case Outcome::rejected:
        case Outcome::refused:
        case Outcome::failed: {
            auto why = fmt::format("{} '{}' (server LSN {}, from {}): {}", proto::op_kind_name(op.kind), op.path, op.lsn,
                                   f.origin, result.message);
            spdlog::error("receiving: cannot apply {}", why);
            std::lock_guard lock(mu_);
            last_error_ = why;
            break;
        }
    }
    if (!op.more) {
        uncommitted_ = op.lsn;
        seen_ = op.lsn;
    }
    // Committed once nothing more waits: a burst costs one syncfs.
    if (!last_queued || uncommitted_ <= applied_.load()) return;
    if (auto ok = applier_->finish_batch(); !ok) spdlog::error("receiving: {}", ok.error().message);
    if (auto ok = applier_->commit(uncommitted_); !ok) {
        spdlog::error("receiving: making server LSN {} durable: {}", uncommitted_, ok.error().message);
        std::lock_guard lock(mu_);
        last_error_ = ok.error().message;
        return;
    }
    applied_ = uncommitted_;
    if (opts_.moved) opts_.moved();
}

}  // namespace iz::agent
