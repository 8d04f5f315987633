// Peers that do not pass the TLS layer: a plaintext peer from before TLS, a
// client offering only TLS 1.2, a TLS 1.3 client without the key, a client
// with another key. Each is refused with its own log line, nothing of it is
// applied, and an honest client is served right after. A server holding an
// old and a new key takes either.
#include <gtest/gtest.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <fmt/format.h>

#include "hostile_server_harness.hpp"
#include "replicator/wire/tls.hpp"

namespace iz::test {
namespace {

namespace proto = replicator::proto;

// Whether an honest client still gets through (and is welcomed).
void expect_honest_client_served(const ServerHarness& server) {
    auto c = server.connect();
    auto w = c.handshake(server.key, "agent-ok", "fs1");
    EXPECT_TRUE(w) << (w ? "" : w.error().message) << "\n" << server.all_logs();
}

// A TLS client made with OpenSSL alone, with the versions given and no key:
// the handshake's outcome (true: it completed).
bool bare_tls_client(uint16_t port, int min_version, int max_version) {
    auto plain = WireClient::connect_plain(port);
    if (!plain) return false;
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, min_version);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    // TLS 1.2 needs the old security level to offer anything at all here.
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, plain->fd());
    timeval tv{5, 0};
    ::setsockopt(plain->fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ERR_clear_error();
    bool ok = SSL_connect(ssl) == 1;
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return ok;
}

TEST(HostileTls, APlaintextPeerFromBeforeTlsIsToldWhyInTheClear) {
    ServerHarness server;
    auto c = server.connect_plain();
    std::string nonce(proto::kNonceBytes, 'n');
    ASSERT_TRUE(c.send(proto::Hello{proto::kVersion, proto::kVersion, "agent-a", "fs1", nonce}));
    auto reply = c.receive();
    ASSERT_TRUE(reply) << reply.error().message;
    auto* err = std::get_if<proto::ErrorMsg>(&*reply);
    ASSERT_TRUE(err);
    EXPECT_NE(err->message.find("accepts TLS 1.3 connections only"), std::string::npos) << err->message;
    EXPECT_TRUE(c.wait_closed(5s));
    EXPECT_TRUE(server.eventually_logged("the peer spoke without TLS")) << server.all_logs();
    EXPECT_FALSE(fs::exists(server.fileset_root("fs1")));
    expect_honest_client_served(server);
}

TEST(HostileTls, AClientOfferingOnlyTls12IsRefused) {
    ServerHarness server;
    EXPECT_FALSE(bare_tls_client(server.port(), TLS1_VERSION, TLS1_2_VERSION));
    EXPECT_TRUE(server.eventually_logged("TLS refused: the peer does not speak TLS 1.3")) << server.all_logs();
    expect_honest_client_served(server);
}

TEST(HostileTls, ATls13ClientWithoutTheKeyIsRefused) {
    ServerHarness server;
    EXPECT_FALSE(bare_tls_client(server.port(), TLS1_3_VERSION, TLS1_3_VERSION));
    EXPECT_TRUE(server.eventually_logged("TLS refused: the client offered no shared key")) << server.all_logs();
    expect_honest_client_served(server);
}

TEST(HostileTls, AClientWithAnotherKeyIsRefusedByItsKeysName) {
    ServerHarness server;
    replicator::SharedKey other{std::string(replicator::kKeyBytes, '\x07')};
    auto c = WireClient::connect(server.port(), other);
    EXPECT_FALSE(c);
    EXPECT_TRUE(server.eventually_logged(fmt::format("the client offered shared key '{}', which this server does not hold",
                                                     replicator::psk_identity(other))))
        << server.all_logs();
    EXPECT_FALSE(fs::exists(server.fileset_root("fs1")));
    expect_honest_client_served(server);
}

// Rotation: the server holds the old key and the new one; agents on either
// are served (the proofs inside TLS made with the key TLS matched), one on
// a third key is not.
TEST(HostileTls, AServerHoldingTwoKeysServesAgentsOnEither) {
    replicator::SharedKey fresh{std::string(replicator::kKeyBytes, '\x33')};
    ServerHarness server([&](replicator::ServerOptions& o) { o.other_keys.push_back(fresh); });
    {
        auto c = WireClient::connect(server.port(), fresh);
        ASSERT_TRUE(c) << c.error().message << "\n" << server.all_logs();
        auto w = c->handshake(fresh, "agent-new", "fs1");
        EXPECT_TRUE(w) << (w ? "" : w.error().message) << "\n" << server.all_logs();
    }
    {
        auto c = server.connect();
        auto w = c.handshake(server.key, "agent-old", "fs1");
        EXPECT_TRUE(w) << (w ? "" : w.error().message) << "\n" << server.all_logs();
    }
    EXPECT_TRUE(server.eventually_logged(fmt::format("shared key '{}'", replicator::psk_identity(fresh))));
    EXPECT_TRUE(server.eventually_logged(fmt::format("shared key '{}'", replicator::psk_identity(server.key))));
    replicator::SharedKey third{std::string(replicator::kKeyBytes, '\x44')};
    EXPECT_FALSE(WireClient::connect(server.port(), third));
}

// The session says which key, TLS version and cipher it runs on.
TEST(HostileTls, TheServerLogsTheKeyVersionAndCipherOfASession) {
    ServerHarness server;
    expect_honest_client_served(server);
    EXPECT_TRUE(server.eventually_logged(fmt::format("authenticated by shared key '{}' over TLSv1.3 TLS_AES_128_GCM_SHA256",
                                                     replicator::psk_identity(server.key))))
        << server.all_logs();
}

}  // namespace
}  // namespace iz::test
