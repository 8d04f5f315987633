// One connection on the server: handshake, then operations applied in the
// order they arrive. Every handler runs on the session's strand and catches
// everything: a bad peer costs its own connection, nothing more.
#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <fcntl.h>

#include <algorithm>
#include <thread>

#include "journal/reader.hpp"
#include "replicator/fs/beneath.hpp"
#include "replicator/wire/plaintext_bench.hpp"
#include "forward_coalesce.hpp"
#include "forwarded_dir_times.hpp"
#include "server_context.hpp"

namespace iz::replicator {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {
// Before authentication nothing larger than a handshake message is read.
constexpr uint32_t kMaxHandshakeBody = 4096;
// How long a dropped connection is still read from, so that the peer gets
// the reason rather than a reset (see tell_and_close).
constexpr auto kLinger = std::chrono::seconds(2);

}  // namespace

Session::Session(tcp::socket socket, ServerContext& ctx, uint64_t id)
    : stream_(std::move(socket), *ctx.tls),
      strand_(asio::make_strand(stream_.get_executor())),
      timer_(strand_),
      ctx_(ctx),
      id_(id) {
    boost::system::error_code ec;
    auto ep = stream_.next_layer().remote_endpoint(ec);
    remote_ = ec ? std::string("unknown peer") : fmt::format("{}:{}", ep.address().to_string(), ep.port());
    stream_.next_layer().set_option(tcp::no_delay(true), ec);
    tls_peer_.attach(stream_.native_handle());
}

std::string Session::who() const {
    if (agent_.empty()) return remote_;
    return fmt::format("{} (agent '{}', fileset '{}')", remote_, agent_, fileset_);
}

void Session::start() {
    started_ = last_rx_ = Clock::now();
    auto self = shared_from_this();
    asio::dispatch(strand_, [self] {
        self->arm_timer();
        self->await_first_bytes();
    });
}

void Session::await_first_bytes() {
    auto self = shared_from_this();
    stream_.next_layer().async_wait(tcp::socket::wait_read, asio::bind_executor(strand_, [self](const boost::system::error_code& ec) {
        if (self->state_ == State::closed) return;
        if (ec) {
            spdlog::info("{}: connection lost before the TLS handshake: {}", self->who(), ec.message());
            return self->close();
        }
        char head[2];
        boost::system::error_code rec;
        size_t n = self->stream_.next_layer().receive(asio::buffer(head), tcp::socket::message_peek, rec);
        if (rec || n == 0) {
            spdlog::info("{}: connection closed before the TLS handshake", self->who());
            return self->close();
        }
        if (!looks_like_tls(std::string_view(head, n))) return self->refuse_plaintext();
        self->tls_handshake();
    }));
}

// A peer that sends frames in the clear is most likely an agent from before
// TLS: it gets the reason as an error frame in the clear (it can read
// nothing else), and nothing it sent is read.
void Session::refuse_plaintext() {
    std::string reason = "this server accepts TLS 1.3 connections only; the peer spoke without TLS (an agent of an "
                         "older version?)";
    spdlog::warn("dropping connection from {}: {}", who(), reason);
    state_ = State::closed;
    ctx_.forget(shared_from_this());
    auto frame = proto::encode_frame(proto::ErrorMsg{reason});
    if (!frame) return close_socket();
    auto bytes = std::make_shared<std::string>(std::move(*frame));
    auto self = shared_from_this();
    lingering_ = true;
    asio::async_write(stream_.next_layer(), asio::buffer(*bytes), asio::bind_executor(strand_, [self, bytes](const boost::system::error_code& ec, size_t) {
        if (ec) return self->close_socket();
        boost::system::error_code sec;
        self->stream_.next_layer().shutdown(tcp::socket::shutdown_send, sec);
    }));
    // Closing with its frame unread would reset the connection before the
    // peer reads the reason: read until it hangs up, or kLinger.
    timer_.expires_after(kLinger);
    timer_.async_wait(asio::bind_executor(strand_, [self](const boost::system::error_code& e) {
        if (!e) self->close_socket();
    }));
    discard_input();
}

void Session::tls_handshake() {
    auto self = shared_from_this();
    stream_.async_handshake(asio::ssl::stream_base::server, asio::bind_executor(strand_, [self](const boost::system::error_code& ec) {
        if (self->state_ == State::closed) return;
        try {
            if (ec) {
                spdlog::warn("dropping connection from {}: {}", self->who(),
                             failure_reason(ec, &self->tls_peer_, TlsRole::server));
                return self->close();
            }
            if (!established(self->stream_.native_handle(), &self->tls_peer_)) {
                spdlog::warn("dropping connection from {}: TLS refused: the session was not authenticated by a key",
                             self->who());
                return self->close();
            }
            auto* ssl = self->stream_.native_handle();
            self->tls_summary_ = tls_summary(ssl);
            self->peer_identity_ = peer_identity(ssl, self->tls_peer_);
            if (SSL_session_reused(ssl) != 1) {
                // No shared key: the proofs inside are keyed by the session itself.
                auto key = exported_proof_key(ssl);
                if (!key) return self->drop(key.error().message);
                self->exported_key_ = std::move(*key);
            }
            self->state_ = State::hello;
            auto marker = plaintext_bench_marker();
            if (marker.empty()) return self->read_more();
            asio::async_write(self->stream_, asio::buffer(marker.data(), marker.size()),
                              asio::bind_executor(self->strand_, [self](const boost::system::error_code& wec, size_t) {
                                  if (self->state_ == State::closed) return;
                                  if (wec) return self->close();
                                  self->read_more();
                              }));
        } catch (const std::exception& e) {
            spdlog::error("{}: internal error: {}", self->who(), e.what());
            self->close();
        }
    }));
}

void Session::shutdown(std::string reason) {
    auto self = shared_from_this();
    asio::post(strand_, [self, reason = std::move(reason)] { self->drop(reason); });
}

Access Session::current_access(const std::string& fileset) {
    return ctx_.access_of(tls_peer_.cert_accepted ? tls_peer_.fingerprint : "", by_key() ? tls_peer_.offered_identity : "",
                          fileset);
}

bool Session::by_key() { return SSL_session_reused(stream_.native_handle()) == 1; }

// Nothing a receive-only agent sends is applied. Each record is refused
// like one the replica can never take: told to the agent once per LSN (its
// status and sync name it), and the stream goes on, so that what the
// server forwards to it keeps coming.
void Session::refuse_receive_only(const proto::OpMsg& m) {
    auto why = fmt::format("fileset '{}' is receive-only for {}: nothing it sends is applied", fileset_, peer_identity_);
    {
        std::lock_guard lock(slot_->mu);
        if (slot_->owner != id_) return drop("superseded by a newer connection from the same agent");
        slot_->counters.count(m, ApplyResult{.outcome = Outcome::rejected, .message = why}, *slot_->applier);
    }
    if (m.kind == proto::OpKind::noop || m.lsn == last_refused_lsn_) return;
    last_refused_lsn_ = m.lsn;
    if (!told_receive_only_) spdlog::warn("{}: {}; refusing {} '{}' at LSN {} and what follows", who(), why,
                                          proto::op_kind_name(m.kind), m.path, m.lsn);
    else if (spdlog::should_log(spdlog::level::debug))
        spdlog::debug("{}: refused {} '{}' at LSN {}: receive-only", who(), proto::op_kind_name(m.kind), m.path, m.lsn);
    told_receive_only_ = true;
    tell_rejected(m.lsn, m.path, why);
}

void Session::recheck() {
    auto self = shared_from_this();
    asio::post(strand_, [self] {
        if (self->state_ == State::closed) return;
        if (self->by_key() && !self->ctx_.key_admitted(self->tls_peer_.offered_identity))
            return self->drop(fmt::format("{} is no longer among this server's agents", self->peer_identity_));
        if (self->state_ == State::ready) {
            auto access = self->current_access(self->fileset_);
            if (access == Access::none)
                return self->drop(fmt::format("{} may no longer use fileset '{}' on this server", self->peer_identity_,
                                              self->fileset_));
            if (access == Access::send_only && self->forward_) {
                // Only the forwards end: the connection stays, as for a
                // subscribe refused at its start, so that the agent goes on
                // shipping without reconnecting into the same refusal.
                self->forward_->stop = true;
                self->forward_.reset();
                self->subscribe_refused_ = true;
                std::string why = fmt::format("fileset '{}' is now send-only for {}: nothing is forwarded to it",
                                              self->fileset_, self->peer_identity_);
                spdlog::warn("{}: forwarding stopped: {}", self->who(), why);
                self->send(proto::SubscribeRefused{self->fileset_, why});
            } else if (access != Access::send_only && access != self->access_ && self->subscribe_refused_)
                self->allow_subscribe_again(access);
            if (access != self->access_)
                spdlog::info("{}: access to fileset '{}' is now {}", self->who(), self->fileset_, access_name(access));
            if (access == Access::receive_only && self->access_ != Access::receive_only && self->slot_) {
                // A file half sent stays unapplied: nothing more of it will be.
                std::lock_guard lock(self->slot_->mu);
                if (self->slot_->owner == self->id_) self->slot_->applier->abort_content();
            }
            self->access_ = access;
        }
        if (!self->tls_peer_.cert_accepted) return;
        auto& pins = self->ctx_.options.allowed_agents;
        auto name = pins ? pins->name_of(self->tls_peer_.fingerprint) : std::nullopt;
        auto id = format_node_id(self->tls_peer_.fingerprint);
        if (!name) return self->drop(fmt::format("certificate {} is no longer among the allowed agents", id));
        if (!name->empty() && !self->agent_.empty() && *name != self->agent_)
            return self->drop(fmt::format("certificate {} is now allowed only as agent '{}'", id, *name));
    });
}

void Session::arm_timer() {
    timer_.expires_after(std::chrono::seconds(1));
    auto self = shared_from_this();
    timer_.async_wait([self](const boost::system::error_code& ec) {
        if (ec || self->state_ == State::closed) return;
        try {
            auto now = Clock::now();
            if (self->state_ != State::ready && now - self->started_ > self->ctx_.options.handshake_timeout)
                return self->drop("no complete handshake in time");
            if (self->state_ == State::ready && now - self->last_rx_ > self->ctx_.options.idle_timeout)
                return self->drop("silent for too long");
            self->arm_timer();
        } catch (const std::exception& e) {
            self->drop(std::string("internal error: ") + e.what());
        }
    });
}

void Session::read_more() {
    if (state_ == State::closed) return;
    size_t room = 0;
    char* dst = frames_.space(room);
    auto self = shared_from_this();
    reading_ = true;
    on_stream(stream_, [&](auto& stream) {
        stream.async_read_some(asio::buffer(dst, room), asio::bind_executor(strand_, [self](const boost::system::error_code& ec, size_t n) {
            self->reading_ = false;
            if (self->state_ == State::closed) {
                if (!self->lingering_) return;
                return ec ? self->close_socket() : self->discard_input();
            }
            try {
                if (ec) {
                    if (self->frames_.buffered() > 0 && ec == asio::error::eof)
                        spdlog::info("{}: connection closed in the middle of a frame", self->who());
                    else if (ec == asio::error::eof && self->state_ == State::auth)
                        // The agent checks the server's proof first and hangs up
                        // when it is wrong: the two hold different keys.
                        spdlog::warn("{}: refused: the agent hung up during authentication (it holds a different key?)",
                                     self->who());
                    else if (ec == asio::error::eof)
                        spdlog::info("{}: connection closed by the peer", self->who());
                    else
                        spdlog::info("{}: connection lost: {}", self->who(), ec.message());
                    return self->close();
                }
                self->frames_.received(n);
                self->handle_buffered();
            } catch (const std::exception& e) {
                self->drop(std::string("internal error: ") + e.what());
            }
        }));
    });
}

void Session::handle_buffered() {
    // Every complete frame of this receive, then one more receive.
    while (state_ != State::closed) {
        // Before authentication nothing larger than a handshake message is taken.
        uint32_t limit = state_ == State::ready ? proto::kMaxFrameBody : kMaxHandshakeBody;
        auto f = frames_.next(limit);
        if (!f) {
            return drop(fmt::format("bad frame: {}{}", f.error().message,
                                    state_ == State::ready ? "" : " during the handshake"));
        }
        if (!*f) break;
        frame_ = (*f)->header;
        handle((*f)->body);
    }
    if (state_ == State::ready) finish_batch();
    if (state_ != State::closed) read_more();
}

void Session::handle(std::string_view body) {
    last_rx_ = Clock::now();
    auto msg = proto::decode_body(frame_.type, body);
    if (!msg) return drop("malformed frame: " + msg.error().message);
    auto unexpected = [&] {
        drop(fmt::format("unexpected {} frame {}", proto::msg_type_name(frame_.type),
                         state_ == State::ready ? "after the handshake" : "during the handshake"));
    };
    switch (state_) {
        case State::hello:
            if (auto* m = std::get_if<proto::Hello>(&*msg)) on_hello(*m);
            else unexpected();
            break;
        case State::auth:
            if (auto* m = std::get_if<proto::Auth>(&*msg)) on_auth(*m);
            else unexpected();
            break;
        case State::ready:
            if (auto* op = std::get_if<proto::OpMsg>(&*msg)) on_op(*op);
            else if (auto* c = std::get_if<proto::Commit>(&*msg)) on_commit(*c);
            else if (auto* h = std::get_if<proto::HashRequest>(&*msg)) on_hash(*h);
            else if (auto* t = std::get_if<proto::TreeRequest>(&*msg)) on_tree(*t);
            else if (auto* p = std::get_if<proto::Ping>(&*msg)) send(proto::Pong{p->id});
            else if (auto* sub = std::get_if<proto::Subscribe>(&*msg)) on_subscribe(*sub);
            else if (auto* sr = std::get_if<proto::SubscribeRanges>(&*msg); sr && version_ >= proto::kRangeForwardsVersion)
                on_subscribe(proto::Subscribe{sr->cursor}, RangeForwards{sr->whole_through});
            else if (auto* hr = std::get_if<proto::HeadRequest>(&*msg)) send(proto::HeadReply{hr->id, journal_->head()});
            else if (auto* rr = std::get_if<proto::RejectedReplay>(&*msg); rr && version_ >= proto::kRejectionsKeptVersion)
                on_rejected_replay(*rr);
            else if (auto* rk = std::get_if<proto::RejectedKept>(&*msg); rk && version_ >= proto::kRejectionsKeptVersion)
                on_rejected_kept(*rk);
            else unexpected();
            break;
        case State::tls:  // frames are read only once TLS is up
        case State::closed: return;
    }
}

const SharedKey& Session::session_key() const {
    if (exported_key_) return *exported_key_;
    // The context's keys: `key` (when set), then the others.
    auto i = static_cast<size_t>(std::max(tls_peer_.key_index, 0));
    if (!ctx_.options.key.bytes.empty()) {
        if (i == 0) return ctx_.options.key;
        --i;
    }
    return i < ctx_.options.other_keys.size() ? ctx_.options.other_keys[i] : ctx_.options.key;
}

void Session::on_hello(const proto::Hello& m) {
    // The highest version both ends speak.
    const uint16_t highest = std::clamp(ctx_.options.max_protocol_version, proto::kMinVersion, proto::kVersion);
    if (m.min_version > highest || m.max_version < proto::kMinVersion || m.min_version > m.max_version)
        return drop(fmt::format("client speaks protocol versions {}..{}, this server speaks {}..{}", m.min_version,
                                m.max_version, proto::kMinVersion, highest));
    version_ = std::min(m.max_version, highest);
    if (!proto::valid_identity(m.agent_id)) return drop(fmt::format("invalid agent id '{}'", m.agent_id));
    if (!proto::valid_identity(m.fileset)) return drop(fmt::format("invalid fileset name '{}'", m.fileset));
    if (m.client_nonce.size() != proto::kNonceBytes) return drop("client nonce of the wrong size");
    if (tls_peer_.cert_accepted && !tls_peer_.cert_name.empty() && m.agent_id != tls_peer_.cert_name)
        return drop(fmt::format("agent id '{}' is not the name its certificate {} is allowed under ('{}')", m.agent_id,
                                format_node_id(tls_peer_.fingerprint), tls_peer_.cert_name));
    if (by_key() && !ctx_.key_admitted(tls_peer_.offered_identity))
        return drop(fmt::format("{} is not among this server's agents", peer_identity_));
    access_ = current_access(m.fileset);
    if (access_ == Access::none)
        return drop(fmt::format("{} may not use fileset '{}' on this server", peer_identity_, m.fileset));
    agent_ = m.agent_id;
    fileset_ = m.fileset;
    client_nonce_ = m.client_nonce;
    auto nonce = random_bytes(proto::kNonceBytes);
    if (!nonce) return drop(nonce.error().message);
    server_nonce_ = *nonce;
    proto::Challenge c;
    c.version = version_;
    c.server_nonce = server_nonce_;
    c.server_proof = auth_proof(session_key(), ProofRole::server, client_nonce_, server_nonce_, agent_, fileset_);
    send(c);
    state_ = State::auth;
}

void Session::on_auth(const proto::Auth& m) {
    auto expected = auth_proof(session_key(), ProofRole::client, client_nonce_, server_nonce_, agent_, fileset_);
    if (!proofs_equal(expected, m.client_proof)) return drop("authentication failed (wrong key)");
    auto slot = ctx_.slot(agent_, fileset_);
    if (!slot) return give_up("cannot open the fileset: " + slot.error().message);
    slot_ = *slot;
    auto journal = ctx_.fileset_journal(fileset_);
    if (!journal) return give_up("cannot open the fileset's journal: " + journal.error().message);
    journal_ = *journal;
    std::shared_ptr<Session> previous;
    std::vector<RejectionNote> left_out;
    proto::Welcome w;
    {
        std::lock_guard lock(slot_->mu);
        previous = slot_->owner_session.lock();
        slot_->owner = id_;
        slot_->owner_session = shared_from_this();
        // Whatever the previous connection left half-sent is void, and
        // directories it kept open are resolved anew.
        slot_->applier->abort_content();
        if (auto ok = slot_->applier->finish_batch(); !ok)
            spdlog::warn("{}: after the previous connection: {}", who(), ok.error().message);
        // Left out while the previous connection's records were applied:
        // this agent's too, and its status is where they are told.
        left_out = slot_->applier->take_rejections();
        w.durable_lsn = slot_->applier->durable_lsn();
        w.resume_lsn = slot_->applier->resume_lsn();
        slot_->applier->resume();
    }
    if (previous && previous.get() != this) previous->shutdown("replaced by a newer connection from the same agent");
    w.server_host = ctx_.options.host_name;
    state_ = State::ready;
    spdlog::info("{}: authenticated by {} over {}, protocol version {}; resuming after LSN {} (durable through {})",
                 who(), peer_identity_, tls_summary_, version_, w.resume_lsn, w.durable_lsn);
    send(w);
    report(left_out);
}

void Session::finish_batch() {
    Status ok;
    std::vector<RejectionNote> left_out;
    {
        std::lock_guard lock(slot_->mu);
        if (slot_->owner != id_) return;
        ok = slot_->applier->finish_batch();
        left_out = slot_->applier->take_rejections();
    }
    report(left_out);
    if (!ok) give_up(ok.error().message);
}

void Session::report(const std::vector<RejectionNote>& notes) {
    for (auto& n : notes) {
        spdlog::error("{}: cannot apply all of LSN {} on '{}': {}; left out, going on with what follows", who(), n.lsn,
                      n.path, n.message);
        tell_rejected(n.lsn, n.path, n.message);
    }
}

void Session::tell_rejected(uint64_t lsn, const std::string& path, const std::string& message) {
    if (version_ >= proto::kRejectionsKeptVersion && slot_ && slot_->rejections) {
        // Told all the same: the agent may yet store it, and refusing to go
        // on would only stop the records behind it too.
        if (auto ok = slot_->rejections->keep(proto::RejectedMsg{lsn, path, message}); !ok)
            spdlog::error("{}: keeping the rejection of '{}' (LSN {}) until the agent stored it: {}; if the agent "
                          "dies before it reads it, it is lost",
                          who(), path, lsn, ok.error().message);
    }
    send(proto::RejectedMsg{lsn, path, message});
}

void Session::on_rejected_replay(const proto::RejectedReplay& m) {
    auto kept = slot_->rejections ? slot_->rejections->all() : std::vector<proto::RejectedMsg>{};
    if (!kept.empty())
        spdlog::info("{}: telling the agent again of {} rejection(s) it has not confirmed", who(), kept.size());
    for (auto& r : kept) send(r);
    send(proto::RejectedReplayed{m.id, kept.size()});
}

void Session::on_rejected_kept(const proto::RejectedKept& m) {
    if (!slot_->rejections) return;
    auto gone = slot_->rejections->forget(m.lsn, m.path);
    if (!gone)
        spdlog::error("{}: forgetting the rejection of '{}' (LSN {}) the agent stored: {}", who(), m.path, m.lsn,
                      gone.error().message);
}

void Session::on_op(const proto::OpMsg& arriving) {
    if (access_ == Access::receive_only) return refuse_receive_only(arriving);
    ApplyResult r;
    std::vector<RejectionNote> left_out;
    proto::OpMsg placed;
    const proto::OpMsg* at = &arriving;
    {
        std::lock_guard lock(slot_->mu);
        if (slot_->owner != id_) return drop("superseded by a newer connection from the same agent");
        if (arriving.kind == proto::OpKind::conflict)
            return drop(fmt::format("refused conflict '{}' at LSN {}: conflicts are the server's to find",
                                    arriving.path, arriving.lsn));
        // Decided, applied and journaled as one step of the fileset's order.
        std::lock_guard order(journal_->order());
        bool placed_echo = false;
        at = &place(arriving, placed, placed_echo);
        const proto::OpMsg& m = *at;
        auto d = journal_->resolve(agent_, m);
        if (placed_echo && d.action == ConflictDecision::Action::apply) d.echo = true;
        const proto::OpMsg* op = &m;
        proto::OpMsg other;
        if (d.action == ConflictDecision::Action::drop) {
            // Not applied, and nothing to forward; the LSN is still passed.
            other = proto::OpMsg{.lsn = m.lsn, .kind = proto::OpKind::noop, .more = m.more};
            op = &other;
            spdlog::warn("{}: {} '{}' at LSN {} did not see the change of {} (server LSN {}): the change wins, it is "
                         "not applied",
                         who(), proto::op_kind_name(m.kind), m.path, m.lsn, d.winner_origin, d.winner_lsn);
        } else if (d.action == ConflictDecision::Action::keep_aside) {
            other = m;
            other.path = d.copy;
            op = &other;
            // The copy is this agent's version; nothing there is another's.
            slot_->applier->share();
            if (d.fresh)
                spdlog::warn("{}: {} '{}' at LSN {} is concurrent with the change of {} (server LSN {}): kept as '{}'",
                             who(), proto::op_kind_name(m.kind), m.path, m.lsn, d.winner_origin, d.winner_lsn, d.copy);
            if (d.from_current)
                if (auto ok = journal_->copy_current(m.path, d.copy); !ok)
                    spdlog::warn("{}: {}", who(), ok.error().message);
        }
        // A removal a concurrent rename may still need (removed_store.hpp).
        if (op->kind == proto::OpKind::unlink && m.seen && d.action == ConflictDecision::Action::apply)
            if (auto ok = journal_->keep_removed(op->path); !ok)
                spdlog::warn("{}: {}; a concurrent rename of it will find nothing to move", who(), ok.error().message);
        r = slot_->applier->apply(*op);
        left_out = slot_->applier->take_rejections();
        slot_->counters.count(*op, r, *slot_->applier);
        // In the order applied: what the other agents of the fileset
        // receive. A copy kept aside is the server's making, and goes to
        // every agent, the one whose version it holds too.
        if (r.outcome == Outcome::applied && d.action != ConflictDecision::Action::drop) {
            if (d.action == ConflictDecision::Action::keep_aside) {
                if (d.fresh) journal_->note_conflict(agent_, m, d);
                journal_->note_applied(ctx_.options.host_name, *op, agent_, &r.written);
            } else if (d.echo) {
                if (d.attributes_lost) journal_->note_attribute_conflict(agent_, m, d);
                journal_->note_applied(ctx_.options.host_name, m, agent_, &r.written);
            } else {
                journal_->note_applied(agent_, m, "", &r.written);
            }
        }
    }
    report(left_out);
    const proto::OpMsg& m = *at;
    for (auto& c : r.conflicts) {
        spdlog::warn("{}: conflict on '{}' at LSN {}: {}; the server's version is kept as '{}'", who(), c.path, c.lsn,
                     c.message, c.conflict_copy);
        send(proto::ConflictMsg{c.lsn, c.path, c.conflict_copy, ctx_.options.host_name, c.message});
    }
    switch (r.outcome) {
        case Outcome::applied:
            // who() formats a string: not for every operation unless it is logged.
            if (spdlog::should_log(spdlog::level::debug))
                spdlog::debug("{}: applied {} '{}' at LSN {}", who(), proto::op_kind_name(m.kind), m.path, m.lsn);
            break;
        case Outcome::skipped:
            // A large file left out is thousands of parts: its beginning
            // said why, once.
            if (r.with_beginning) {
                if (spdlog::should_log(spdlog::level::debug))
                    spdlog::debug("{}: skipped {} '{}' at LSN {}: {}", who(), proto::op_kind_name(m.kind), m.path, m.lsn,
                                  r.message);
                break;
            }
            spdlog::info("{}: skipped {} '{}' at LSN {}: {}", who(), proto::op_kind_name(m.kind), m.path, m.lsn, r.message);
            break;
        case Outcome::rejected:
            // Logged as an error, told to the agent (its status and sync
            // show it), and the stream goes on: the same record sent again
            // would meet the same refusal for ever.
            spdlog::error("{}: cannot apply {} '{}' at LSN {}: {}; left out, going on with what follows", who(),
                          proto::op_kind_name(m.kind), m.path, m.lsn, r.message);
            tell_rejected(m.lsn, m.path, r.message);
            break;
        case Outcome::refused:
            return drop(fmt::format("refused {} '{}' at LSN {}: {}", proto::op_kind_name(m.kind), m.path, m.lsn, r.message));
        case Outcome::failed:
            return give_up(
                fmt::format("could not apply {} '{}' at LSN {}: {}", proto::op_kind_name(m.kind), m.path, m.lsn, r.message));
    }
}

// The syncfs runs on the applier's own thread while this connection goes on
// applying; when it is done, the slot's current owner acknowledges. An Ack
// only ever names an LSN that is durable, so one reaching a newer connection
// of the same agent tells it nothing false.
void Session::on_commit(const proto::Commit& m) {
    std::vector<RejectionNote> left_out;
    {
        std::lock_guard lock(slot_->mu);
        if (slot_->owner != id_) return drop("superseded by a newer connection from the same agent");
        std::weak_ptr<FilesetSlot> slot = slot_;
        auto executor = stream_.get_executor();
        // The fileset journal's records are synced beside the replica,
        // not after it, once for everything this commit covers.
        slot_->journal_marks.emplace_back(m.lsn, journal_->commit());
        slot_->applier->begin_commit(m.lsn, [slot, executor] {
            asio::post(executor, [slot] { finish_commits(slot); });
        });
        // Told before the Ack that covers them.
        left_out = slot_->applier->take_rejections();
    }
    report(left_out);
}

namespace {

// The fileset-journal LSN the Acks of `done` wait for: the greatest of
// their commits' marks (each taken off `marks`). None when a commit has no
// mark: then the whole journal is.
std::optional<uint64_t> journal_lsn_of(const std::vector<CommitOutcome>& done,
                                       std::deque<std::pair<uint64_t, uint64_t>>& marks) {
    uint64_t through = 0;
    bool marked = true;
    for (auto& c : done) {
        // A commit that never finished leaves its mark behind: a later
        // one covers more.
        while (!marks.empty() && marks.front().first < c.lsn) marks.pop_front();
        if (!marks.empty() && marks.front().first == c.lsn) {
            through = std::max(through, marks.front().second);
            marks.pop_front();
        } else {
            marked = false;
        }
    }
    if (!marked) return std::nullopt;
    return through;
}

}  // namespace

void Session::finish_commits(const std::weak_ptr<FilesetSlot>& weak) try {
    auto slot = weak.lock();
    if (!slot) return;
    std::vector<CommitOutcome> done;
    std::vector<RejectionNote> left_out;
    std::shared_ptr<Session> owner;
    std::optional<uint64_t> journal_lsn;
    {
        std::lock_guard lock(slot->mu);
        done = slot->applier->finish_commits();
        journal_lsn = journal_lsn_of(done, slot->journal_marks);
        owner = slot->owner_session.lock();
        // Without an owner they stay for the next one (on_auth takes them).
        if (owner) left_out = slot->applier->take_rejections();
        slot->counters.durable_lsn = slot->applier->durable_lsn();
    }
    if ((done.empty() && left_out.empty()) || !owner) return;
    asio::dispatch(owner->strand_, [owner, done = std::move(done), left_out = std::move(left_out), journal_lsn] {
        try {
            if (owner->state_ == State::ready) owner->report(left_out);
            owner->acknowledge(done, journal_lsn);
        } catch (const std::exception& e) {
            owner->drop(std::string("internal error: ") + e.what());
        }
    });
} catch (const std::exception& e) {
    // Runs as a bare handler on the io_context: nothing may escape it. The
    // agent, without its Ack, commits again.
    spdlog::error("finishing a commit: {}", e.what());
}

void Session::acknowledge(const std::vector<CommitOutcome>& done, std::optional<uint64_t> journal_lsn) {
    if (state_ != State::ready) return;
    // What an Ack covers is in the fileset journal durably too, or a crash
    // could keep it from every other agent of the fileset for good.
    if (!done.empty() && journal_) {
        auto ok = journal_lsn ? journal_->wait_durable(*journal_lsn) : journal_->flush();
        if (!ok) return give_up("fileset journal: " + ok.error().message);
    }
    for (auto& c : done) {
        if (!c.status) {
            return give_up(fmt::format("could not make LSN {} durable: {}", c.lsn, c.status.error().message));
        }
        send(proto::Ack{c.lsn});
    }
}

void Session::on_hash(const proto::HashRequest& m) {
    Result<proto::HashReply> reply = fail(make_error(""));
    {
        std::lock_guard lock(slot_->mu);
        if (slot_->owner != id_) return drop("superseded by a newer connection from the same agent");
        reply = slot_->applier->hashes(m);
    }
    if (!reply) {
        if (is_refusal(reply.error())) return drop(fmt::format("refused block hashes of '{}': {}", m.path, reply.error().message));
        return give_up(fmt::format("block hashes of '{}': {}", m.path, reply.error().message));
    }
    send(*reply);
}

void Session::on_tree(const proto::TreeRequest& m) {
    if (access_ == Access::send_only) {
        // It gets nothing back: no view of the replica.
        proto::TreeReply reply;
        reply.id = m.id;
        reply.error = fmt::format("fileset '{}' is send-only for {}: the server answers no verification", fileset_,
                                  peer_identity_);
        return send(reply);
    }
    auto self = shared_from_this();
    auto slot = slot_;
    auto& io = static_cast<asio::io_context&>(asio::query(stream_.get_executor(), asio::execution::context));
    asio::post(io, [self, slot, m] {
        proto::TreeReply reply;
        try {
            reply = slot->trees->answer(m);
        } catch (const std::exception& e) {
            reply.id = m.id;
            reply.error = std::string("internal error: ") + e.what();
        }
        if (!reply.error.empty()) spdlog::warn("{}: cannot hash the replica at '{}': {}", self->who(), m.path, reply.error);
        asio::dispatch(self->strand_, [self, reply = std::move(reply)] {
            try {
                if (self->state_ == State::ready) self->send(reply);
            } catch (const std::exception& e) {
                self->drop(std::string("internal error: ") + e.what());
            }
        });
    });
}

void Session::send(const proto::Message& m) {
    auto frame = proto::encode_frame(m);
    if (!frame) return drop("cannot encode reply: " + frame.error().message);
    outbox_.push_back(std::make_shared<std::string>(std::move(*frame)));
    write_next();
}

void Session::write_next() {
    if (writing_ || outbox_.empty() || state_ == State::closed) return;
    writing_ = true;
    auto self = shared_from_this();
    auto frame = outbox_.front();
    on_stream(stream_, [&](auto& stream) {
        asio::async_write(stream, asio::buffer(*frame), asio::bind_executor(strand_, [self, frame](const boost::system::error_code& ec, size_t) {
            self->writing_ = false;
            if (self->state_ == State::closed) {
                if (self->lingering_) ec ? self->close_socket() : self->say_farewell();
                return;
            }
            try {
                if (ec) {
                    spdlog::info("{}: connection lost while sending: {}", self->who(), ec.message());
                    return self->close();
                }
                // A forward frame (type 18 in bytes 4..5 of its header)
                // leaves the forwarding thread's budget once written.
                if (self->forward_ && frame->size() >= proto::kHeaderBytes && (*frame)[4] == 0 &&
                    (*frame)[5] == static_cast<char>(proto::MsgType::forward))
                    self->forward_->queued -= frame->size();
                self->outbox_.pop_front();
                self->write_next();
            } catch (const std::exception& e) {
                self->drop(std::string("internal error: ") + e.what());
            }
        }));
    });
}

void Session::drop(const std::string& reason) {
    if (state_ == State::closed) return;
    if (state_ != State::ready) ++ctx_.handshake_failures;
    spdlog::warn("dropping connection from {}: {}", who(), reason);
    // Before TLS is up there is no channel to tell the peer anything on.
    if (state_ == State::tls) return close();
    tell_and_close(reason);
}

void Session::give_up(const std::string& reason) {
    if (state_ == State::closed) return;
    if (state_ == State::tls) return close();
    spdlog::error("{}: {}; dropping the connection, the agent will send it again", who(), reason);
    tell_and_close(reason);
}

// Closing a socket that still holds unread data makes the kernel answer
// with a reset, and an agent busy writing would then see only "broken pipe",
// never the reason sent here. So the reason goes out after any write in
// flight, the sending side is shut, and what the agent still sends is read
// and thrown away until it hangs up or kLinger passes.
void Session::tell_and_close(const std::string& reason) {
    release();
    lingering_ = true;
    if (auto frame = proto::encode_frame(proto::ErrorMsg{reason})) farewell_ = std::make_shared<std::string>(std::move(*frame));
    if (!writing_) say_farewell();  // else the write in flight calls it when done
    auto self = shared_from_this();
    timer_.expires_after(kLinger);
    timer_.async_wait(asio::bind_executor(strand_, [self](const boost::system::error_code& ec) {
        if (!ec) self->close_socket();
    }));
    if (!reading_) discard_input();  // else the read in flight goes on with it
}

void Session::say_farewell() {
    auto self = shared_from_this();
    auto frame = std::move(farewell_);
    if (!frame) {
        boost::system::error_code ec;
        stream_.next_layer().shutdown(tcp::socket::shutdown_send, ec);
        return;
    }
    writing_ = true;
    on_stream(stream_, [&](auto& stream) {
        asio::async_write(stream, asio::buffer(*frame), asio::bind_executor(strand_, [self, frame](const boost::system::error_code& ec, size_t) {
            self->writing_ = false;
            if (ec) return self->close_socket();
            self->say_farewell();
        }));
    });
}

void Session::discard_input() {
    // A buffer of its own: the frame buffer may be full of frames never handled.
    discard_.resize(16384);
    reading_ = true;
    auto self = shared_from_this();
    // From the socket itself: what is thrown away need not be decrypted.
    stream_.next_layer().async_read_some(asio::buffer(discard_), asio::bind_executor(strand_, [self](const boost::system::error_code& ec, size_t) {
        self->reading_ = false;
        if (ec) return self->close_socket();
        self->discard_input();
    }));
}

void Session::close() {
    if (state_ == State::closed) return;
    release();
    close_socket();
}

void Session::release() {
    state_ = State::closed;
    if (forward_) forward_->stop = true;
    if (slot_) {
        std::lock_guard lock(slot_->mu);
        if (slot_->owner == id_) slot_->applier->abort_content();
    }
    // What it applied and no commit of it will cover is synced now, not
    // whenever another commit comes.
    if (journal_) journal_->commit();
    ctx_.forget(shared_from_this());
}

void Session::close_socket() {
    auto& socket = stream_.next_layer();
    if (!socket.is_open()) return;
    boost::system::error_code ec;
    timer_.cancel();
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
}

}  // namespace iz::replicator

namespace iz::replicator {

void Session::post_forward(const std::shared_ptr<ForwardState>& from, std::shared_ptr<std::string> frame) {
    auto self = shared_from_this();
    asio::post(strand_, [self, from, frame = std::move(frame)] {
        // Posted before the forwards stopped (recheck): none may follow the
        // subscribe_refused that ended them, nor join the forwards of a
        // subscribe allowed again since.
        if (self->state_ != State::ready || self->forward_ != from || from->stop) return;
        self->outbox_.push_back(frame);
        self->write_next();
    });
}

// The server tells the refused agent, rather than the agent asking again
// now and then: only the server knows when its rules change, so the
// forwards resume at once and nothing polls; and a second subscribe ends
// the connection of a server older than version 6, which a retrying agent
// would have to guard against anyway. An agent of 5 is told nothing (type
// 25 would end its connection): it receives again at its next connection,
// as before.
void Session::allow_subscribe_again(Access access) {
    if (version_ < proto::kResubscribeVersion) {
        spdlog::info("{}: fileset '{}' is {} for {} again; an agent of protocol version {} subscribes again only "
                     "when it reconnects",
                     who(), fileset_, access_name(access), peer_identity_, version_);
        return;
    }
    subscribe_refused_ = false;  // one subscribe more is welcome
    std::string why = fmt::format("fileset '{}' is {} for {} again: subscribe to receive it", fileset_,
                                  access_name(access), peer_identity_);
    spdlog::info("{}: subscribing allowed: {}", who(), why);
    send(proto::SubscribeAllowed{fileset_, why});
}

// The forwarding thread reads the fileset journal (a reader of its own,
// woken by the journal's durability) and hands frames to the connection's
// strand; it never touches the connection's state. It ends when the
// connection is released, or on an error, which drops the connection (the
// agent subscribes again from its cursor).
void Session::on_subscribe(const proto::Subscribe& m, std::optional<RangeForwards> ranges) {
    if (forward_ || subscribe_refused_) return drop("a second subscribe on one connection");
    if (access_ == Access::send_only) {
        // Refused, but the connection stays: what the agent queued behind
        // its subscribe is applied, and it goes on sending.
        subscribe_refused_ = true;
        std::string why = fmt::format("fileset '{}' is send-only for {}: nothing is forwarded to it", fileset_,
                                      peer_identity_);
        spdlog::warn("{}: subscribe refused: {}", who(), why);
        return send(proto::SubscribeRefused{fileset_, why});
    }
    {
        std::lock_guard lock(slot_->mu);
        // The other agents write into the same replica by design.
        slot_->applier->share();
    }
    forward_ = std::make_shared<ForwardState>();
    spdlog::info("{}: subscribed to fileset '{}' after server LSN {} (head {}){}", who(), fileset_, m.cursor,
                 journal_->head(),
                 ranges ? fmt::format(", writes as ranges after server LSN {}", ranges->whole_through) : "");
    std::weak_ptr<Session> weak = shared_from_this();
    auto state = forward_;
    auto journal = journal_;
    std::string agent = agent_;
    std::string name = who();
    std::string host = ctx_.options.host_name;
    std::shared_ptr<FilesetSlot> slot = slot_;
    std::thread([weak, state, journal, slot, agent, name, host, cursor = m.cursor, ranges] {
        auto stop_with = [&](const std::string& why) {
            spdlog::error("{}: forwarding stopped: {}", name, why);
            if (auto s = weak.lock()) s->shutdown("forwarding failed: " + why);
        };
        try {
            int raw = ::open(journal->root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (raw < 0) return stop_with(sys_error("open replica root", journal->root().string(), errno).message);
            UniqueFd root(raw);
            auto reader = journal::Reader::open(journal->dir());
            if (!reader) return stop_with(reader.error().message);
            uint64_t pos = cursor;  // every record through it is sent or skipped
            uint64_t told = cursor;  // the last LSN the subscriber was sent
            ForwardedDirTimes dir_times;
            std::set<std::string> own_written;  // paths whose last write was the subscriber's own
            auto send = [&](const proto::Forward& f) -> bool {
                auto frame = proto::encode_frame(f);
                if (!frame) {
                    stop_with(frame.error().message);
                    return false;
                }
                auto bytes = std::make_shared<std::string>(std::move(*frame));
                while (!state->stop && state->queued.load() > ForwardState::kMaxQueued)
                    std::this_thread::sleep_for(std::chrono::milliseconds(2));
                if (state->stop) return false;
                auto s = weak.lock();
                if (!s) return false;
                state->queued += bytes->size();
                slot->counters.forwarded_bytes.fetch_add(bytes->size(), std::memory_order_relaxed);
                s->post_forward(state, std::move(bytes));
                return true;
            };
            while (!state->stop) {
                uint64_t durable = journal->wait_durable_beyond(pos, std::chrono::milliseconds(200), agent);
                if (durable <= pos) continue;
                if (auto ok = (*reader)->refresh(); !ok) return stop_with(ok.error().message);
                if (auto ok = (*reader)->seek_lsn(pos + 1); !ok) return stop_with(ok.error().message);
                // A batch at a time: repeated writes of one file in it go
                // as one forward (forward_coalesce.hpp).
                std::vector<journal::Record> batch;
                bool cut = false;
                while (!state->stop) {
                    auto rec = (*reader)->next();
                    if (!rec) return stop_with(rec.error().message);
                    if (!*rec || (*rec)->lsn > durable) break;
                    batch.push_back(std::move(**rec));
                    if ((cut = batch.size() >= kForwardBatch)) break;
                }
                std::vector<bool> skip = ranges ? coalesce_writes(batch, agent, ranges->whole_through)
                                                : std::vector<bool>(batch.size(), false);
                for (size_t i = 0; i < batch.size() && !state->stop; ++i) {
                    const journal::Record& r = batch[i];
                    // Never sent back where it came from; but a conflict
                    // is news to the agent that lost it too.
                    if (r.origin == agent && r.op == journal::Op::write) own_written.insert(r.path);
                    if (r.origin == agent && r.op != journal::Op::conflict) {
                        dir_times.passed_over(r);
                        pos = r.lsn;
                        continue;
                    }
                    if (skip[i]) {  // a later forward of the batch carries it
                        pos = r.lsn;
                        continue;
                    }
                    // A file the subscriber wrote last is its own version,
                    // not one its receiver left: ranges would make it ask
                    // for the whole (a new connection); sent whole at once.
                    bool own = r.op == journal::Op::write && own_written.erase(r.path) > 0;
                    bool as_ranges = ranges && r.lsn > ranges->whole_through && !own;
                    auto parts = forwards_of(r, root.get(), journal->reserved_top(), as_ranges);
                    if (!parts) return stop_with(parts.error().message);
                    for (auto& f : *parts)
                        if (!send(f)) return;
                    slot->counters.forwarded_records.fetch_add(1, std::memory_order_relaxed);
                    dir_times.forwarded(r);
                    pos = told = r.lsn;
                }
                if (cut) continue;
                // Caught up: the directories its own records changed after
                // a forward set their times get the replica's times now.
                for (auto& dir : dir_times.take_due()) {
                    auto f = times_forward(root.get(), dir, pos, host);
                    if (!f) return stop_with(f.error().message);
                    if (*f && !send(**f)) return;
                    if (*f) told = pos;
                }
                if (pos > told) {
                    // Only its own records lately: the cursor moves past them.
                    proto::Forward f;
                    f.op.lsn = pos;
                    if (!send(f)) return;
                    told = pos;
                }
            }
        } catch (const std::exception& e) {
            stop_with(std::string("internal error: ") + e.what());
        }
    }).detach();
}

}  // namespace iz::replicator
