#include "server.hpp"

#include <signal.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <thread>
#include <vector>

#include "replicator/wire/event_loop.hpp"
#include "server_context.hpp"

namespace iz::replicator {

namespace asio = boost::asio;
using asio::ip::tcp;

Result<std::shared_ptr<FilesetSlot>> ServerContext::slot(const std::string& agent, const std::string& fileset) {
    std::lock_guard lock(mu);
    auto key = std::make_pair(agent, fileset);
    if (auto it = slots.find(key); it != slots.end()) return it->second;
    ApplierOptions ao;
    ao.root = options.dir_mode == FilesetDirMode::per_fileset ? options.root / fileset : options.root;
    ao.state_dir = state_root / agent / fileset;
    ao.host = options.host_name;
    ao.written_handles = true;  // for the fileset journal (session.cpp)
    // The state directory must not be reachable from the wire.
    auto rel = state_root.lexically_relative(ao.root);
    if (!rel.empty() && *rel.begin() != ".." && rel != ".") ao.reserved_top = rel.begin()->string();
    auto applier = Applier::open(ao);
    if (!applier) return fail(applier.error());
    auto slot = std::make_shared<FilesetSlot>();
    slot->applier = std::move(*applier);
    slot->trees = std::make_unique<ReplicaTrees>(ao.root, ao.reserved_top, (ao.state_dir / "content-hashes").string());
    slot->counters.applied_lsn = slot->applier->resume_lsn();
    slot->counters.durable_lsn = slot->applier->durable_lsn();
    auto kept = KeptRejections::open(KeptRejections::file_in(ao.state_dir));
    if (!kept) return fail(kept.error());
    slot->rejections = std::move(*kept);
    slots.emplace(key, slot);
    return slot;
}

Result<std::shared_ptr<FilesetJournal>> ServerContext::fileset_journal(const std::string& fileset) {
    std::lock_guard lock(mu);
    if (auto it = journals.find(fileset); it != journals.end()) return it->second;
    auto root = options.dir_mode == FilesetDirMode::per_fileset ? options.root / fileset : options.root;
    std::string reserved;
    auto rel = state_root.lexically_relative(root);
    if (!rel.empty() && *rel.begin() != ".." && rel != ".") reserved = rel.begin()->string();
    auto j = FilesetJournal::open(state_root / ".filesets" / fileset / "journal", root, reserved);
    if (!j) return fail(j.error());
    journals.emplace(fileset, *j);
    return *j;
}

void ServerContext::forget(const std::shared_ptr<Session>& s) {
    std::lock_guard lock(mu);
    sessions.erase(s);
}

namespace {

class ServerImpl final : public Server {
public:
    explicit ServerImpl(ServerOptions o) : acceptor_(io_), signals_(io_) { ctx_.options = std::move(o); }

    Status init() {
        auto& o = ctx_.options;
        if (o.host_name.empty()) {
            char host[256] = {};
            ::gethostname(host, sizeof host - 1);
            o.host_name = host[0] ? host : "server";
        }
        std::error_code fec;
        std::filesystem::create_directories(o.root, fec);
        if (fec) return fail(Error{fmt::format("create root '{}': {}", o.root.string(), fec.message()), fec.value()});
        o.root = std::filesystem::canonical(o.root, fec);
        if (fec) return fail(Error{fmt::format("resolve root: {}", fec.message()), fec.value()});
        ctx_.state_root = o.state_dir.empty() ? o.root / ".intermezzo" : o.state_dir;
        std::filesystem::create_directories(ctx_.state_root, fec);
        if (fec)
            return fail(Error{fmt::format("create state directory '{}': {}", ctx_.state_root.string(), fec.message()), fec.value()});
        ctx_.state_root = std::filesystem::canonical(ctx_.state_root, fec);
        if (o.dir_mode == FilesetDirMode::root) {
            auto rel = ctx_.state_root.lexically_relative(o.root);
            if (!rel.empty() && *rel.begin() != ".." && rel != ".") ctx_.reserved_top = rel.begin()->string();
        }

        auto agents = read_agents();
        if (!agents) return fail(agents.error());
        if (o.identity && !o.allowed_agents) o.allowed_agents = std::make_shared<PeerPins>();
        if (o.identity && lists_certificates()) o.allowed_agents->replace(agents->certificates);
        ctx_.agents = std::make_shared<const AgentsFile>(std::move(*agents));
        std::vector<SharedKey> keys;
        if (!o.key.bytes.empty()) keys.push_back(o.key);
        keys.insert(keys.end(), o.other_keys.begin(), o.other_keys.end());
        auto tls = make_tls_context(TlsRole::server, TlsSettings{std::move(keys), o.identity, o.allowed_agents});
        if (!tls) return fail(tls.error());
        ctx_.tls = *tls;

        boost::system::error_code ec;
        auto address = asio::ip::make_address(o.listen_host, ec);
        if (ec) return fail(make_error(fmt::format("listen address '{}' is not an IP address: {}", o.listen_host, ec.message())));
        tcp::endpoint ep(address, o.port);
        acceptor_.open(ep.protocol(), ec);
        if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) acceptor_.bind(ep, ec);
        if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
        if (ec)
            return fail(Error{fmt::format("listen on {}:{}: {}", o.listen_host, o.port, ec.message()), ec.value()});
        port_ = acceptor_.local_endpoint().port();
        accept();
        return {};
    }

    uint16_t port() const override { return port_; }
    std::string metrics() override { return server_metrics(ctx_); }

    void run(bool handle_signals, const std::function<void()>& serving) override {
        if (handle_signals) {
            signals_.add(SIGTERM);
            signals_.add(SIGINT);
            signals_.add(SIGHUP);
            wait_signal();
        }
        spdlog::info("serving {} on {}:{}", ctx_.options.root.string(), ctx_.options.listen_host, port_);
        if (ctx_.options.identity) spdlog::info("this server's node ID: {}", format_node_id(ctx_.options.identity->fingerprint));
        if (serving) serving();
        std::vector<std::thread> threads;
        for (int i = 1; i < std::max(1, ctx_.options.threads); ++i) threads.emplace_back([this] { run_loop(); });
        run_loop();
        for (auto& t : threads) t.join();
    }

    void stop() override {
        asio::post(io_, [this] {
            boost::system::error_code ec;
            acceptor_.close(ec);
            signals_.cancel(ec);
            std::set<std::shared_ptr<Session>> sessions;
            {
                std::lock_guard lock(ctx_.mu);
                sessions = ctx_.sessions;
            }
            for (auto& s : sessions) s->shutdown("the server is shutting down");
            io_.stop();
        });
    }

    ~ServerImpl() override {
        io_.stop();
        std::lock_guard lock(ctx_.mu);
        ctx_.sessions.clear();
    }

    // Reads the agents file (or the older two) again; sessions whose
    // identity or fileset is no longer allowed (or whose certificate is now
    // bound to another name) are dropped, the others go on.
    void reload() override {
        auto& o = ctx_.options;
        auto agents = read_agents();
        if (!agents) {
            spdlog::error("reload: {}; the agents and their access stay as they were", agents.error().message);
        } else {
            spdlog::info("reload: {} certificates, {} keys and {} access rules from {}", agents->certificates.size(),
                         agents->keys.size(), agents->access ? agents->access->size() : 0, sources());
            if (o.identity && o.allowed_agents && lists_certificates()) o.allowed_agents->replace(agents->certificates);
            std::lock_guard lock(ctx_.access_mu);
            ctx_.agents = std::make_shared<const AgentsFile>(std::move(*agents));
        }
        std::set<std::shared_ptr<Session>> sessions;
        {
            std::lock_guard lock(ctx_.mu);
            sessions = ctx_.sessions;
        }
        for (auto& s : sessions) s->recheck();
    }

private:
    Result<AgentsFile> read_agents() const {
        auto& o = ctx_.options;
        if (!o.agents_file.empty()) return AgentsFile::read(o.agents_file);
        return AgentsFile::read_older(o.identity ? o.allowed_agents_file : std::filesystem::path(), o.access_file);
    }

    // Whether the certificates accepted come from a file (else from
    // whoever filled options.allowed_agents).
    bool lists_certificates() const {
        return !ctx_.options.agents_file.empty() || !ctx_.options.allowed_agents_file.empty();
    }

    std::string sources() const {
        auto& o = ctx_.options;
        if (!o.agents_file.empty()) return o.agents_file.string();
        std::string out;
        for (auto* p : {&o.allowed_agents_file, &o.access_file})
            if (!p->empty()) out += (out.empty() ? "" : " and ") + p->string();
        return out.empty() ? std::string("the command line") : out;
    }

    void wait_signal() {
        signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                try {
                    reload();
                } catch (const std::exception& e) {
                    spdlog::error("reload: {}", e.what());
                }
                return wait_signal();
            }
            spdlog::info("signal {}: shutting down", sig);
            stop();
        });
    }

    // No exception may end the server: log it and keep serving.
    void run_loop() { run_event_loop(io_, "the server's event loop"); }

    void accept() {
        acceptor_.async_accept(asio::make_strand(io_), [this](const boost::system::error_code& ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
            if (!ec) {
                try {
                    std::shared_ptr<Session> s;
                    {
                        std::lock_guard lock(ctx_.mu);
                        s = std::make_shared<Session>(std::move(socket), ctx_, ctx_.next_session_id++);
                        ctx_.sessions.insert(s);
                        ++ctx_.accepted;
                    }
                    s->start();
                } catch (const std::exception& e) {
                    spdlog::error("accepting a connection: {}", e.what());
                }
            } else {
                spdlog::warn("accept: {}", ec.message());
            }
            accept();
        });
    }

    asio::io_context io_;
    tcp::acceptor acceptor_;
    asio::signal_set signals_;
    ServerContext ctx_;
    uint16_t port_ = 0;
};

}  // namespace

Result<std::unique_ptr<Server>> Server::start(ServerOptions options) {
    ::signal(SIGPIPE, SIG_IGN);
    auto s = std::make_unique<ServerImpl>(std::move(options));
    if (auto ok = s->init(); !ok) return fail(ok.error());
    return std::unique_ptr<Server>(std::move(s));
}

}  // namespace iz::replicator
