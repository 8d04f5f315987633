// The control socket: status, sync, verify and stop requests, and the syncs
// that wait (for their writeback, then for every server) until answered.

#include "daemon_impl.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>

#include "agent/control.hpp"
#include "common/unique_fd.hpp"

namespace iz::agent {

void DaemonImpl::serve_control() {
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
            nlohmann::json j = status();
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
        } else if (cmd == "revert") {
            serve_revert(std::move(conn), *req);
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

// Until the earliest pending sync times out (acks wake the loop earlier).
int DaemonImpl::ms_until_sync_deadline() const {
    int64_t best = INT32_MAX;
    auto now = Clock::now();
    for (auto& s : syncs_)
        best = std::min<int64_t>(best, std::chrono::ceil<std::chrono::milliseconds>(s.deadline - now).count());
    for (auto& f : flushes_)
        best = std::min<int64_t>(best, std::chrono::ceil<std::chrono::milliseconds>(f.deadline - now).count());
    return static_cast<int>(std::max<int64_t>(0, best));
}

// A sync is taken (its LSN fixed) once it settled what was captured.
void DaemonImpl::begin_sync(int conn, Clock::time_point deadline) {
    if (auto ok = settle(); !ok) {
        send_reply(conn, {{"ok", false}, {"error", ok.error().message}});
        ::close(conn);
        return;
    }
    // Answered from the loop once every server has it, so capture goes
    // on while the servers catch up.
    syncs_.push_back(PendingSync{conn, writer_->head_lsn(), deadline, {}, receive_attempts()});
}

// Syncs whose writeback has been done: what it raised is in the ring
// buffer now, and settle() journals it with the rest.
void DaemonImpl::take_flushes() {
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
    for (auto& f : ready) syncs_.push_back(PendingSync{f.conn, writer_->head_lsn(), f.deadline, {}, receive_attempts()});
}

// Called after every drain of events: nothing to do most of the time.
void DaemonImpl::answer_syncs() {
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
    ask_heads();
    uint64_t done = replicated_lsn();
    // Send-receive: also everything the server had when the sync was taken.
    auto received = [&](const PendingSync& s) {
        return !receiving() || (s.head && receiver_->applied() >= *s.head);
    };
    // A forward this agent cannot apply: it differs from the fileset while
    // it is outstanding, so a sync whose sending is done says so at once.
    auto not_received = receive_failures();
    bool passed_over = receiving() && !receiver_->permanent_failures().empty();
    uint64_t attempts = receive_attempts();
    std::string refused = subscribe_refused();
    std::erase_if(syncs_, [&](const PendingSync& s) {
        bool held = !received(s) && receiver_->failure() && attempts > s.receive_attempts;
        if (done >= s.lsn && !refused.empty()) {
            // Sent, but nothing comes back: not in sync with the fileset.
            send_reply(s.conn, {{"ok", false},
                                {"error", fmt::format("sent through LSN {}, but received nothing: {}", s.lsn, refused)}});
        } else if (done >= s.lsn && !not_received.empty() && (held || (received(s) && passed_over))) {
            send_reply(s.conn, {{"ok", false}, {"error", not_received}});
        } else if (done >= s.lsn && received(s)) {
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

// Send-receive: why the server forwards come from refused to forward
// anything on its current connection; "" when it did not.
std::string DaemonImpl::subscribe_refused() const {
    if (!receiving() || !shipper_) return {};
    auto servers = shipper_->status();
    return servers.empty() ? std::string() : servers.front().subscribe_refused;
}

uint64_t DaemonImpl::receive_attempts() const { return receiving() ? receiver_->failed_attempts() : 0; }

// What this agent could not apply of what the server forwarded: the one
// being retried, and those passed over for good; "" for none.
std::string DaemonImpl::receive_failures() const {
    if (!receiving()) return {};
    std::string why;
    if (auto f = receiver_->failure())
        why = fmt::format("cannot apply {} '{}' (server LSN {}, from {}): {}; retrying (attempt {})", f->op, f->path,
                          f->lsn, f->origin, f->message, f->attempts);
    auto passed = receiver_->permanent_failures();
    size_t named = 0;
    for (auto& f : passed) {
        if (named++ == 5) {
            why += fmt::format("; and {} more", passed.size() - 5);
            break;
        }
        why += fmt::format("{}cannot ever apply {} '{}' (server LSN {}, from {}): {}; passed over", why.empty() ? "" : "; ",
                           f.op, f.path, f.lsn, f.origin, f.message);
    }
    return why.empty() ? why : "this agent differs from the fileset: " + why;
}

// What servers reported they can never apply, up to `lsn`; "" for none.
std::string DaemonImpl::rejected_through(uint64_t lsn) const {
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

// A sync of a send-receive agent waits for what the server's fileset
// journal held when it was taken: asked as soon as the server can answer
// (a server reached later holds at least that much).
void DaemonImpl::ask_heads() {
    if (!receiving() || !shipper_) return;
    for (auto& s : syncs_) {
        if (s.head) continue;
        auto head = shipper_->ask_head(std::chrono::seconds(2));
        if (!head) return;  // not connected yet: asked again at the next wake-up
        s.head = *head;
    }
}

std::string DaemonImpl::sync_timeout_reason(uint64_t lsn) const {
    if (auto failed = writer_->failure())
        return fmt::format("timed out: the journal failed ({}); it is retried every few seconds", failed->message);
    if (writer_->durable_lsn() < lsn || !shipper_)
        return fmt::format("timed out: LSN {} is not yet durable (durable LSN {})", lsn, writer_->durable_lsn());
    std::string why;
    if (receiving() && shipper_->acked_by_all() >= lsn) {
        auto err = receiver_->last_error();
        return fmt::format("timed out: sent everything, but received only through server LSN {}{}", receiver_->applied(),
                           err.empty() ? "" : "; last error: " + err);
    }
    for (auto& srv : shipper_->status()) {
        if (srv.acked_lsn >= lsn) continue;
        why += fmt::format("{}{} has applied through LSN {} ({})", why.empty() ? "" : "; ", srv.endpoint, srv.acked_lsn,
                           !srv.connected ? "not connected" + (srv.last_error.empty() ? "" : ": " + srv.last_error)
                                          : fmt::format("{} records behind{}", srv.records_behind,
                                                        srv.last_error.empty() ? "" : "; last error: " + srv.last_error));
    }
    return fmt::format("timed out waiting for LSN {}: {}", lsn, why);
}
}  // namespace iz::agent
