#include "server_link.hpp"

#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "common/path_tree.hpp"
#include "rejection_store.hpp"
#include "journal/reader.hpp"
#include "replicator/wire/plaintext_bench.hpp"

namespace iz::replicator {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {
constexpr auto kTick = std::chrono::milliseconds(250);
constexpr auto kPingAfter = std::chrono::milliseconds(1000);

// The journal's last LSN (0 when it is empty); nullopt when it cannot be read.
std::optional<uint64_t> journal_last_lsn(const std::filesystem::path& dir) {
    auto r = journal::Reader::open(dir);
    if (!r || !(*r)->refresh() || !(*r)->seek_tail()) return std::nullopt;
    auto last = (*r)->prev();
    if (!last) return std::nullopt;
    return *last ? (*last)->lsn : 0;
}

// A server that has applied past the end of this journal was fed by another
// journal under the same agent and fileset: this one was made anew (its
// state directory deleted or lost), or another agent goes by the same name.
// Resuming after that server's LSN would skip this journal's records up to
// it and leave its replica silently short of them. "" when all is well.
std::string refusal_for_resume(const ShipperOptions& o, uint64_t resume_lsn) {
    auto last = journal_last_lsn(o.journal_dir);
    if (!last || resume_lsn <= *last) return {};
    return fmt::format("this server has applied through LSN {} for agent '{}' and fileset '{}', but this journal ends "
                       "at LSN {}: it was made anew, or another agent uses the same names. Nothing is sent to it until "
                       "it starts this fileset afresh: on the server, stop izreplicate, remove its record <state "
                       "dir>/{}/{} (the state dir is DST/.intermezzo unless --state-dir says otherwise) and the replica "
                       "DST/{}, and start it again; the replica is then copied anew",
                       resume_lsn, o.agent_id, o.fileset, *last, o.agent_id, o.fileset, o.fileset);
}

// A server refused as above is asked again this often, in case an operator
// has put it right.
constexpr auto kRefusedRetry = std::chrono::milliseconds(5000);
constexpr auto kHandshakeTimeout = std::chrono::milliseconds(5000);
// One write gathers up to this many queued frames (Asio hands at most 64
// buffers to one sendmsg) or bytes.
constexpr size_t kMaxWriteFrames = 64;
// While the worker holds frames back (hold()), it hands them over when this
// many are staged: enough to spare most wake-ups, few enough that the
// server is not kept waiting for a window's worth.
constexpr size_t kHandoverFrames = 16;
constexpr size_t kHandoverBytes = 64u << 10;
constexpr size_t kMaxWriteBytes = 4u << 20;
}  // namespace

ServerLink::ServerLink(asio::io_context& io, const ShipperOptions& options, SharedKey key,
                       std::shared_ptr<asio::ssl::context> tls, ServerEndpoint endpoint, std::function<void()> on_ack)
    : io_(io),
      options_(options),
      key_(std::move(key)),
      tls_(std::move(tls)),
      endpoint_(std::move(endpoint)),
      name_(endpoint_.to_string()),
      on_ack_(std::move(on_ack)),
      resolver_(io),
      timer_(io),
      deadline_(io) {
    if (!options_.state_dir.empty()) rejections_file_ = rejections_file(options_.state_dir, endpoint_);
}

Status ServerLink::restore_rejected() {
    if (rejections_file_.empty()) return {};
    auto kept = load_rejections(rejections_file_);
    if (!kept) return iz::fail(kept.error());
    std::lock_guard lock(mu_);
    rejected_.assign(kept->begin(), kept->end());
    for (auto& r : rejected_)
        spdlog::warn("server {} could not apply '{}' (LSN {}) before this agent started: {}; until a verification "
                     "finds that replica equal, every sync that covers it fails",
                     name_, r.path, r.lsn, r.message);
    return {};
}

// Called on the network thread as a rejection arrives, before the next
// frame is read: the Ack that covers it is taken only once it is durable.
// A report still unread when the agent dies would be lost once the server
// made the record durable (it resumes after it): a server of version 5
// keeps it until it is confirmed (confirm_rejected), and sends it again
// after the next handshake.
bool ServerLink::persist_rejected() {
    if (rejections_file_.empty()) return true;
    std::lock_guard order(persist_mu_);
    std::vector<RejectedRecord> kept;
    {
        std::lock_guard lock(mu_);
        kept.assign(rejected_.begin(), rejected_.end());
    }
    if (auto ok = save_rejections(rejections_file_, kept); !ok) {
        spdlog::error("server {}: keeping what it cannot apply: {}; a restart of this agent would forget it", name_,
                      ok.error().message);
        return false;
    }
    return true;
}

void ServerLink::confirm_rejected(const proto::RejectedMsg& m) {
    if (server_version_ < proto::kRejectionsKeptVersion || !socket_) return;
    auto f = proto::encode_frame(proto::RejectedKept{m.lsn, m.path});
    if (!f) return lost(f.error().message);
    outbox_.push_back(std::make_shared<std::string>(std::move(*f)));
    write_next();
}

void ServerLink::start() {
    auto self = shared_from_this();
    asio::post(io_, [self] { self->connect(); });
}

void ServerLink::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    auto self = shared_from_this();
    asio::post(io_, [self] {
        self->lost("the shipper stopped");
        boost::system::error_code ec;
        self->timer_.cancel();
        self->resolver_.cancel();
    });
}

// ---- network thread ------------------------------------------------------

void ServerLink::connect() {
    {
        std::lock_guard lock(mu_);
        if (stopping_) return;
    }
    phase_ = Phase::connecting;
    socket_ = std::make_shared<Stream>(io_, *tls_);
    auto self = shared_from_this();
    auto sock = socket_;  // a copy: the socket outlives every operation begun on it
    deadline_.expires_after(kHandshakeTimeout);
    deadline_.async_wait([self, sock](const boost::system::error_code& ec) {
        if (ec || self->socket_ != sock || self->phase_ == Phase::ready) return;
        self->lost("no connection and handshake within 5 s");
    });
    resolver_.async_resolve(endpoint_.host, std::to_string(endpoint_.port),
                            [self, sock](const boost::system::error_code& ec, tcp::resolver::results_type results) {
                                if (self->socket_ != sock) return;
                                if (ec) return self->lost(fmt::format("resolve {}: {}", self->endpoint_.host, ec.message()));
                                asio::async_connect(sock->next_layer(), results, [self, sock](const boost::system::error_code& ec2, const tcp::endpoint&) {
                                    if (self->socket_ != sock) return;
                                    if (ec2) return self->lost(fmt::format("connect: {}", ec2.message()));
                                    self->on_connected();
                                });
                            });
}

void ServerLink::on_connected() {
    phase_ = Phase::handshake;
    boost::system::error_code ec;
    auto& tcp_socket = socket_->next_layer();
    tcp_socket.set_option(tcp::no_delay(true), ec);
    boost::system::error_code le, re;
    auto local = tcp_socket.local_endpoint(le);
    auto remote = tcp_socket.remote_endpoint(re);
    same_host_.store(!le && !re && (remote.address().is_loopback() || remote.address() == local.address()),
                     std::memory_order_relaxed);
    auto self = shared_from_this();
    auto sock = socket_;
    // What the certificate check finds; it must outlive the handshake.
    auto peer = std::make_shared<TlsPeer>();
    peer->attach(sock->native_handle());
    sock->async_handshake(asio::ssl::stream_base::client, [self, sock, peer](const boost::system::error_code& hec) {
        if (self->socket_ != sock) return;
        if (hec) return self->lost(failure_reason(hec, peer.get(), TlsRole::client));
        auto* ssl = sock->native_handle();
        if (!established(ssl, peer.get()))
            return self->lost("TLS refused: the session was authenticated by neither the shared key nor the pinned "
                              "certificate");
        std::string identity;
        if (SSL_session_reused(ssl) == 1) {
            self->proof_key_ = self->key_;
            identity = fmt::format("shared key '{}'", psk_identity(self->key_));
        } else {
            // No shared key: the proofs inside are keyed by the session itself.
            auto key = exported_proof_key(ssl);
            if (!key) return self->lost(key.error().message);
            self->proof_key_ = std::move(*key);
            identity = fmt::format("server certificate {}", format_node_id(peer->fingerprint));
        }
        {
            std::lock_guard lock(self->mu_);
            self->peer_identity_ = std::move(identity);
        }
        auto marker = plaintext_bench_marker();
        if (marker.empty()) return self->on_tls_up();
        auto got = std::make_shared<std::string>(marker.size(), '\0');
        asio::async_read(*sock, asio::buffer(*got), [self, sock, got, marker](const boost::system::error_code& ec, size_t) {
            if (self->socket_ != sock) return;
            if (ec || *got != marker) return self->lost("the server does not carry frames in the clear after TLS");
            self->on_tls_up();
        });
    });
}

// TLS is up; the protocol's own handshake runs inside it.
void ServerLink::on_tls_up() {
    {
        std::lock_guard lock(mu_);
        tls_summary_ = tls_summary(socket_->native_handle());
    }
    auto nonce = random_bytes(proto::kNonceBytes);
    if (!nonce) return lost(nonce.error().message);
    client_nonce_ = *nonce;
    proto::Hello hello;
    hello.agent_id = options_.agent_id;
    hello.fileset = options_.fileset;
    hello.client_nonce = client_nonce_;
    auto frame = proto::encode_frame(hello);
    if (!frame) return lost(frame.error().message);
    outbox_.push_back(std::make_shared<std::string>(std::move(*frame)));
    write_next();
    auto self = shared_from_this();
    read_frame([self](proto::Message m) {
        if (auto* err = std::get_if<proto::ErrorMsg>(&m)) return self->lost("server refused: " + err->message);
        auto* ch = std::get_if<proto::Challenge>(&m);
        if (!ch) return self->lost(fmt::format("expected a challenge, got {}", proto::msg_type_name(proto::type_of(m))));
        if (ch->version < proto::kMinVersion || ch->version > proto::kVersion)
            return self->lost(fmt::format("server chose protocol version {}", ch->version));
        self->server_version_ = ch->version;
        auto expected = auth_proof(self->proof_key_, ProofRole::server, self->client_nonce_, ch->server_nonce,
                                   self->options_.agent_id, self->options_.fileset);
        if (!proofs_equal(expected, ch->server_proof))
            return self->lost("the server could not prove it holds the shared key (wrong key file?)");
        proto::Auth auth;
        auth.client_proof = auth_proof(self->proof_key_, ProofRole::client, self->client_nonce_, ch->server_nonce,
                                       self->options_.agent_id, self->options_.fileset);
        auto f = proto::encode_frame(auth);
        if (!f) return self->lost(f.error().message);
        self->outbox_.push_back(std::make_shared<std::string>(std::move(*f)));
        self->write_next();
        self->read_frame([self](proto::Message m2) {
            if (auto* err = std::get_if<proto::ErrorMsg>(&m2)) return self->lost("server refused: " + err->message);
            auto* w = std::get_if<proto::Welcome>(&m2);
            if (!w) return self->lost(fmt::format("expected welcome, got {}", proto::msg_type_name(proto::type_of(m2))));
            self->deadline_.cancel();
            {
                auto refusal = refusal_for_resume(self->options_, w->resume_lsn);
                std::lock_guard lock(self->mu_);
                self->refusal_ = refusal;
            }
            if (!self->refusal_.empty()) return self->lost(self->refusal_);
            self->phase_ = Phase::ready;
            self->last_rx_ = self->last_tx_ = Clock::now();
            self->ping_outstanding_ = false;
            {
                std::lock_guard lock(self->mu_);
                self->connected_ = true;
                ++self->connections_;
                ++self->generation_;
                self->session_ = LinkSession{self->generation_, *w};
                self->connected_version_ = self->server_version_;
                if (self->server_version_ >= proto::kRejectionsKeptVersion) {
                    self->replay_durable_ = w->durable_lsn;
                    self->acked_lsn_ = std::min(self->acked_lsn_, w->durable_lsn);
                } else
                    self->acked_lsn_ = w->durable_lsn;
                self->sent_bytes_ = self->acked_bytes_ = self->written_bytes_ = 0;
                self->commits_.clear();
                self->hash_reply_.reset();
                self->subscribe_refused_.clear();
            }
            spdlog::info("server {}: connected over {} with {}, protocol version {}; it has applied through LSN {} "
                         "(durable through {})",
                         self->name_, self->tls_summary_, self->peer_identity_, self->server_version_, w->resume_lsn,
                         w->durable_lsn);
            if (self->server_version_ >= proto::kRejectionsKeptVersion) {
                // What the server kept for this agent comes before anything
                // else it answers.
                auto f = proto::encode_frame(proto::RejectedReplay{++self->replay_id_});
                if (!f) return self->lost(f.error().message);
                self->outbox_.push_back(std::make_shared<std::string>(std::move(*f)));
                self->write_next();
            }
            self->cv_.notify_all();
            // Send-receive: everything of the fileset after what was
            // applied here comes back, from any other agent.
            if (self->sink_ && !self->subscribe()) return;
            if (self->on_ack_) self->on_ack_();
            self->tick();
            self->read_frame([self](proto::Message m3) { self->handle(std::move(m3)); });
        });
    });
}

bool ServerLink::subscribe() {
    sink_->on_connected();
    uint64_t cursor = sink_->cursor();
    auto whole_through = sink_->ranges_whole_through();
    auto f = whole_through && server_version_ >= proto::kRangeForwardsVersion
                 ? proto::encode_frame(proto::SubscribeRanges{cursor, *whole_through})
                 : proto::encode_frame(proto::Subscribe{cursor});
    if (!f) {
        lost(f.error().message);
        return false;
    }
    outbox_.push_back(std::make_shared<std::string>(std::move(*f)));
    write_next();
    return true;
}

void ServerLink::read_frame(std::function<void(proto::Message)> then) {
    auto self = shared_from_this();
    auto sock = socket_;  // a copy: the socket outlives every operation begun on it
    on_stream(*sock, [&](auto& stream) {
        asio::async_read(stream, asio::buffer(header_), [self, sock, &stream, then = std::move(then)](const boost::system::error_code& ec, size_t) mutable {
            if (self->socket_ != sock) return;
            if (ec) {
                // In TLS 1.3 the server checks our certificate after our side of
                // the handshake is done: its refusal comes as the first read.
                if (self->phase_ == Phase::handshake && ec.category() == asio::error::get_ssl_category())
                    return self->lost(failure_reason(ec, nullptr, TlsRole::client));
                return self->lost(ec == asio::error::eof ? "the server closed the connection" : "connection lost: " + ec.message());
            }
            auto h = proto::parse_header(std::string_view(self->header_, sizeof self->header_));
            if (!h) return self->lost("bad frame from the server: " + h.error().message);
            self->body_.resize(h->length);
            auto type = h->type;
            asio::async_read(stream, asio::buffer(self->body_), [self, sock, type, then = std::move(then)](const boost::system::error_code& ec2, size_t) mutable {
                if (self->socket_ != sock) return;
                if (ec2) return self->lost("connection lost: " + ec2.message());
                self->last_rx_ = Clock::now();
                auto msg = proto::decode_body(type, self->body_);
                if (!msg) return self->lost("bad frame from the server: " + msg.error().message);
                try {
                    then(std::move(*msg));
                } catch (const std::exception& e) {
                    self->lost(std::string("internal error: ") + e.what());
                }
            });
        });
    });
}

void ServerLink::handle(proto::Message m) {
    if (auto* ack = std::get_if<proto::Ack>(&m)) {
        {
            std::lock_guard lock(mu_);
            acked_lsn_ = std::max(acked_lsn_, ack->lsn);
            while (!commits_.empty() && commits_.front().first <= ack->lsn) {
                acked_bytes_ = std::max(acked_bytes_, commits_.front().second);
                commits_.pop_front();
            }
        }
        cv_.notify_all();
        served_well();
        if (on_ack_) on_ack_();
    } else if (auto* c = std::get_if<proto::ConflictMsg>(&m)) {
        {
            std::lock_guard lock(mu_);
            ++conflicts_;
        }
        spdlog::warn("server {}: conflict on '{}' (LSN {}): {}; its version is kept as '{}'", name_, c->path, c->lsn,
                     c->message, c->conflict_copy);
        if (options_.on_conflict) {
            try {
                options_.on_conflict(ConflictEvent{name_, c->lsn, c->path, c->conflict_copy, c->server_host, c->message});
            } catch (const std::exception& e) {
                spdlog::error("conflict callback failed: {}", e.what());
            }
        }
    } else if (auto* rej = std::get_if<proto::RejectedMsg>(&m)) {
        // Tests only: dies as a kill -9 would, with the report read and
        // nothing of it kept, where the agent's crash used to lose it.
        if (const char* die = std::getenv("IZ_TEST_DIE_AT_REJECTED"); die && rej->path == die) ::raise(SIGKILL);
        // Not a return: the next frame is read below.
        if (note_rejected(*rej)) {
            if (persist_rejected()) confirm_rejected(*rej);
            spdlog::error("server {} cannot apply '{}' (LSN {}): {}; the replica goes on without it", name_, rej->path,
                          rej->lsn, rej->message);
        } else {
            // Kept already (a replay, or the server's copy sent again after
            // a handshake): the server may forget it.
            confirm_rejected(*rej);
            spdlog::debug("server {} reports again that it cannot apply '{}' (LSN {}): a replay", name_, rej->path,
                          rej->lsn);
        }
    } else if (auto* done = std::get_if<proto::RejectedReplayed>(&m)) {
        if (done->id == replay_id_) {
            {
                std::lock_guard lock(mu_);
                if (replay_durable_) acked_lsn_ = std::max(acked_lsn_, *replay_durable_);
                replay_durable_.reset();
            }
            if (done->count > 0)
                spdlog::warn("server {}: it told again {} rejection(s) this agent had not stored", name_, done->count);
            cv_.notify_all();
            if (on_ack_) on_ack_();
        }
    } else if (auto* h = std::get_if<proto::HashReply>(&m)) {
        {
            std::lock_guard lock(mu_);
            hash_reply_ = std::move(*h);
        }
        cv_.notify_all();
    } else if (auto* t = std::get_if<proto::TreeReply>(&m)) {
        {
            std::lock_guard lock(mu_);
            tree_reply_bytes_ = body_.size() + proto::kHeaderBytes;
            tree_reply_ = std::move(*t);
        }
        cv_.notify_all();
    } else if (auto* fw = std::get_if<proto::Forward>(&m)) {
        if (!sink_) return lost("the server forwarded a record, but this agent did not subscribe");
        sink_->on_forward(std::move(*fw));
        served_well();
    } else if (auto* hr = std::get_if<proto::HeadReply>(&m)) {
        {
            std::lock_guard lock(mu_);
            head_reply_ = *hr;
        }
        cv_.notify_all();
    } else if (auto* no = std::get_if<proto::SubscribeRefused>(&m)) {
        // Nothing comes back on this connection; what is sent still goes.
        std::string why = fmt::format("the server refused to forward fileset '{}': {}", no->fileset, no->message);
        bool news;
        {
            std::lock_guard lock(mu_);
            subscribe_refused_ = why;
            news = refusal_logged_ != why;
            refusal_logged_ = why;
        }
        if (news) spdlog::error("server {}: {}; this agent sends its changes but receives none", name_, why);
        // It may end forwards already begun (the access rules changed): a
        // record received in part is void, as at a new connection.
        if (sink_) sink_->on_connected();
        cv_.notify_all();
    } else if (auto* yes = std::get_if<proto::SubscribeAllowed>(&m)) {
        // The refusal is lifted (the access rules changed): subscribing
        // again from the cursor brings what was missed meanwhile.
        if (!sink_) return lost("the server allowed a subscribe, but this agent does not receive");
        {
            std::lock_guard lock(mu_);
            subscribe_refused_.clear();
            refusal_logged_.clear();
        }
        spdlog::info("server {}: {}; subscribing again", name_, yes->message);
        if (!subscribe()) return;
        cv_.notify_all();
    } else if (std::holds_alternative<proto::Pong>(m)) {
        ping_outstanding_ = false;
        served_well();
    } else if (auto* err = std::get_if<proto::ErrorMsg>(&m)) {
        {
            std::lock_guard lock(mu_);
            ++server_errors_;
        }
        return lost("server dropped the connection: " + err->message);
    } else {
        return lost(fmt::format("unexpected {} frame from the server", proto::msg_type_name(proto::type_of(m))));
    }
    auto self = shared_from_this();
    read_frame([self](proto::Message next) { self->handle(std::move(next)); });
}

// Every frame queued so far goes out in one write: small operations
// (a create, an unlink) were a send each, and a wakeup of the server each.
void ServerLink::write_next() {
    if (writing_ || outbox_.empty() || !socket_) return;
    writing_ = true;
    auto self = shared_from_this();
    auto sock = socket_;  // a copy: the socket outlives every operation begun on it
    auto batch = std::make_shared<std::vector<std::shared_ptr<std::string>>>();
    std::vector<asio::const_buffer> buffers;
    size_t bytes = 0;
    for (auto& frame : outbox_) {
        if (!batch->empty() && (batch->size() >= kMaxWriteFrames || bytes + frame->size() > kMaxWriteBytes)) break;
        batch->push_back(frame);
        buffers.push_back(asio::buffer(*frame));
        bytes += frame->size();
    }
    // TLS seals one buffer per record: frames go out as one buffer, or
    // each small frame would be a record and a send of its own.
    std::shared_ptr<std::string> joined;
    if (batch->size() > 1) {
        joined = std::make_shared<std::string>();
        joined->reserve(bytes);
        for (auto& frame : *batch) joined->append(*frame);
        buffers.assign(1, asio::buffer(*joined));
    }
    on_stream(*sock, [&](auto& stream) {
        asio::async_write(stream, buffers, [self, sock, batch, joined](const boost::system::error_code& ec, size_t written) {
            if (self->socket_ != sock) return;
            self->writing_ = false;
            if (ec) return self->lost("connection lost while sending: " + ec.message());
            {
                std::lock_guard lock(self->mu_);
                self->written_bytes_ += written;
                self->total_wire_bytes_ += written;
            }
            self->last_tx_ = Clock::now();
            self->outbox_.erase(self->outbox_.begin(), self->outbox_.begin() + static_cast<std::ptrdiff_t>(batch->size()));
            self->write_next();
        });
    });
}

void ServerLink::tick() {
    if (phase_ != Phase::ready) return;
    auto self = shared_from_this();
    auto sock = socket_;  // a copy: the socket outlives every operation begun on it
    timer_.expires_after(kTick);
    timer_.async_wait([self, sock](const boost::system::error_code& ec) {
        if (ec || self->socket_ != sock || self->phase_ != Phase::ready) return;
        auto now = Clock::now();
        if (now - self->last_rx_ > self->options_.response_timeout)
            return self->lost(fmt::format("no answer from the server for {} ms", self->options_.response_timeout.count()));
        if (!self->ping_outstanding_ && now - self->last_rx_ > kPingAfter) {
            self->ping_outstanding_ = true;
            if (auto f = proto::encode_frame(proto::Ping{++self->ping_id_})) {
                self->outbox_.push_back(std::make_shared<std::string>(std::move(*f)));
                self->write_next();
            }
        }
        self->tick();
    });
}

void ServerLink::lost(const std::string& why) {
    if (phase_ == Phase::idle && !socket_) return;
    phase_ = Phase::idle;
    if (socket_) {
        boost::system::error_code ec;
        socket_->next_layer().shutdown(tcp::socket::shutdown_both, ec);
        socket_->next_layer().close(ec);
        socket_.reset();
    }
    outbox_.clear();
    writing_ = false;
    deadline_.cancel();
    timer_.cancel();
    bool stopping;
    bool repeated;
    {
        std::lock_guard lock(mu_);
        stopping = stopping_;
        repeated = last_error_ == why;
        connected_ = false;
        ++generation_;
        if (!stopping) last_error_ = why;
        hash_reply_.reset();
        tree_reply_.reset();
        head_reply_.reset();
        staged_.clear();
        staged_bytes_ = 0;
    }
    cv_.notify_all();
    if (stopping) return;
    if (!repeated) spdlog::warn("server {}: {}; reconnecting", name_, why);
    schedule_reconnect();
}

// A handshake alone proves little: a server whose disk is full welcomes the
// agent and fails on the first write. Only an Ack, or a Pong (the server
// answers it after everything sent before it went through), ends the
// backoff and the last error; so a failing server is retried at the
// backoff's pace, not resent the same data every 100 ms, and `izwatch
// status` keeps showing why.
void ServerLink::served_well() {
    std::lock_guard lock(mu_);
    if (!refusal_.empty()) return;
    backoff_ = std::chrono::milliseconds(100);
    last_error_.clear();
}

void ServerLink::schedule_reconnect() {
    auto self = shared_from_this();
    bool refused;
    {
        std::lock_guard lock(mu_);
        refused = !refusal_.empty();
    }
    timer_.expires_after(refused ? std::max<std::chrono::milliseconds>(backoff_, kRefusedRetry) : backoff_);
    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
    timer_.async_wait([self](const boost::system::error_code& ec) {
        if (ec || self->phase_ != Phase::idle) return;
        self->connect();
    });
}

// A post per frame woke the network thread per frame (a futex wake and a
// context switch each, most of the agent's CPU time in a tree copy); now a
// post is made only when none is pending, and it takes every frame queued.
void ServerLink::push_frame(uint64_t generation, std::shared_ptr<std::string> frame) {
    {
        std::lock_guard lock(mu_);
        if (generation != generation_) return;
        staged_bytes_ += frame->size();
        staged_.push_back(std::move(frame));
        if (!handover_due_locked(false)) return;
    }
    post_handover();
}

bool ServerLink::handover_due_locked(bool force) {
    if (handover_posted_ || staged_.empty()) return false;
    if (!force && holding_ && staged_.size() < kHandoverFrames && staged_bytes_ < kHandoverBytes) return false;
    handover_posted_ = true;
    return true;
}

void ServerLink::post_handover() {
    auto self = shared_from_this();
    asio::post(io_, [self] { self->take_staged(); });
}

void ServerLink::hand_over() {
    bool post;
    {
        std::lock_guard lock(mu_);
        post = handover_due_locked(true);
    }
    if (post) post_handover();
}

void ServerLink::hold() {
    std::lock_guard lock(mu_);
    holding_ = true;
}

void ServerLink::release() {
    bool post;
    {
        std::lock_guard lock(mu_);
        holding_ = false;
        post = handover_due_locked(true);
    }
    if (post) post_handover();
}

void ServerLink::take_staged() {
    std::deque<std::shared_ptr<std::string>> frames;
    {
        std::lock_guard lock(mu_);
        frames.swap(staged_);
        staged_bytes_ = 0;
        handover_posted_ = false;
    }
    if (phase_ != Phase::ready) return;
    for (auto& f : frames) outbox_.push_back(std::move(f));
    write_next();
}

// ---- worker side ---------------------------------------------------------

std::optional<LinkSession> ServerLink::wait_connected() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return stopping_ || connected_; });
    if (stopping_) return std::nullopt;
    return session_;
}

bool ServerLink::alive(uint64_t generation) const {
    std::lock_guard lock(mu_);
    return !stopping_ && connected_ && generation == generation_;
}

bool ServerLink::send(uint64_t generation, std::string frame, std::optional<uint64_t> commit_lsn) {
    {
        std::lock_guard lock(mu_);
        if (stopping_ || !connected_ || generation != generation_) return false;
        sent_bytes_ += frame.size();
        if (commit_lsn) commits_.emplace_back(*commit_lsn, sent_bytes_);
    }
    push_frame(generation, std::make_shared<std::string>(std::move(frame)));
    return true;
}

bool ServerLink::wait_window(uint64_t generation, uint64_t limit) {
    if (!window_open(limit)) hand_over();
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] {
        return stopping_ || !connected_ || generation != generation_ || sent_bytes_ - acked_bytes_ <= limit;
    });
    return !stopping_ && connected_ && generation == generation_;
}

bool ServerLink::window_open(uint64_t limit) const {
    std::lock_guard lock(mu_);
    return sent_bytes_ - acked_bytes_ <= limit;
}

void ServerLink::count_data(uint64_t raw_bytes) { total_data_bytes_.fetch_add(raw_bytes, std::memory_order_relaxed); }

bool ServerLink::backlogged(uint64_t bytes) const {
    std::lock_guard lock(mu_);
    return sent_bytes_ > written_bytes_ + bytes;
}

bool ServerLink::commit_in_flight() const {
    std::lock_guard lock(mu_);
    return !commits_.empty();
}

bool ServerLink::wait_commits_acked(uint64_t generation, std::chrono::milliseconds timeout) {
    hand_over();
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] {
        return stopping_ || !connected_ || generation != generation_ || commits_.empty();
    });
    return !stopping_ && connected_ && generation == generation_;
}

Result<proto::HashReply> ServerLink::request_hashes(uint64_t generation, const std::string& path) {
    uint64_t id;
    {
        std::lock_guard lock(mu_);
        id = next_hash_id_++;
        hash_reply_.reset();
    }
    auto frame = proto::encode_frame(proto::HashRequest{id, path});
    if (!frame) return iz::fail(frame.error());
    if (!send(generation, std::move(*frame))) return iz::fail(make_error("connection lost"));
    hand_over();
    std::unique_lock lock(mu_);
    // The server answers in order, after everything sent before: give it
    // as long as the liveness check does.
    cv_.wait(lock, [&] {
        return stopping_ || !connected_ || generation != generation_ || (hash_reply_ && hash_reply_->id == id);
    });
    if (!hash_reply_ || hash_reply_->id != id) return iz::fail(make_error("connection lost"));
    auto reply = std::move(*hash_reply_);
    hash_reply_.reset();
    return reply;
}

template <class Reply>
Result<std::pair<uint64_t, uint64_t>> ServerLink::begin_request(uint64_t& next_id, std::optional<Reply>& slot) {
    std::lock_guard lock(mu_);
    if (stopping_ || !connected_)
        return iz::fail(make_error(fmt::format("not connected{}", last_error_.empty() ? "" : ": " + last_error_)));
    slot.reset();
    return std::pair{generation_, next_id++};
}

template <class Reply>
Result<Reply> ServerLink::await_reply(uint64_t generation, uint64_t id, Result<std::string> frame,
                                      std::optional<Reply>& slot, std::chrono::milliseconds timeout) {
    if (!frame) return iz::fail(frame.error());
    if (!send(generation, std::move(*frame))) return iz::fail(make_error("the connection was lost"));
    hand_over();
    std::unique_lock lock(mu_);
    bool answered = cv_.wait_for(lock, timeout, [&] {
        return stopping_ || !connected_ || generation != generation_ || (slot && slot->id == id);
    });
    if (!slot || slot->id != id) {
        if (!answered) return iz::fail(make_error(fmt::format("no answer within {} ms", timeout.count())));
        return iz::fail(make_error(fmt::format("the connection was lost{}", last_error_.empty() ? "" : ": " + last_error_)));
    }
    auto reply = std::move(*slot);
    slot.reset();
    return reply;
}

Result<proto::TreeReply> ServerLink::request_tree(proto::TreeRequest req, std::chrono::milliseconds timeout,
                                                 uint64_t* wire_bytes) {
    auto begun = begin_request(next_tree_id_, tree_reply_);
    if (!begun) return iz::fail(begun.error());
    auto [generation, id] = *begun;
    req.id = id;
    auto frame = proto::encode_frame(req);
    if (frame && wire_bytes) *wire_bytes += frame->size();
    auto reply = await_reply(generation, id, std::move(frame), tree_reply_, timeout);
    if (reply && wire_bytes) {
        std::lock_guard lock(mu_);
        *wire_bytes += tree_reply_bytes_;
    }
    return reply;
}

Result<uint64_t> ServerLink::request_head(std::chrono::milliseconds timeout) {
    auto begun = begin_request(next_head_id_, head_reply_);
    if (!begun) return iz::fail(begun.error());
    auto [generation, id] = *begun;
    auto reply = await_reply(generation, id, proto::encode_frame(proto::HeadRequest{id}), head_reply_, timeout);
    if (!reply) return iz::fail(reply.error());
    return reply->lsn;
}

void ServerLink::fail(uint64_t generation, const std::string& why) {
    auto self = shared_from_this();
    asio::post(io_, [self, generation, why] {
        {
            std::lock_guard lock(self->mu_);
            if (generation != self->generation_) return;
        }
        self->lost(why);
    });
}

void ServerLink::reconnect(const std::string& why) {
    auto self = shared_from_this();
    asio::post(io_, [self, why] { self->lost(why); });
}

uint64_t ServerLink::acked_lsn() const {
    std::lock_guard lock(mu_);
    return acked_lsn_;
}

void ServerLink::set_pending_bytes(uint64_t n) {
    std::lock_guard lock(mu_);
    pending_bytes_ = n;
}

// A server reports a rejected record, or a rejected part of one, each time
// it applies the record; after a reconnect it applies again what it had not
// acknowledged (and after a kill, what it had not made durable), so the
// same rejection arrives again and was listed, counted and failed syncs
// once per replay. It is told here, not on the server: only this end knows
// what it has received (a report sent just before a connection broke may
// never have arrived, so the server must say it again), and the server
// forgets what it said when it restarts. A rejection is one record's LSN
// and one part of it, and a part is named by its path: the record as a
// whole and its owner name the entry, a directory's mtime the directory.
// Not by the message: a replay may word it otherwise (a temporary file
// named in it, the state the replica is in by then), and the newer one
// replaces the older.
bool ServerLink::note_rejected(const proto::RejectedMsg& m) {
    std::lock_guard lock(mu_);
    for (auto& r : rejected_) {
        if (r.lsn != m.lsn || r.path != m.path) continue;
        r.message = m.message;
        return false;
    }
    rejected_.push_back(RejectedRecord{m.lsn, m.path, m.message});
    ++rejected_total_;
    if (rejected_.size() > ServerStatus::kMaxRejectedKept) rejected_.pop_front();
    return true;
}

size_t ServerLink::forget_rejected(uint64_t through, const std::vector<std::string>& changing) {
    size_t gone = 0;
    {
        std::lock_guard lock(mu_);
        gone = std::erase_if(rejected_, [&](const RejectedRecord& r) {
            if (r.lsn > through) return false;
            return std::none_of(changing.begin(), changing.end(), [&](const std::string& c) {
                return at_or_beneath(r.path, c) || at_or_beneath(c, r.path);
            });
        });
    }
    if (gone) persist_rejected();
    return gone;
}

ServerStatus ServerLink::status() const {
    std::lock_guard lock(mu_);
    ServerStatus s;
    s.endpoint = name_;
    s.connected = connected_;
    s.last_error = last_error_;
    s.acked_lsn = acked_lsn_;
    s.bytes_behind = (sent_bytes_ - acked_bytes_) + pending_bytes_;
    s.data_bytes_sent = total_data_bytes_.load(std::memory_order_relaxed);
    s.wire_bytes_sent = total_wire_bytes_;
    if (connected_) {
        s.peer = peer_identity_;
        s.tls = tls_summary_;
        s.protocol = connected_version_;
    }
    s.conflicts = conflicts_;
    s.rejected.assign(rejected_.begin(), rejected_.end());
    s.reconnects = connections_ > 0 ? connections_ - 1 : 0;
    s.rejected_total = rejected_total_;
    s.server_errors = server_errors_;
    s.subscribe_refused = subscribe_refused_;
    return s;
}

}  // namespace iz::replicator
