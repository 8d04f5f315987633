#pragma once
// A bare client for the replication protocol, for tests: it can speak the
// protocol honestly (the real handshake, with the real auth functions) or
// send whatever bytes a test wants.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "replicator/wire/auth.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::test {

using namespace std::chrono_literals;

class WireClient {
public:
    WireClient() = default;
    ~WireClient();
    WireClient(WireClient&& o) noexcept;
    WireClient& operator=(WireClient&&) = delete;

    // Connects to 127.0.0.1:port.
    static Result<WireClient> connect(uint16_t port);

    // False when the peer has gone (EPIPE, ECONNRESET).
    bool send_raw(std::string_view bytes);
    bool send(const replicator::proto::Message& m);

    // The next frame; an Error "closed" at end of stream, "timeout" when
    // nothing complete came in time, or the decoding error.
    Result<replicator::proto::Message> receive(std::chrono::milliseconds timeout = 5s);

    // Reads until the server closes the connection. Returns true if it did
    // within `timeout`; `error_text` gets the message of any Error frame
    // seen on the way.
    bool wait_closed(std::chrono::milliseconds timeout, std::string* error_text = nullptr);

    // Hello -> Challenge (the server's proof checked) -> Auth -> Welcome.
    Result<replicator::proto::Welcome> handshake(const replicator::SharedKey& key, const std::string& agent,
                                                 const std::string& fileset);

    int fd() const { return fd_; }

private:
    explicit WireClient(int fd) : fd_(fd) {}
    Result<std::string> read_exact(size_t n, std::chrono::steady_clock::time_point deadline);
    int fd_ = -1;
};

}  // namespace iz::test
