// The /metrics endpoint against well-behaved and hostile clients over real
// sockets: what each gets back, and that none of them keeps the others (or
// the page) waiting.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "metrics/http_server.hpp"

namespace iz::metrics {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kPage = "# HELP iz_up Up.\n# TYPE iz_up gauge\niz_up 1\n";

UniqueFd connect_to(uint16_t port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ADD_FAILURE() << "connect: " << errno;
    return fd;
}

void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n <= 0) return;  // the server may close first: that is what some tests expect
        data.remove_prefix(static_cast<size_t>(n));
    }
}

struct Received {
    std::string data;
    bool closed = false;  // the server closed (EOF or reset) within the time given
    Clock::duration took{};
};

// Reads until the server closes the connection or `limit` passes.
Received read_until_closed(int fd, std::chrono::milliseconds limit) {
    Received r;
    auto start = Clock::now();
    auto deadline = start + limit;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
        char buf[65536];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            r.closed = true;
            break;
        }
        r.data.append(buf, static_cast<size_t>(n));
    }
    r.took = Clock::now() - start;
    return r;
}

// One request on a fresh connection, the answer read to its end.
std::string ask(uint16_t port, std::string_view request) {
    auto fd = connect_to(port);
    send_all(fd.get(), request);
    return read_until_closed(fd.get(), 5s).data;
}

constexpr std::string_view kScrape = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

class HttpServerTest : public ::testing::Test {
protected:
    void SetUp() override {
        HttpServerOptions o;
        o.host = "127.0.0.1";
        o.port = 0;
        o.render = [this] {
            ++renders_;
            if (throw_) throw std::runtime_error("broken");
            return std::string(kPage);
        };
        o.request_timeout = 300ms;
        o.write_timeout = 300ms;
        o.max_request_bytes = 4096;
        o.max_connections = 4;
        auto s = HttpServer::start(std::move(o));
        ASSERT_TRUE(s) << s.error().message;
        server_ = std::move(*s);
    }

    void expect_scrape_works() {
        auto answer = ask(server_->port(), kScrape);
        EXPECT_TRUE(answer.starts_with("HTTP/1.1 200 OK\r\n")) << answer;
        EXPECT_NE(answer.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos) << answer;
        EXPECT_TRUE(answer.ends_with(std::string("\r\n\r\n") + std::string(kPage))) << answer;
    }

    std::atomic<int> renders_{0};
    std::atomic<bool> throw_{false};
    std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, AScrapeGetsThePage) {
    expect_scrape_works();
    EXPECT_EQ(renders_, 1);
    // A query string is no other page.
    auto answer = ask(server_->port(), "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 200 OK\r\n")) << answer;
}

TEST_F(HttpServerTest, AKeptAliveConnectionIsAnsweredAgain) {
    auto fd = connect_to(server_->port());
    std::string one = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd.get(), one);
    send_all(fd.get(), one);
    // Both answers come on the one connection; then it idles out.
    auto r = read_until_closed(fd.get(), 3s);
    EXPECT_TRUE(r.closed);
    size_t first = r.data.find("HTTP/1.1 200 OK");
    ASSERT_NE(first, std::string::npos) << r.data;
    EXPECT_NE(r.data.find("HTTP/1.1 200 OK", first + 1), std::string::npos) << r.data;
    EXPECT_EQ(renders_, 2);
}

TEST_F(HttpServerTest, OtherPathsAndMethodsAreRefused) {
    auto answer = ask(server_->port(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 404 Not Found\r\n")) << answer;
    answer = ask(server_->port(), "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << answer;
    EXPECT_NE(answer.find("Allow: GET\r\n"), std::string::npos) << answer;
    EXPECT_EQ(renders_, 0);
}

TEST_F(HttpServerTest, AClientThatSendsNothingIsClosedAndHoldsUpNoOne) {
    auto silent = connect_to(server_->port());
    auto half = connect_to(server_->port());
    send_all(half.get(), "GET /metrics HTTP/1.1\r\nHost:");  // and never the rest
    // Meanwhile, scrapes are answered at once.
    auto start = Clock::now();
    expect_scrape_works();
    EXPECT_LT(Clock::now() - start, 250ms);
    // Both are closed once the request timeout passes, without an answer.
    auto r1 = read_until_closed(silent.get(), 3s);
    auto r2 = read_until_closed(half.get(), 3s);
    EXPECT_TRUE(r1.closed);
    EXPECT_TRUE(r2.closed);
    EXPECT_EQ(r1.data, "");
    EXPECT_EQ(r2.data, "");
    EXPECT_LT(r1.took, 2s);
    EXPECT_EQ(renders_, 1);
}

TEST_F(HttpServerTest, GarbageGetsBadRequestAndTheConnectionClosed) {
    for (std::string garbage : {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n", 27),
                                std::string("HELLO THERE\r\n\r\n"), std::string("GET /metrics HTTP/9.9\r\n\r\n"),
                                std::string("GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")}) {
        auto fd = connect_to(server_->port());
        send_all(fd.get(), garbage);
        auto r = read_until_closed(fd.get(), 3s);
        EXPECT_TRUE(r.closed) << garbage;
        EXPECT_TRUE(r.data.starts_with("HTTP/1.1 400 Bad Request\r\n")) << garbage << " -> " << r.data;
    }
    EXPECT_EQ(renders_, 0);
    expect_scrape_works();
}

TEST_F(HttpServerTest, HeadersBeyondTheLimitAreNotBuffered) {
    auto fd = connect_to(server_->port());
    std::string big = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: " + std::string(1 << 20, 'a') + "\r\n\r\n";
    send_all(fd.get(), big);
    auto r = read_until_closed(fd.get(), 3s);
    EXPECT_TRUE(r.closed);
    // Answered "400" (or reset while the client was still sending): never a page.
    EXPECT_EQ(r.data.find("200 OK"), std::string::npos) << r.data.substr(0, 200);
    EXPECT_EQ(renders_, 0);
    expect_scrape_works();
}

TEST_F(HttpServerTest, ConnectionsBeyondTheLimitAreClosedAtOnce) {
    std::vector<UniqueFd> idle;
    for (int i = 0; i < 4; ++i) idle.push_back(connect_to(server_->port()));
    std::this_thread::sleep_for(50ms);  // all four accepted
    auto extra = connect_to(server_->port());
    auto r = read_until_closed(extra.get(), 3s);
    EXPECT_TRUE(r.closed);
    EXPECT_LT(r.took, 250ms);  // not after the request timeout: at once
    // Once the idle ones time out, scrapes are answered again.
    for (auto& fd : idle) read_until_closed(fd.get(), 3s);
    std::this_thread::sleep_for(50ms);
    expect_scrape_works();
}

TEST_F(HttpServerTest, ARenderThatThrowsIsAServerErrorAndServingGoesOn) {
    throw_ = true;
    auto answer = ask(server_->port(), kScrape);
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 500 Internal Server Error\r\n")) << answer;
    throw_ = false;
    expect_scrape_works();
}

TEST_F(HttpServerTest, ABusyAddressIsAnErrorNamingIt) {
    HttpServerOptions o;
    o.host = "127.0.0.1";
    o.port = server_->port();
    o.render = [] { return std::string(); };
    auto second = HttpServer::start(std::move(o));
    ASSERT_FALSE(second);
    EXPECT_NE(second.error().message.find(fmt::format("127.0.0.1:{}", server_->port())), std::string::npos)
        << second.error().message;
    EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;
}

TEST_F(HttpServerTest, StopClosesOpenConnections) {
    auto fd = connect_to(server_->port());
    std::this_thread::sleep_for(50ms);
    server_->stop();
    auto r = read_until_closed(fd.get(), 2s);
    EXPECT_TRUE(r.closed);
    EXPECT_LT(r.took, 1s);
}

}  // namespace
}  // namespace iz::metrics
