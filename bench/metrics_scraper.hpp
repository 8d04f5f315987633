#pragma once
// What a Prometheus does to a daemon started with --metrics, for the
// benchmarks' metrics mode (IZ_BENCH_METRICS=1): a thread that fetches
// http://127.0.0.1:PORT/metrics of each port every interval (1 s, as the
// tests' Prometheus does) until it is destroyed, reading every page whole.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace iz::bench {

// True when IZ_BENCH_METRICS is set to anything but "" or "0".
inline bool metrics_mode() {
    const char* v = std::getenv("IZ_BENCH_METRICS");
    return v && *v && std::string_view(v) != "0";
}

class MetricsScraper {
public:
    explicit MetricsScraper(std::vector<uint16_t> ports, std::chrono::milliseconds every = std::chrono::seconds(1))
        : ports_(std::move(ports)), every_(every), thread_([this] { loop(); }) {}
    ~MetricsScraper() {
        {
            std::lock_guard lock(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    MetricsScraper(const MetricsScraper&) = delete;
    MetricsScraper& operator=(const MetricsScraper&) = delete;

    uint64_t ok() const { return ok_; }
    uint64_t failed() const { return failed_; }

private:
    void loop() {
        std::unique_lock lock(mu_);
        while (!stop_) {
            lock.unlock();
            for (auto port : ports_) (scrape(port) ? ok_ : failed_)++;
            lock.lock();
            cv_.wait_for(lock, every_, [this] { return stop_; });
        }
    }

    // One GET, the answer read to its end: true for a 200 with a page.
    static bool scrape(uint16_t port) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return false;
        timeval tv{5, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        std::string answer;
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            std::string_view req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
            if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
                char buf[65536];
                for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<size_t>(n));
            }
        }
        ::close(fd);
        return answer.starts_with("HTTP/1.1 200 ") && answer.find("\r\n\r\n# HELP ") != std::string::npos;
    }

    std::vector<uint16_t> ports_;
    std::chrono::milliseconds every_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::atomic<uint64_t> ok_{0}, failed_{0};
    std::thread thread_;  // last: starts once the rest is made
};

// A loopback port nobody listens on now (fixed ports collide with other runs).
inline uint16_t free_loopback_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    uint16_t port = 0;
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) ::close(fd);
    return port;
}

}  // namespace iz::bench
