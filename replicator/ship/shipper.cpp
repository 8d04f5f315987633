// The Shipper: one io_context thread for every server's connection, and one
// worker thread per server that follows the journal for it.
#include "replicator/ship/shipper.hpp"

#include <pthread.h>

#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "journal/reader.hpp"
#include "journal/retention.hpp"
#include "replicator/wire/auth.hpp"
#include "replicator/wire/identity.hpp"
#include "replicator/wire/tls.hpp"
#include "replicator/wire/event_loop.hpp"
#include "replicator/wire/protocol.hpp"
#include "server_link.hpp"
#include "ship_worker.hpp"

namespace iz::replicator {

namespace asio = boost::asio;

std::string consumer_name(const ServerEndpoint& ep) {
    std::string out = "replica-";
    for (char c : ep.host) out.push_back(c == '/' || c == ':' || c == '\0' ? '_' : c);
    out += "-" + std::to_string(ep.port);
    return out;
}

namespace {

// The fileset and the agent id name directories on the server.
Status check_name(std::string_view what, const std::string& name) {
    if (proto::valid_identity(name)) return {};
    return fail(make_error(
        fmt::format("invalid {} '{}': use 1-128 of A-Z a-z 0-9 . _ - (not starting with '.')", what, name)));
}

// What `ep` is reached with that the options lack: the shared key, or the
// agent's identity for a server pinned by node ID.
Status check_credentials(const ShipperOptions& o, const ServerEndpoint& ep) {
    if (ep.fingerprint.empty() && o.key_file.empty())
        return fail(make_error(fmt::format("server {} needs a shared key (--key KEYFILE), or its node ID "
                                           "(HOST:PORT@NODE-ID) and --identity DIR",
                                           ep.to_string())));
    if (!ep.fingerprint.empty() && o.identity_dir.empty())
        return fail(make_error(fmt::format("server {} is pinned by node ID: it needs this agent's identity "
                                           "(--identity DIR; make one with 'izwatch identity new DIR')",
                                           ep.to_string())));
    return {};
}

class ShipperImpl final : public Shipper {
public:
    explicit ShipperImpl(ShipperOptions o) : options_(std::move(o)) {}
    ~ShipperImpl() override { stop(); }

    Status init() {
        if (options_.servers.empty()) return fail(make_error("no servers to ship to"));
        if (auto ok = check_name("fileset name", options_.fileset); !ok) return ok;
        if (auto ok = check_name("agent id", options_.agent_id); !ok) return ok;
        // Servers pinned by node ID get this agent's certificate; the others
        // the shared key.
        SharedKey key;
        std::shared_ptr<asio::ssl::context> psk_tls;
        std::optional<NodeIdentity> identity;
        for (auto& ep : options_.servers) {
            if (auto ok = check_credentials(options_, ep); !ok) return ok;
            if (ep.fingerprint.empty() && !psk_tls) {
                auto loaded = load_key_file(options_.key_file);
                if (!loaded) return fail(loaded.error());
                key = *loaded;
                auto tls = make_psk_context(TlsRole::client, {key});
                if (!tls) return fail(tls.error());
                psk_tls = *tls;
            }
            if (!ep.fingerprint.empty() && !identity) {
                auto loaded = load_identity(options_.identity_dir);
                if (!loaded) return fail(loaded.error());
                identity = std::move(*loaded);
            }
        }
        std::vector<std::shared_ptr<asio::ssl::context>> contexts;
        for (auto& ep : options_.servers) {
            if (ep.fingerprint.empty()) {
                contexts.push_back(psk_tls);
                continue;
            }
            auto pins = std::make_shared<PeerPins>(std::map<std::string, std::string>{{ep.fingerprint, ""}});
            auto tls = make_tls_context(TlsRole::client, TlsSettings{{}, identity, pins});
            if (!tls) return fail(tls.error());
            contexts.push_back(*tls);
        }
        if (auto tree = SourceTree::open(options_.watched_root); !tree) return fail(tree.error());
        if (options_.register_consumers) {
            // A server not heard from yet still holds the journal back: its
            // cursor starts at 0 unless one is already registered.
            auto known = journal::load_consumer_lsns(options_.journal_dir);
            for (auto& ep : options_.servers) {
                auto name = consumer_name(ep);
                if (known && known->count(name)) continue;
                if (auto ok = journal::save_consumer_lsn(options_.journal_dir, name, 0); !ok) return fail(ok.error());
            }
        }
        work_.emplace(asio::make_work_guard(io_));
        for (size_t i = 0; i < options_.servers.size(); ++i)
            links_.push_back(std::make_shared<ServerLink>(io_, options_, key, contexts[i], options_.servers[i], [this] {
                {
                    std::lock_guard lock(ack_mu_);
                    ack_cv_.notify_all();
                }
                if (options_.on_acked) {
                    try {
                        options_.on_acked();
                    } catch (const std::exception& e) {
                        spdlog::error("ack callback failed: {}", e.what());
                    }
                }
            }));
        for (auto& link : links_)
            if (auto ok = link->restore_rejected(); !ok) return ok;
        // Shared filesets: one server forwards; the others only receive.
        if (options_.receiver && !links_.empty()) links_.front()->receive_into(options_.receiver);
        io_thread_ = std::thread([this] {
            pthread_setname_np(pthread_self(), "iz-ship-net");
            run_event_loop(io_, "shipper network thread");
        });
        for (auto& link : links_) {
            link->start();
            if (!options_.send) continue;
            auto worker =
                std::make_shared<ShipWorker>(options_, link, stopping_, durable_, [this](uint64_t lsn) { saw(lsn); });
            workers_.emplace_back([worker] {
                pthread_setname_np(pthread_self(), "iz-ship");
                worker->run();
            });
        }
        return {};
    }

    void notify(uint64_t durable_lsn) override {
        saw(durable_lsn);
        durable_.advance(durable_lsn);
    }

    std::vector<ServerStatus> status() const override {
        uint64_t head = journal_head();
        std::vector<ServerStatus> out;
        for (auto& link : links_) {
            auto s = link->status();
            s.records_behind = head > s.acked_lsn ? head - s.acked_lsn : 0;
            if (s.records_behind > 0) s.unacked_age_s = age_of(s.acked_lsn + 1);
            out.push_back(std::move(s));
        }
        return out;
    }

    uint64_t acked_by_all() const override {
        uint64_t lsn = UINT64_MAX;
        for (auto& link : links_) lsn = std::min(lsn, link->acked_lsn());
        return lsn;
    }

    Status wait_acked(uint64_t lsn, std::chrono::milliseconds timeout) override {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        std::unique_lock lock(ack_mu_);
        bool done = ack_cv_.wait_until(lock, deadline, [&] {
            if (stopping_) return true;
            for (auto& link : links_)
                if (link->acked_lsn() < lsn) return false;
            return true;
        });
        if (done && !stopping_) return {};
        std::string why;
        for (auto& link : links_) {
            auto s = link->status();
            if (s.acked_lsn >= lsn) continue;
            if (!why.empty()) why += "; ";
            why += fmt::format("{} has applied through LSN {}{}", s.endpoint, s.acked_lsn,
                               s.last_error.empty() ? std::string() : " (" + s.last_error + ")");
        }
        if (stopping_) return fail(make_error(fmt::format("shipper stopped before LSN {} was acknowledged: {}", lsn, why)));
        return fail(make_error(fmt::format("LSN {} not acknowledged within {} ms: {}", lsn, timeout.count(), why)));
    }

    Status wait_acked_by(size_t server, uint64_t lsn, std::chrono::milliseconds timeout) override {
        if (server >= links_.size()) return fail(make_error(fmt::format("no server number {}", server)));
        auto& link = links_[server];
        auto deadline = std::chrono::steady_clock::now() + timeout;
        std::unique_lock lock(ack_mu_);
        bool done = ack_cv_.wait_until(lock, deadline, [&] { return stopping_ || link->acked_lsn() >= lsn; });
        if (done && !stopping_) return {};
        auto s = link->status();
        return fail(make_error(fmt::format("{} has applied through LSN {}, not yet {}{}", s.endpoint, s.acked_lsn, lsn,
                                           s.last_error.empty() ? std::string() : " (" + s.last_error + ")")));
    }

    Result<proto::TreeReply> ask_tree(size_t server, proto::TreeRequest req, std::chrono::milliseconds timeout,
                                      uint64_t* wire_bytes) override {
        if (server >= links_.size()) return fail(make_error(fmt::format("no server number {}", server)));
        return links_[server]->request_tree(std::move(req), timeout, wire_bytes);
    }

    size_t forget_rejected(size_t server, uint64_t lsn, const std::vector<std::string>& changing) override {
        if (server >= links_.size()) return 0;
        return links_[server]->forget_rejected(lsn, changing);
    }

    Result<uint64_t> ask_head(std::chrono::milliseconds timeout) override {
        if (links_.empty()) return fail(make_error("no server"));
        return links_.front()->request_head(timeout);
    }

    void resubscribe(const std::string& why) override {
        if (!links_.empty()) links_.front()->reconnect(why);
    }

    void stop() override {
        if (stopped_.exchange(true)) return;
        stopping_ = true;
        for (auto& link : links_) link->stop();
        {
            std::lock_guard lock(ack_mu_);
            ack_cv_.notify_all();
        }
        durable_.wake();
        for (auto& t : workers_)
            if (t.joinable()) t.join();
        work_.reset();
        io_.stop();
        if (io_thread_.joinable()) io_thread_.join();
    }

private:
    void saw(uint64_t lsn) {
        uint64_t prev = head_.load();
        while (lsn > prev && !head_.compare_exchange_weak(prev, lsn)) {
        }
    }

    // The journal's last LSN, looked up at most twice a second.
    uint64_t journal_head() const {
        std::lock_guard lock(head_mu_);
        auto now = std::chrono::steady_clock::now();
        if (now - head_checked_ > std::chrono::milliseconds(500)) {
            head_checked_ = now;
            if (!head_reader_) {
                if (auto r = journal::Reader::open(options_.journal_dir)) head_reader_ = std::move(*r);
            }
            if (head_reader_ && head_reader_->refresh() && head_reader_->seek_tail()) {
                auto last = head_reader_->prev();
                if (last && *last) const_cast<ShipperImpl*>(this)->saw((*last)->lsn);
            }
        }
        return head_.load();
    }

    // Seconds since the record at `lsn` was journaled (0 when it cannot be
    // read: retention never removes what a server has not acknowledged).
    double age_of(uint64_t lsn) const {
        std::lock_guard lock(head_mu_);
        if (!head_reader_) return 0;
        if (!head_reader_->seek_lsn(lsn)) return 0;
        auto rec = head_reader_->next();
        if (!rec || !*rec || (*rec)->lsn != lsn) return 0;
        auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
        return now > (*rec)->time_ns ? static_cast<double>(now - (*rec)->time_ns) / 1e9 : 0;
    }

    ShipperOptions options_;
    asio::io_context io_;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
    std::thread io_thread_;
    std::vector<std::shared_ptr<ServerLink>> links_;
    std::vector<std::thread> workers_;
    std::atomic<bool> stopping_{false};
    std::atomic<bool> stopped_{false};
    std::mutex ack_mu_;
    std::condition_variable ack_cv_;
    std::atomic<uint64_t> head_{0};
    DurableMark durable_;
    mutable std::mutex head_mu_;
    mutable std::unique_ptr<journal::Reader> head_reader_;
    mutable std::chrono::steady_clock::time_point head_checked_{};
};

}  // namespace

Result<std::unique_ptr<Shipper>> Shipper::start(ShipperOptions options) {
    auto s = std::make_unique<ShipperImpl>(std::move(options));
    if (auto ok = s->init(); !ok) return fail(ok.error());
    return std::unique_ptr<Shipper>(std::move(s));
}

}  // namespace iz::replicator
