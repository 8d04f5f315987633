#include "e2e_relay.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

namespace iz::test::e2e {

Relay::Relay(const Netns& ns, std::string host, uint16_t port) : host_(std::move(host)), upstream_port_(port) {
    if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) throw std::runtime_error("relay: pipe2 failed");
    acceptor_ = std::thread([this, path = "/var/run/netns/" + ns.name()] { accept_loop(path); });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
        {
            std::lock_guard lock(mu_);
            if (!error_.empty()) break;
        }
        if (port_.load() != 0 || std::chrono::steady_clock::now() > deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (port_.load() == 0) {
        std::string why;
        {
            std::lock_guard lock(mu_);
            why = error_.empty() ? "no listening socket in time" : error_;
        }
        // The destructor does not run for a constructor that throws.
        (void)!::write(stop_pipe_[1], "x", 1);
        acceptor_.join();
        throw std::runtime_error("relay: " + why);
    }
}

Relay::~Relay() {
    (void)!::write(stop_pipe_[1], "x", 1);
    if (acceptor_.joinable()) acceptor_.join();
    for (auto& t : pumps_) t.join();
    ::close(stop_pipe_[0]);
    ::close(stop_pipe_[1]);
}

std::string Relay::endpoint() const { return fmt::format("127.0.0.1:{}", port_.load()); }

void Relay::arm(Tamper what, Direction dir) {
    std::lock_guard lock(mu_);
    armed_ = true;
    what_ = what;
    dir_ = dir;
    fired_ = false;
}

std::string Relay::recorded() const {
    std::lock_guard lock(const_cast<std::mutex&>(mu_));
    return recorded_;
}

// The thread enters the namespace (a thread's network namespace is its
// own): the sockets it makes live there.
void Relay::accept_loop(std::string netns_path) {
    auto failed = [&](const std::string& what) {
        std::lock_guard lock(mu_);
        error_ = fmt::format("{}: {}", what, strerror(errno));
    };
    int nsfd = ::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || ::setns(nsfd, CLONE_NEWNET) != 0) {
        failed("enter " + netns_path);
        if (nsfd >= 0) ::close(nsfd);
        return;
    }
    ::close(nsfd);
    int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (lfd < 0 || ::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 16) != 0 ||
        ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        failed("listen");
        if (lfd >= 0) ::close(lfd);
        return;
    }
    port_ = ntohs(addr.sin_port);
    sockaddr_in up{};
    up.sin_family = AF_INET;
    up.sin_port = htons(upstream_port_);
    ::inet_pton(AF_INET, host_.c_str(), &up.sin_addr);
    for (;;) {
        pollfd p[2] = {{lfd, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents) break;
        int afd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (afd < 0) continue;
        int sfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sfd < 0 || ::connect(sfd, reinterpret_cast<sockaddr*>(&up), sizeof up) != 0) {
            if (sfd >= 0) ::close(sfd);
            ::close(afd);
            continue;
        }
        int one = 1;
        ::setsockopt(afd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ::setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ++connections_;
        pumps_.emplace_back([this, afd, sfd] { pump(afd, sfd); });
    }
    ::close(lfd);
}

namespace {
bool write_all(int fd, const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}
}  // namespace

void Relay::pump(int agent_fd, int server_fd) {
    std::string buf(64 * 1024, '\0');
    for (;;) {
        pollfd p[3] = {{agent_fd, POLLIN, 0}, {server_fd, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
        if (::poll(p, 3, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[2].revents) break;
        bool done = false;
        for (int i = 0; i < 2 && !done; ++i) {
            if (!p[i].revents) continue;
            int from = i == 0 ? agent_fd : server_fd, to = i == 0 ? server_fd : agent_fd;
            ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
            if (n <= 0) {
                done = true;
                break;
            }
            std::string chunk = buf.substr(0, static_cast<size_t>(n));
            {
                std::lock_guard lock(mu_);
                recorded_ += chunk;
                Direction dir = i == 0 ? Direction::to_server : Direction::to_agent;
                if (armed_ && dir_ == dir) {
                    armed_ = false;
                    size_t at = chunk.size() / 2;
                    switch (what_) {
                        case Tamper::flip: chunk[at] = static_cast<char>(chunk[at] ^ 0x20); break;
                        case Tamper::drop: chunk.erase(at, std::min<size_t>(37, chunk.size() - at)); break;
                        case Tamper::inject: chunk.insert(at, std::string(53, '\x17')); break;
                    }
                    fired_ = true;
                }
            }
            if (!write_all(to, chunk.data(), chunk.size())) done = true;
        }
        if (done) break;
    }
    ::close(agent_fd);
    ::close(server_fd);
}

}  // namespace iz::test::e2e
