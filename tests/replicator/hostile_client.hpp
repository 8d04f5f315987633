#pragma once
// A bare client for the replication protocol, for tests: it can speak the
// protocol honestly (TLS with the real context, the real handshake and auth
// functions) or send whatever bytes a test wants, inside TLS or, for a
// peer from before TLS, in the clear.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <openssl/ssl.h>

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

    // Connects to 127.0.0.1:port and makes a TLS session with `key` (the
    // client context the agent uses).
    static Result<WireClient> connect(uint16_t port, const replicator::SharedKey& key);
    // The same with any client context (e.g. a certificate and a pin).
    // A refusal's error says why, as the agent would.
    static Result<WireClient> connect_tls(uint16_t port, std::shared_ptr<void> context, SSL_CTX* ctx);
    // Connects to 127.0.0.1:port and speaks in the clear.
    static Result<WireClient> connect_plain(uint16_t port);

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
    // The same offering protocol versions min..max; `chosen` gets the
    // version the challenge named.
    Result<replicator::proto::Welcome> handshake(const replicator::SharedKey& key, const std::string& agent,
                                                 const std::string& fileset, uint16_t min_version,
                                                 uint16_t max_version, uint16_t* chosen = nullptr);

    int fd() const { return fd_; }
    SSL* ssl() const { return ssl_; }

private:
    explicit WireClient(int fd) : fd_(fd) {}
    Result<std::string> read_exact(size_t n, std::chrono::steady_clock::time_point deadline);
    // Up to `n` bytes into `out`: >0 read, 0 end of stream, -1 would block,
    // -2 error.
    ssize_t read_some(char* out, size_t n);
    int fd_ = -1;
    SSL* ssl_ = nullptr;  // null in the clear
    std::shared_ptr<void> ctx_;  // keeps the TLS context alive
};

}  // namespace iz::test
