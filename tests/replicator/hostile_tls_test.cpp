// Peers that do not pass the TLS layer: a plaintext peer from before TLS, a
// client offering only TLS 1.2, a TLS 1.3 client without the key, a client
// with another key. Each is refused with its own log line, nothing of it is
// applied, and an honest client is served right after. A server holding an
// old and a new key takes either.
#include <gtest/gtest.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <fmt/format.h>

#include <sstream>

#include "hostile_server_harness.hpp"
#include "access.hpp"
#include "allowed_agents.hpp"
#include "replicator/wire/identity.hpp"
#include "replicator/wire/tls.hpp"

namespace iz::test {
namespace {

namespace proto = replicator::proto;

// Whether an honest client still gets through (and is welcomed).
void expect_honest_client_served(const ServerHarness& server) {
    auto r = WireClient::connect(server.port(), server.key);
    ASSERT_TRUE(r) << r.error().message << "\n" << server.all_logs();
    auto& c = *r;
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

namespace iz::test {
namespace {

namespace repl = replicator;

// A server with its own identity, allowing the agents named in a file.
class CertificateTls : public ::testing::Test {
protected:
    CertificateTls() {
        server_id = must(repl::new_identity(ids / "server", "server"));
        agent_id = must(repl::new_identity(ids / "agent", "agent"));
        allow({agent_id});
    }

    static repl::NodeIdentity must(Result<repl::NodeIdentity> r) {
        if (!r) throw std::runtime_error(r.error().message);
        return std::move(*r);
    }

    // Writes the allowed agents file: each identity's node ID, with a name
    // where one is given.
    void allow(const std::vector<repl::NodeIdentity>& agents, const std::vector<std::string>& names = {}) {
        std::string text = "# allowed\n";
        for (size_t i = 0; i < agents.size(); ++i)
            text += repl::format_node_id(agents[i].fingerprint) + (i < names.size() ? " " + names[i] : "") + "\n";
        write_file(ids / "allowed", text);
    }

    std::unique_ptr<ServerHarness> start_server() {
        return std::make_unique<ServerHarness>([&](repl::ServerOptions& o) {
            o.identity = server_id;
            o.allowed_agents_file = ids / "allowed";
            auto allowed = repl::read_allowed_agents(o.allowed_agents_file);
            if (!allowed) throw std::runtime_error(allowed.error().message);
            o.allowed_agents = std::make_shared<repl::PeerPins>(std::move(*allowed));
        });
    }

    // Connects showing `who`'s certificate and pinning `pinned` (default:
    // the server's).
    Result<WireClient> connect_as(const ServerHarness& server, const repl::NodeIdentity& who,
                                  const repl::NodeIdentity* pinned = nullptr) {
        auto pins = std::make_shared<repl::PeerPins>(
            std::map<std::string, std::string>{{(pinned ? *pinned : server_id).fingerprint, ""}});
        auto ctx = repl::make_tls_context(repl::TlsRole::client, repl::TlsSettings{{}, who, pins});
        if (!ctx) return fail(ctx.error());
        return WireClient::connect_tls(server.port(), *ctx, (*ctx)->native_handle());
    }

    // The protocol's handshake inside a certificate session: the proofs
    // are keyed by the TLS exporter.
    Result<proto::Welcome> handshake(WireClient& c, const std::string& agent, const std::string& fileset) {
        auto key = repl::exported_proof_key(c.ssl());
        if (!key) return fail(key.error());
        return c.handshake(*key, agent, fileset);
    }

    TempDir ids{"tls-ids"};
    repl::NodeIdentity server_id, agent_id;
};

TEST_F(CertificateTls, AnAllowedAgentIsServedAndTheLogNamesItsNodeId) {
    auto server = start_server();
    auto c = connect_as(*server, agent_id);
    ASSERT_TRUE(c) << c.error().message << "\n" << server->all_logs();
    auto w = handshake(*c, "agent-a", "fs1");
    ASSERT_TRUE(w) << w.error().message << "\n" << server->all_logs();
    EXPECT_TRUE(server->eventually_logged(fmt::format("authenticated by certificate {} over TLSv1.3",
                                                      repl::format_node_id(agent_id.fingerprint))))
        << server->all_logs();
    // The shared key still works beside certificates.
    expect_honest_client_served(*server);
}

TEST_F(CertificateTls, AnUnknownCertificateIsRefusedByItsNodeId) {
    auto stranger = must(repl::new_identity(ids / "stranger", "stranger"));
    auto server = start_server();
    auto c = connect_as(*server, stranger);
    // TLS 1.3: the client is done before the server has checked it.
    if (c) {
        EXPECT_FALSE(handshake(*c, "agent-a", "fs1"));
    }
    EXPECT_TRUE(server->eventually_logged(fmt::format("the agent's certificate {} is not among the allowed agents",
                                                      repl::format_node_id(stranger.fingerprint))))
        << server->all_logs();
    EXPECT_FALSE(fs::exists(server->fileset_root("fs1")));
    expect_honest_client_served(*server);
}

TEST_F(CertificateTls, AnExpiredOrNotYetValidCertificateIsRefusedSayingSo) {
    using namespace std::chrono;
    auto expired = must(repl::new_identity(ids / "expired", "old", {-hours(48), -hours(24)}));
    auto future = must(repl::new_identity(ids / "future", "new", {hours(24), hours(48)}));
    allow({agent_id, expired, future});
    auto server = start_server();
    for (auto* who : {&expired, &future}) {
        auto c = connect_as(*server, *who);
        if (c) {
            EXPECT_FALSE(handshake(*c, "agent-a", "fs1"));
        }
    }
    EXPECT_TRUE(server->eventually_logged(
        fmt::format("the agent's certificate {} expired on", repl::format_node_id(expired.fingerprint))))
        << server->all_logs();
    EXPECT_TRUE(server->eventually_logged(
        fmt::format("the agent's certificate {} is not valid before", repl::format_node_id(future.fingerprint))))
        << server->all_logs();
    EXPECT_FALSE(fs::exists(server->fileset_root("fs1")));
    auto c = connect_as(*server, agent_id);
    ASSERT_TRUE(c);
    EXPECT_TRUE(handshake(*c, "agent-a", "fs1"));
}

TEST_F(CertificateTls, TheAgentRefusesAServerThatIsNotTheOnePinned) {
    auto other = must(repl::new_identity(ids / "other", "other"));
    auto server = start_server();
    auto c = connect_as(*server, agent_id, &other);
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find(fmt::format("the server's certificate is {}, not the one pinned for it",
                                                 repl::format_node_id(server_id.fingerprint))),
              std::string::npos)
        << c.error().message;
}

TEST_F(CertificateTls, ACertificateBoundToAnAgentIdCannotUseAnother) {
    allow({agent_id}, {"agent-a"});
    auto server = start_server();
    {
        auto c = connect_as(*server, agent_id);
        ASSERT_TRUE(c);
        EXPECT_FALSE(handshake(*c, "agent-b", "fs1"));
    }
    EXPECT_TRUE(server->eventually_logged("agent id 'agent-b' is not the name its certificate")) << server->all_logs();
    auto c = connect_as(*server, agent_id);
    ASSERT_TRUE(c);
    EXPECT_TRUE(handshake(*c, "agent-a", "fs1"));
}

// SIGHUP: the file is read again; a session whose certificate is no longer
// allowed is dropped, one still allowed goes on undisturbed.
TEST_F(CertificateTls, AReloadDropsOnlyTheSessionsNoLongerAllowed) {
    auto second = must(repl::new_identity(ids / "second", "second"));
    allow({agent_id, second});
    auto server = start_server();
    auto kept = connect_as(*server, agent_id);
    auto gone = connect_as(*server, second);
    ASSERT_TRUE(kept && gone);
    ASSERT_TRUE(handshake(*kept, "agent-a", "fs1"));
    ASSERT_TRUE(handshake(*gone, "agent-b", "fs1"));
    allow({agent_id});
    server->reload();
    std::string why;
    EXPECT_TRUE(gone->wait_closed(5s, &why));
    EXPECT_NE(why.find("no longer among the allowed agents"), std::string::npos) << why;
    ASSERT_TRUE(kept->send(proto::Ping{7}));
    auto pong = kept->receive();
    ASSERT_TRUE(pong) << pong.error().message << "\n" << server->all_logs();
    EXPECT_EQ(std::get<proto::Pong>(*pong).id, 7u);
    // And the one dropped cannot come back.
    auto again = connect_as(*server, second);
    if (again) {
        EXPECT_FALSE(handshake(*again, "agent-b", "fs1"));
    }
}

TEST(AllowedAgents, AFileWithAMistakeIsRefusedNamingTheLine) {
    TempDir dir("allowed");
    write_file(dir / "a", "# ok\n\nMFRG-GZDF\n");
    auto r = replicator::read_allowed_agents(dir / "a");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find(":3: node ID"), std::string::npos) << r.error().message;
    auto id = replicator::format_node_id(std::string(32, '\x11'));
    write_file(dir / "b", id + " bad/name\n");
    r = replicator::read_allowed_agents(dir / "b");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find(":1: invalid agent id 'bad/name'"), std::string::npos) << r.error().message;
    write_file(dir / "c", id + " agent-a # a comment\n" + replicator::format_node_id(std::string(32, '\x22')) + "\n");
    r = replicator::read_allowed_agents(dir / "c");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->size(), 2u);
    EXPECT_EQ(r->at(std::string(32, '\x11')), "agent-a");
    EXPECT_EQ(r->at(std::string(32, '\x22')), "");
}

}  // namespace
}  // namespace iz::test

namespace iz::test {
namespace {

namespace repl = replicator;
using proto::OpKind;
using proto::OpMsg;

// Per fileset and per agent: read-write, send-only, receive-only, none.
class AccessRules : public ::testing::Test {
protected:
    std::unique_ptr<ServerHarness> start_server(const std::string& rules) {
        write_file(dir / "access.conf", rules);
        return std::make_unique<ServerHarness>([&](repl::ServerOptions& o) { o.access_file = dir / "access.conf"; });
    }

    // The rules for the harness's key.
    static std::string key_rules(const std::string& body) {
        repl::SharedKey k{std::string(repl::kKeyBytes, '\x5c')};  // the harness's key
        std::string who = "key:" + repl::psk_identity(k);
        std::string out = "# test rules\n";
        std::istringstream lines(body);
        for (std::string line; std::getline(lines, line);) out += who + " " + line + "\n";
        return out;
    }

    static Result<proto::Message> ack_of_a_mkdir(WireClient& c, uint64_t lsn, const std::string& name) {
        if (!c.send(OpMsg{.lsn = lsn, .kind = OpKind::mkdir, .path = name, .mode = 040755u}) || !c.send(proto::Commit{lsn}))
            return fail(make_error("cannot send"));
        return c.receive();
    }

    static Result<proto::Message> tree_of_root(WireClient& c) {
        proto::TreeRequest t;
        t.id = 9;
        t.fresh = true;
        if (!c.send(t)) return fail(make_error("cannot send"));
        return c.receive(10s);
    }

    TempDir dir{"access"};
};

TEST_F(AccessRules, AFilesetTheAgentMayNotUseIsRefusedOnceNamingItAndNothingIsApplied) {
    auto server = start_server(key_rules("fs-rw read-write\nfs-off none"));
    for (auto* fileset : {"fs-off", "fs-unlisted"}) {
        auto c = server->connect();
        auto w = c.handshake(server->key, "agent-a", fileset);
        ASSERT_FALSE(w) << fileset;
        EXPECT_NE(w.error().message.find(fmt::format("may not use fileset '{}' on this server", fileset)), std::string::npos)
            << w.error().message;
        EXPECT_FALSE(fs::exists(server->fileset_root(fileset))) << fileset;
    }
    auto c = server->connect();
    ASSERT_TRUE(c.handshake(server->key, "agent-a", "fs-rw"));
    auto ack = ack_of_a_mkdir(c, 1, "d");
    ASSERT_TRUE(ack) << ack.error().message << server->all_logs();
    EXPECT_EQ(std::get<proto::Ack>(*ack).lsn, 1u);
    EXPECT_TRUE(fs::is_directory(server->fileset_root("fs-rw") / "d"));
    auto tree = tree_of_root(c);
    ASSERT_TRUE(tree) << tree.error().message;
    EXPECT_EQ(std::get<proto::TreeReply>(*tree).error, "");
}

TEST_F(AccessRules, SendOnlyAppliesButAnswersNoVerification) {
    auto server = start_server(key_rules("fs1 send-only"));
    auto c = server->connect();
    ASSERT_TRUE(c.handshake(server->key, "agent-a", "fs1"));
    auto ack = ack_of_a_mkdir(c, 1, "d");
    ASSERT_TRUE(ack) << ack.error().message << server->all_logs();
    EXPECT_EQ(std::get<proto::Ack>(*ack).lsn, 1u);
    EXPECT_TRUE(fs::is_directory(server->fileset_root("fs1") / "d"));
    auto tree = tree_of_root(c);
    ASSERT_TRUE(tree) << tree.error().message;
    auto& reply = std::get<proto::TreeReply>(*tree);
    EXPECT_NE(reply.error.find("fileset 'fs1' is send-only"), std::string::npos) << reply.error;
    EXPECT_FALSE(reply.found);
    EXPECT_TRUE(reply.children.empty());
}

TEST_F(AccessRules, ReceiveOnlyAnswersVerificationButAppliesNothing) {
    auto server = start_server(key_rules("fs1 receive-only"));
    auto c = server->connect();
    ASSERT_TRUE(c.handshake(server->key, "agent-a", "fs1"));
    auto tree = tree_of_root(c);
    ASSERT_TRUE(tree) << tree.error().message;
    EXPECT_EQ(std::get<proto::TreeReply>(*tree).error, "");
    // Each record it sends is refused, told once (a file's parts share an
    // LSN), and the connection goes on: what the server forwards to it
    // keeps coming.
    ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 2, .kind = OpKind::content_begin, .path = "f", .mode = 0100644u, .more = true}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 2, .kind = OpKind::content_end, .path = "f"}));
    ASSERT_TRUE(c.send(proto::Commit{2}));
    for (uint64_t lsn : {1, 2}) {
        auto m = c.receive();
        ASSERT_TRUE(m) << m.error().message << server->all_logs();
        auto* r = std::get_if<proto::RejectedMsg>(&*m);
        ASSERT_NE(r, nullptr) << proto::msg_type_name(proto::type_of(*m));
        EXPECT_EQ(r->lsn, lsn);
        EXPECT_EQ(r->path, lsn == 1 ? "d" : "f");
        EXPECT_NE(r->message.find("fileset 'fs1' is receive-only"), std::string::npos) << r->message;
    }
    auto ack = c.receive();
    ASSERT_TRUE(ack) << ack.error().message << server->all_logs();
    ASSERT_TRUE(std::holds_alternative<proto::Ack>(*ack)) << proto::msg_type_name(proto::type_of(*ack));
    EXPECT_EQ(std::get<proto::Ack>(*ack).lsn, 2u);
    EXPECT_FALSE(fs::exists(server->fileset_root("fs1") / "d"));
    EXPECT_FALSE(fs::exists(server->fileset_root("fs1") / "f"));
    ASSERT_TRUE(c.send(proto::Ping{5}));
    auto pong = c.receive();
    ASSERT_TRUE(pong) << pong.error().message << server->all_logs();
    EXPECT_EQ(std::get<proto::Pong>(*pong).id, 5u);
}

// SIGHUP reads the rules again: a session still allowed goes on, one no
// longer allowed is dropped naming its fileset.
TEST_F(AccessRules, AReloadKeepsTheSessionsStillAllowedAndDropsTheOthers) {
    auto server = start_server(key_rules("fs-a read-write\nfs-b read-write"));
    auto a = server->connect();
    auto b = server->connect();
    ASSERT_TRUE(a.handshake(server->key, "agent-a", "fs-a"));
    ASSERT_TRUE(b.handshake(server->key, "agent-b", "fs-b"));
    write_file(dir / "access.conf", key_rules("fs-a read-write\nfs-b none"));
    server->reload();
    std::string why;
    EXPECT_TRUE(b.wait_closed(5s, &why));
    EXPECT_NE(why.find("may no longer use fileset 'fs-b'"), std::string::npos) << why;
    auto ack = ack_of_a_mkdir(a, 1, "still");
    ASSERT_TRUE(ack) << ack.error().message << server->all_logs();
    EXPECT_EQ(std::get<proto::Ack>(*ack).lsn, 1u);
}

// A subscriber whose fileset a reload makes send-only gets no more
// forwards: subscribe_refused naming the fileset comes on its connection,
// which stays and goes on applying what it sends (it was dropped, and the
// agent reconnected into the same refusal).
TEST_F(AccessRules, AReloadThatMakesASubscriberSendOnlyEndsItsForwards) {
    auto server = start_server(key_rules("fs1 read-write"));
    auto c = server->connect();
    ASSERT_TRUE(c.handshake(server->key, "agent-a", "fs1"));
    ASSERT_TRUE(c.send(proto::Subscribe{0}));
    ASSERT_TRUE(c.send(proto::Ping{3}));
    auto pong = c.receive();
    ASSERT_TRUE(pong) << pong.error().message << server->all_logs();
    ASSERT_TRUE(std::holds_alternative<proto::Pong>(*pong));
    write_file(dir / "access.conf", key_rules("fs1 send-only"));
    server->reload();
    auto no = c.receive(5s);
    ASSERT_TRUE(no) << no.error().message << server->all_logs();
    auto* refused = std::get_if<proto::SubscribeRefused>(&*no);
    ASSERT_TRUE(refused) << proto::msg_type_name(proto::type_of(*no));
    EXPECT_EQ(refused->fileset, "fs1");
    EXPECT_NE(refused->message.find("fileset 'fs1' is now send-only"), std::string::npos) << refused->message;
    EXPECT_NE(refused->message.find("nothing is forwarded to it"), std::string::npos) << refused->message;
    // The connection stays: what follows is applied and answered.
    auto ack = ack_of_a_mkdir(c, 1, "sent-after-the-refusal");
    ASSERT_TRUE(ack) << ack.error().message << server->all_logs();
    ASSERT_TRUE(std::holds_alternative<proto::Ack>(*ack)) << proto::msg_type_name(proto::type_of(*ack));
    EXPECT_EQ(std::get<proto::Ack>(*ack).lsn, 1u);
    EXPECT_TRUE(fs::is_directory(server->fileset_root("fs1") / "sent-after-the-refusal"));
    // A new connection's subscribe is refused the same way.
    auto again = server->connect();
    ASSERT_TRUE(again.handshake(server->key, "agent-a", "fs1"));
    ASSERT_TRUE(again.send(proto::Subscribe{0}));
    auto no2 = again.receive();
    ASSERT_TRUE(no2) << no2.error().message << server->all_logs();
    auto* refused2 = std::get_if<proto::SubscribeRefused>(&*no2);
    ASSERT_TRUE(refused2) << proto::msg_type_name(proto::type_of(*no2));
    EXPECT_NE(refused2->message.find("fileset 'fs1' is send-only"), std::string::npos) << refused2->message;
}

// A reload that makes the refused subscribers read-write again: a peer of
// version 6 gets subscribe_allowed on its connection and, subscribing again
// from its cursor, what another agent sent while it was refused; a peer of
// version 5 (which would end its connection at type 26) gets nothing new,
// its connection stays, and it receives at its next connection as before.
TEST_F(AccessRules, AReloadThatLiftsARefusalLetsAVersion6PeerSubscribeAgain) {
    auto server = start_server(key_rules("fs1 read-write"));
    auto a = server->connect();
    uint16_t chosen = 0;
    ASSERT_TRUE(a.handshake(server->key, "agent-a", "fs1", proto::kMinVersion, proto::kVersion, &chosen));
    EXPECT_EQ(chosen, proto::kResubscribeVersion);
    auto old = server->connect();
    ASSERT_TRUE(old.handshake(server->key, "agent-old", "fs1", 4, 5, &chosen));
    EXPECT_EQ(chosen, 5u);
    for (auto* c : {&a, &old}) ASSERT_TRUE(c->send(proto::Subscribe{0}));
    write_file(dir / "access.conf", key_rules("fs1 send-only"));
    server->reload();
    for (auto* c : {&a, &old}) {
        auto no = c->receive(5s);
        ASSERT_TRUE(no) << no.error().message << server->all_logs();
        ASSERT_TRUE(std::holds_alternative<proto::SubscribeRefused>(*no)) << proto::msg_type_name(proto::type_of(*no));
    }
    // Sent while they are refused (send-only still sends).
    auto b = server->connect();
    ASSERT_TRUE(b.handshake(server->key, "agent-b", "fs1"));
    auto ack = ack_of_a_mkdir(b, 1, "sent-while-refused");
    ASSERT_TRUE(ack && std::holds_alternative<proto::Ack>(*ack)) << server->all_logs();

    write_file(dir / "access.conf", key_rules("fs1 read-write"));
    server->reload();
    auto yes = a.receive(5s);
    ASSERT_TRUE(yes) << yes.error().message << server->all_logs();
    auto* allowed = std::get_if<proto::SubscribeAllowed>(&*yes);
    ASSERT_TRUE(allowed) << proto::msg_type_name(proto::type_of(*yes));
    EXPECT_EQ(allowed->fileset, "fs1");
    EXPECT_NE(allowed->message.find("fileset 'fs1' is read-write for"), std::string::npos) << allowed->message;
    ASSERT_TRUE(a.send(proto::Subscribe{0}));
    auto fw = a.receive(5s);
    ASSERT_TRUE(fw) << fw.error().message << server->all_logs();
    auto* forward = std::get_if<proto::Forward>(&*fw);
    ASSERT_TRUE(forward) << proto::msg_type_name(proto::type_of(*fw)) << server->all_logs();
    EXPECT_EQ(forward->op.path, "sent-while-refused");
    EXPECT_EQ(forward->origin, "agent-b");

    // The version 5 peer: nothing before the pong, and it still ships.
    ASSERT_TRUE(old.send(proto::Ping{7}));
    auto pong = old.receive(5s);
    ASSERT_TRUE(pong) << pong.error().message << server->all_logs();
    EXPECT_TRUE(std::holds_alternative<proto::Pong>(*pong)) << proto::msg_type_name(proto::type_of(*pong));
    auto old_ack = ack_of_a_mkdir(old, 1, "old-still-ships");
    ASSERT_TRUE(old_ack) << old_ack.error().message << server->all_logs();
    EXPECT_TRUE(std::holds_alternative<proto::Ack>(*old_ack)) << proto::msg_type_name(proto::type_of(*old_ack));
    EXPECT_TRUE(server->logged("an agent of protocol version 5 subscribes again only when it reconnects"))
        << server->all_logs();
}

TEST(AccessFile, AMistakeIsRefusedNamingTheLine) {
    TempDir dir("access");
    write_file(dir / "a", "# rules\n* fs1 read-write\n* fs2 write-only\n");
    auto r = replicator::AccessList::read(dir / "a");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find(":3: access 'write-only' is not one of"), std::string::npos) << r.error().message;
    write_file(dir / "b", "* fs1\n");
    r = replicator::AccessList::read(dir / "b");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find(":1: expected WHO FILESET ACCESS"), std::string::npos) << r.error().message;
    // The first matching rule decides; none matching means none.
    std::string fp(32, '\x42');
    write_file(dir / "c", replicator::format_node_id(fp) + " fs1 send-only\n* fs1 read-write\nkey:k * receive-only\n");
    r = replicator::AccessList::read(dir / "c");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->of(fp, "", "fs1"), replicator::Access::send_only);
    EXPECT_EQ(r->of("", "k", "fs1"), replicator::Access::read_write);
    EXPECT_EQ(r->of("", "k", "fs2"), replicator::Access::receive_only);
    EXPECT_EQ(r->of(fp, "", "fs2"), replicator::Access::none);
}

}  // namespace
}  // namespace iz::test
