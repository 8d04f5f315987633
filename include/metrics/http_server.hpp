#pragma once
// The /metrics endpoint a Prometheus scrapes: an HTTP/1.1 server (Boost.Beast)
// on a thread of its own, so that neither a scrape nor a slow or hostile
// client holds up the daemon that runs it.
//
// Promises:
//  - GET /metrics (any query string) is answered with render()'s page and
//    the exposition format's Content-Type; any other path is 404, any other
//    method 405. Connections are kept alive when the client asks.
//  - A client that sends nothing, or a request slowly, is closed once
//    request_timeout passes without a whole request; one that does not read
//    the answer, once write_timeout passes. A request line and headers
//    larger than max_request_bytes, a request with a body and anything that
//    is not HTTP get "400 Bad Request" and the connection is closed. Beyond
//    max_connections at once, a new connection is closed at once. None of
//    this reaches render() or the daemon.
//  - render() runs on the server's thread, one scrape at a time; what it
//    throws becomes "500 Internal Server Error" with a log line. No
//    exception escapes the thread.
//  - The destructor (or stop()) closes every connection and joins the
//    thread: render() is not called after it returns.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/error.hpp"

namespace iz::metrics {

struct HttpServerOptions {
    std::string host;   // an address to listen on ("127.0.0.1", "::", "0.0.0.0"), or a name resolved once
    uint16_t port = 0;  // 0: any free port (see port())
    std::function<std::string()> render;
    std::chrono::milliseconds request_timeout{10'000};
    std::chrono::milliseconds write_timeout{10'000};
    size_t max_request_bytes = 8192;
    size_t max_connections = 16;
};

class HttpServer {
public:
    // Binds and listens; fails (naming the address and the reason) when it
    // cannot. When this returns, scrapes are answered.
    static Result<std::unique_ptr<HttpServer>> start(HttpServerOptions options);
    virtual ~HttpServer() = default;
    virtual uint16_t port() const = 0;
    // Idempotent; the destructor calls it.
    virtual void stop() = 0;
};

}  // namespace iz::metrics
