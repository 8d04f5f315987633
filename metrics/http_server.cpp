// The /metrics endpoint (http_server.hpp): one io_context on a thread of its
// own; every connection reads one request at a time under a deadline,
// through Beast's parser, never more than the limits allow.
#include "metrics/http_server.hpp"

#include <pthread.h>

// Boost 1.74 uses std::exchange without including <utility> (C++23 no
// longer pulls it in transitively).
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <optional>
#include <thread>
#include <vector>

#include "metrics/exposition.hpp"

namespace iz::metrics {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class Connection;

struct Shared {
    HttpServerOptions options;
    size_t live = 0;  // connections open (the io thread alone counts them)
    // To close them at stop(); expired ones are dropped at each accept.
    std::vector<std::weak_ptr<Connection>> connections;
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(tcp::socket socket, Shared& shared)
        : stream_(std::move(socket)), shared_(shared), buffer_(shared.options.max_request_bytes) {
        ++shared_.live;
    }
    ~Connection() { --shared_.live; }

    void read() {
        parser_.emplace();
        parser_->header_limit(static_cast<uint32_t>(shared_.options.max_request_bytes));
        stream_.expires_after(shared_.options.request_timeout);
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
    }

    void close() {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        stream_.close();
    }

private:
    void on_read(beast::error_code ec) {
        // The client went away, or sent nothing whole in time: nothing to
        // answer (a deadline passed closes the socket already).
        if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
            ec == asio::error::connection_reset || ec == asio::error::eof)
            return close();
        if (ec) return answer(http::status::bad_request, fmt::format("bad request: {}\n", ec.message()), false);
        auto& req = parser_->get();
        bool keep = req.keep_alive();
        if (req.method() != http::verb::get) return answer(http::status::method_not_allowed, "only GET\n", keep);
        std::string_view target(req.target().data(), req.target().size());
        if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
        if (target != "/metrics") return answer(http::status::not_found, "metrics are at /metrics\n", keep);
        std::string page;
        try {
            page = shared_.options.render();
        } catch (const std::exception& e) {
            spdlog::error("metrics: rendering the page failed: {}", e.what());
            return answer(http::status::internal_server_error, "rendering the metrics failed\n", keep);
        }
        answer(http::status::ok, std::move(page), keep, kContentType);
    }

    void answer(http::status status, std::string body, bool keep_alive,
                std::string_view type = "text/plain; charset=utf-8") {
        res_ = {};
        res_.result(status);
        res_.version(11);
        res_.set(http::field::content_type, beast::string_view(type.data(), type.size()));
        if (status == http::status::method_not_allowed) res_.set(http::field::allow, "GET");
        res_.keep_alive(keep_alive);
        res_.body() = std::move(body);
        res_.prepare_payload();
        stream_.expires_after(shared_.options.write_timeout);
        http::async_write(stream_, res_, [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
            if (ec || !keep_alive) return self->close();
            self->read();
        });
    }

    beast::tcp_stream stream_;
    Shared& shared_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::empty_body>> parser_;
    http::response<http::string_body> res_;
};

class HttpServerImpl final : public HttpServer {
public:
    explicit HttpServerImpl(HttpServerOptions o) : acceptor_(io_), retry_(io_) { shared_.options = std::move(o); }
    ~HttpServerImpl() override { stop(); }

    Status init() {
        auto& o = shared_.options;
        auto where = fmt::format("{}:{}", o.host, o.port);
        boost::system::error_code ec;
        tcp::resolver resolver(io_);
        auto found = resolver.resolve(o.host, std::to_string(o.port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
        if (ec || found.empty())
            return fail(make_error(fmt::format("metrics address {}: {}", where, ec ? ec.message() : "no address")));
        auto ep = found.begin()->endpoint();
        if (acceptor_.open(ep.protocol(), ec); ec) return fail(sys_error("open a socket for metrics on", where, ec.value()));
        acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
        if (acceptor_.bind(ep, ec); ec) return fail(sys_error("listen for metrics on", where, ec.value()));
        if (acceptor_.listen(asio::socket_base::max_listen_connections, ec); ec)
            return fail(sys_error("listen for metrics on", where, ec.value()));
        port_ = acceptor_.local_endpoint(ec).port();
        accept();
        thread_ = std::thread([this] {
            pthread_setname_np(pthread_self(), "iz-metrics");
            for (;;) {
                try {
                    io_.run();
                    return;
                } catch (const std::exception& e) {
                    spdlog::error("metrics: internal error in a handler: {}", e.what());
                } catch (...) {
                    spdlog::error("metrics: internal error in a handler");
                }
            }
        });
        return {};
    }

    uint16_t port() const override { return port_; }

    void stop() override {
        if (stopped_.exchange(true)) return;
        io_.stop();
        if (thread_.joinable()) thread_.join();
        // The thread is gone: what it owned is this thread's now. Every
        // connection is closed, and the handlers that still hold them run
        // (aborted) so that they go now, not with the io_context.
        boost::system::error_code ec;
        acceptor_.close(ec);
        retry_.cancel();
        for (auto& weak : shared_.connections)
            if (auto c = weak.lock()) c->close();
        shared_.connections.clear();
        io_.restart();
        io_.poll();
    }

private:
    void accept() {
        acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted) return;
            if (ec) {
                // Out of descriptors, say: tried again in a moment, not at once.
                retry_.expires_after(std::chrono::milliseconds(100));
                retry_.async_wait([this](boost::system::error_code e) {
                    if (!e) accept();
                });
                return;
            }
            {
                if (shared_.live >= shared_.options.max_connections) {
                    boost::system::error_code ignored;
                    socket.shutdown(tcp::socket::shutdown_both, ignored);
                    socket.close(ignored);
                } else {
                    auto c = std::make_shared<Connection>(std::move(socket), shared_);
                    std::erase_if(shared_.connections, [](auto& w) { return w.expired(); });
                    shared_.connections.push_back(c);
                    c->read();
                }
            }
            accept();
        });
    }

    // The connections the io_context still holds count themselves out of
    // shared_ when it is destroyed: shared_ outlives it, and it outlives
    // everything else that uses it.
    Shared shared_;
    asio::io_context io_{1};
    tcp::acceptor acceptor_;
    asio::steady_timer retry_;
    uint16_t port_ = 0;
    std::thread thread_;
    std::atomic<bool> stopped_{false};
};

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::start(HttpServerOptions options) {
    if (!options.render) return fail(make_error("metrics: nothing to render"));
    auto s = std::make_unique<HttpServerImpl>(std::move(options));
    if (auto ok = s->init(); !ok) return fail(ok.error());
    return std::unique_ptr<HttpServer>(std::move(s));
}

}  // namespace iz::metrics
