#pragma once
// A man in the middle for the end-to-end tests: a TCP relay inside a
// network namespace that forwards every connection to a server, records
// every byte both ways (what a capture on the wire would hold), and on
// request changes the next bytes that pass in one direction: a byte
// flipped, bytes dropped, bytes injected.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/netns.hpp"

namespace iz::test::e2e {

enum class Tamper { flip, drop, inject };
enum class Direction { to_server, to_agent };

class Relay {
public:
    // Listens on 127.0.0.1 (a free port) inside `ns`, forwarding to host:port.
    Relay(const Netns& ns, std::string host, uint16_t port);
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    std::string endpoint() const;
    // The next chunk that passes in `dir` on any connection is tampered
    // with, once.
    void arm(Tamper what, Direction dir);
    // Whether the armed fault has been applied.
    bool fired() const { return fired_.load(); }
    // Every byte relayed so far, both directions.
    std::string recorded() const;
    int connections() const { return connections_.load(); }

private:
    void accept_loop(std::string netns_path);
    void pump(int agent_fd, int server_fd);

    std::string host_;
    uint16_t upstream_port_;
    std::atomic<uint16_t> port_{0};
    int stop_pipe_[2] = {-1, -1};
    std::thread acceptor_;
    std::vector<std::thread> pumps_;
    std::mutex mu_;
    std::string recorded_;
    bool armed_ = false;
    Tamper what_ = Tamper::flip;
    Direction dir_ = Direction::to_server;
    std::atomic<bool> fired_{false};
    std::atomic<int> connections_{0};
    std::string error_;
};

}  // namespace iz::test::e2e
