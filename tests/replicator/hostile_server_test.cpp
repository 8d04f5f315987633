// izreplicate against misbehaving clients at the connection level: wrong
// keys, reflected proofs, garbage, oversized headers, messages out of
// order, silence. Each costs only its own connection, with one log line;
// an honest client is served throughout.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <random>

#include <fmt/format.h>

#include "hostile_server_harness.hpp"
#include "replicator/wire/tls.hpp"

namespace iz::test {
namespace {

namespace proto = replicator::proto;
using proto::OpKind;
using proto::OpMsg;

std::string header_with(uint16_t type, uint32_t length) {
    std::string h;
    proto::FrameHeader fh;
    fh.type = static_cast<proto::MsgType>(type);
    fh.length = length;
    proto::put_header(fh, h);
    return h;
}

proto::Hello hello(const std::string& agent, const std::string& fileset, std::string nonce) {
    return proto::Hello{proto::kVersion, proto::kVersion, agent, fileset, std::move(nonce)};
}

TEST(HostileServer, HonestClientIsServedAndAcknowledged) {
    ServerHarness server;
    auto c = server.connect();
    auto w = c.handshake(server.key, "agent-a", "fs1");
    ASSERT_TRUE(w) << w.error().message;
    EXPECT_EQ(w->durable_lsn, 0u);
    EXPECT_EQ(w->resume_lsn, 0u);
    EXPECT_EQ(w->server_host, "testserver");
    ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 2, .kind = OpKind::content_begin, .path = "d/f",
                             .extents = {proto::make_extent(0, "hello ", false)}}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 2, .kind = OpKind::content_data, .path = "d/f",
                             .extents = {proto::make_extent(6, "world", false)}}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 2, .kind = OpKind::content_end, .path = "d/f", .mode = 0100640u, .size = 11}));
    ASSERT_TRUE(c.send(proto::Ping{77}));
    ASSERT_TRUE(c.send(proto::Commit{2}));
    auto pong = c.receive();
    ASSERT_TRUE(pong) << pong.error().message;
    EXPECT_EQ(std::get<proto::Pong>(*pong).id, 77u);
    auto ack = c.receive();
    ASSERT_TRUE(ack) << ack.error().message;
    ASSERT_TRUE(std::holds_alternative<proto::Ack>(*ack));
    EXPECT_EQ(std::get<proto::Ack>(*ack).lsn, 2u);
    // Acknowledged means there, and durable: a new connection resumes after it.
    EXPECT_EQ(read_file(server.fileset_root("fs1") / "d/f"), "hello world");
    WireClient again = server.connect();
    auto w2 = again.handshake(server.key, "agent-a", "fs1");
    ASSERT_TRUE(w2) << w2.error().message;
    EXPECT_EQ(w2->durable_lsn, 2u);
    EXPECT_EQ(w2->resume_lsn, 2u);
}

// A directory's mtime from the source shows on the replica without a
// commit: what a reader there sees does not wait for durability.
TEST(HostileServer, DirectoryMtimeShowsWithoutACommit) {
    ServerHarness server;
    auto c = server.connect();
    ASSERT_TRUE(c.handshake(server.key, "agent-a", "fs1"));
    constexpr int64_t kMtime = 1'600'000'000'123'456'789;
    ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 2, .kind = OpKind::create, .path = "d/a", .mode = 0100644u, .parent_mtime_ns = kMtime - 1}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 3, .kind = OpKind::create, .path = "d/b", .mode = 0100644u, .parent_mtime_ns = kMtime}));
    auto mtime = [&] {
        struct stat st{};
        if (::stat((server.fileset_root("fs1") / "d").c_str(), &st) != 0) return int64_t{0};
        return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    };
    EXPECT_TRUE(wait_until([&] { return mtime() == kMtime; })) << "mtime " << mtime();
}

TEST(HostileServer, SkippedContentDoesNotCostTheConnection) {
    // Content for a file whose directory is gone on the server: skipped as
    // a whole. Were its later parts refused, the connection would drop and
    // the agent would resend the same LSN on every reconnect.
    ServerHarness server;
    auto c = server.connect();
    ASSERT_TRUE(c.handshake(server.key, "agent-a", "fs1"));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::content_begin, .path = "gone/f",
                             .extents = {proto::make_extent(0, "part one ", false)}}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::content_data, .path = "gone/f",
                             .extents = {proto::make_extent(9, "part two", false)}}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::content_end, .path = "gone/f", .size = 17}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 2, .kind = OpKind::mkdir, .path = "here", .mode = 040755u}));
    ASSERT_TRUE(c.send(proto::Commit{2}));
    auto ack = c.receive();
    ASSERT_TRUE(ack) << ack.error().message;
    ASSERT_TRUE(std::holds_alternative<proto::Ack>(*ack)) << server.all_logs();
    EXPECT_EQ(std::get<proto::Ack>(*ack).lsn, 2u);
    EXPECT_TRUE(fs::is_directory(server.fileset_root("fs1") / "here"));
    EXPECT_FALSE(fs::exists(server.fileset_root("fs1") / "gone"));
}

TEST(HostileServer, BlockHashesOverTheWire) {
    ServerHarness server;
    auto c = server.connect();
    ASSERT_TRUE(c.handshake(server.key, "agent-a", "fs1"));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::content_begin, .path = "f",
                             .extents = {proto::make_extent(0, std::string(1000, 'x'))}}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::content_end, .path = "f", .size = 1000}));
    ASSERT_TRUE(c.send(proto::HashRequest{.id = 4, .path = "f"}));
    auto r = c.receive();
    ASSERT_TRUE(r) << r.error().message;
    auto& h = std::get<proto::HashReply>(*r);
    EXPECT_EQ(h.id, 4u);
    EXPECT_TRUE(h.exists);
    EXPECT_EQ(h.size, 1000u);
    EXPECT_EQ(h.hashes.size(), 16u);
}

TEST(HostileServer, WrongKeyIsRefusedAndLogged) {
    ServerHarness server;
    replicator::SharedKey wrong{std::string(replicator::kKeyBytes, '\x01')};
    // With the wrong key, not even TLS comes up, and the server says why.
    {
        auto c = WireClient::connect(server.port(), wrong);
        ASSERT_FALSE(c);
        EXPECT_TRUE(server.eventually_logged(fmt::format("TLS refused: the client offered shared key '{}', which this "
                                                         "server does not hold",
                                                         replicator::psk_identity(wrong))))
            << server.all_logs();
    }
    // Inside TLS (with the right key), a client that presses on with a
    // proof made from another key.
    auto c = server.connect();
    std::string nonce(proto::kNonceBytes, 'n');
    ASSERT_TRUE(c.send(hello("agent-a", "fs1", nonce)));
    auto ch = c.receive();
    ASSERT_TRUE(ch) << ch.error().message;
    auto& challenge = std::get<proto::Challenge>(*ch);
    EXPECT_EQ(challenge.server_nonce.size(), proto::kNonceBytes);
    auto proof = replicator::auth_proof(wrong, replicator::ProofRole::client, nonce, challenge.server_nonce, "agent-a", "fs1");
    ASSERT_TRUE(c.send(proto::Auth{proof}));
    auto reply = c.receive();
    ASSERT_TRUE(reply) << reply.error().message;
    ASSERT_TRUE(std::holds_alternative<proto::ErrorMsg>(*reply));
    EXPECT_NE(std::get<proto::ErrorMsg>(*reply).message.find("authentication failed"), std::string::npos);
    EXPECT_TRUE(c.wait_closed(5s));
    EXPECT_TRUE(server.eventually_logged("authentication failed (wrong key)")) << server.all_logs();
    // No fileset was opened for it.
    EXPECT_FALSE(fs::exists(server.fileset_root("fs1")));
}

TEST(HostileServer, ReflectedOrEmptyProofRefused) {
    ServerHarness server;
    for (int variant = 0; variant < 3; ++variant) {
        auto c = server.connect();
        std::string nonce(proto::kNonceBytes, static_cast<char>('a' + variant));
        ASSERT_TRUE(c.send(hello("agent-a", "fs1", nonce)));
        auto ch = c.receive();
        ASSERT_TRUE(ch);
        auto& challenge = std::get<proto::Challenge>(*ch);
        std::string proof = variant == 0   ? challenge.server_proof  // the server's own proof sent back
                            : variant == 1 ? std::string()
                                           : std::string(proto::kProofBytes, '\0');
        ASSERT_TRUE(c.send(proto::Auth{proof}));
        std::string why;
        EXPECT_TRUE(c.wait_closed(5s, &why)) << variant;
        EXPECT_NE(why.find("authentication failed"), std::string::npos) << variant << ": " << why;
    }
}

TEST(HostileServer, GarbageBytesDropTheConnection) {
    ServerHarness server;
    std::mt19937_64 rng(99);
    for (int i = 0; i < 5; ++i) {
        auto c = server.connect();
        std::string junk(2000, '\0');
        for (auto& ch : junk) ch = static_cast<char>(rng());
        c.send_raw(junk);  // may fail half-way once the server has closed
        EXPECT_TRUE(c.wait_closed(5s)) << i;
    }
    // Plain text, as from a confused HTTP client.
    auto c = server.connect();
    c.send_raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string why;
    EXPECT_TRUE(c.wait_closed(5s, &why));
    EXPECT_NE(why.find("bad frame"), std::string::npos) << why;
    EXPECT_TRUE(server.eventually_logged("bad frame: bad frame magic")) << server.all_logs();
    EXPECT_EQ(listing(server.root()), ".intermezzo\n");
}

TEST(HostileServer, HeaderOverTheLimitDropsTheConnection) {
    ServerHarness server;
    // Before authentication: over the frame limit, and over the much
    // smaller handshake limit.
    for (uint32_t len : {proto::kMaxFrameBody + 1, 0xffffffffu, 5000u}) {
        auto c = server.connect();
        ASSERT_TRUE(c.send_raw(header_with(1, len)));
        std::string why;
        EXPECT_TRUE(c.wait_closed(5s, &why)) << len;
        EXPECT_FALSE(why.empty()) << len;
    }
    // After authentication.
    auto c = server.connect();
    ASSERT_TRUE(c.handshake(server.key, "agent-a", "fs1"));
    ASSERT_TRUE(c.send_raw(header_with(6, proto::kMaxFrameBody + 1)));
    std::string why;
    EXPECT_TRUE(c.wait_closed(5s, &why));
    EXPECT_NE(why.find("exceeds"), std::string::npos) << why;
}

TEST(HostileServer, MalformedBodyAfterHandshakeDropsTheConnection) {
    ServerHarness server;
    auto c = server.connect();
    ASSERT_TRUE(c.handshake(server.key, "agent-a", "fs1"));
    std::string body = "\x01this is not an op";
    ASSERT_TRUE(c.send_raw(header_with(6, static_cast<uint32_t>(body.size())) + body));
    std::string why;
    EXPECT_TRUE(c.wait_closed(5s, &why));
    EXPECT_NE(why.find("malformed"), std::string::npos) << why;
}

TEST(HostileServer, MessagesOutOfOrderRefused) {
    ServerHarness server;
    // An op before any handshake.
    {
        auto c = server.connect();
        ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "x", .mode = 040777u}));
        std::string why;
        EXPECT_TRUE(c.wait_closed(5s, &why));
        EXPECT_NE(why.find("during the handshake"), std::string::npos) << why;
    }
    // Auth without Hello, Commit instead of Auth, a second Hello after it.
    {
        auto c = server.connect();
        ASSERT_TRUE(c.send(proto::Auth{std::string(32, 'a')}));
        EXPECT_TRUE(c.wait_closed(5s));
    }
    {
        auto c = server.connect();
        ASSERT_TRUE(c.send(hello("agent-a", "fs1", std::string(proto::kNonceBytes, 'n'))));
        ASSERT_TRUE(c.receive());
        ASSERT_TRUE(c.send(proto::Commit{5}));
        EXPECT_TRUE(c.wait_closed(5s));
    }
    {
        auto c = server.connect();
        ASSERT_TRUE(c.handshake(server.key, "agent-a", "fs1"));
        ASSERT_TRUE(c.send(hello("agent-a", "fs1", std::string(proto::kNonceBytes, 'n'))));
        std::string why;
        EXPECT_TRUE(c.wait_closed(5s, &why));
        EXPECT_NE(why.find("after the handshake"), std::string::npos) << why;
    }
    // Server-to-client messages from a client.
    {
        auto c = server.connect();
        ASSERT_TRUE(c.handshake(server.key, "agent-a", "fs1"));
        ASSERT_TRUE(c.send(proto::Ack{1}));
        EXPECT_TRUE(c.wait_closed(5s));
    }
    EXPECT_FALSE(fs::exists(server.fileset_root("fs1") / "x"));
}

TEST(HostileServer, BadHelloRefused) {
    ServerHarness server;
    std::string nonce(proto::kNonceBytes, 'n');
    std::vector<proto::Hello> bad = {
        hello("../evil", "fs1", nonce),
        hello("agent-a", "..", nonce),
        hello("agent-a", "/etc", nonce),
        hello("agent-a", ".intermezzo", nonce),
        hello("", "fs1", nonce),
        hello("agent-a", "fs1", "short"),
        proto::Hello{proto::kVersion + 1, proto::kVersion + 5, "agent-a", "fs1", nonce},
    };
    for (auto& h : bad) {
        auto c = server.connect();
        ASSERT_TRUE(c.send(h));
        std::string why;
        EXPECT_TRUE(c.wait_closed(5s, &why)) << h.agent_id << "/" << h.fileset;
        EXPECT_FALSE(why.empty());
    }
    EXPECT_EQ(listing(server.root()), ".intermezzo\n");
    EXPECT_FALSE(fs::exists(server.base() / "evil"));
}

TEST(HostileServer, SilentAndSlowClientsDroppedAfterTheHandshakeTimeout) {
    ServerHarness server([](replicator::ServerOptions& o) { o.handshake_timeout = std::chrono::milliseconds(1200); });
    auto silent = server.connect();
    auto slow = server.connect();
    ASSERT_TRUE(slow.send_raw(header_with(1, 100).substr(0, 5)));  // half a header, then nothing
    EXPECT_TRUE(silent.wait_closed(6s));
    EXPECT_TRUE(slow.wait_closed(6s));
    EXPECT_TRUE(server.eventually_logged("no complete handshake in time"));
}

TEST(HostileServer, NewerConnectionTakesOverTheFileset) {
    ServerHarness server;
    auto old_conn = server.connect();
    ASSERT_TRUE(old_conn.handshake(server.key, "agent-a", "fs1"));
    auto new_conn = server.connect();
    ASSERT_TRUE(new_conn.handshake(server.key, "agent-a", "fs1"));
    EXPECT_TRUE(old_conn.wait_closed(5s));
    ASSERT_TRUE(new_conn.send(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u}));
    ASSERT_TRUE(new_conn.send(proto::Commit{1}));
    auto ack = new_conn.receive();
    ASSERT_TRUE(ack) << ack.error().message << "\n" << server.all_logs();
    EXPECT_EQ(std::get<proto::Ack>(*ack).lsn, 1u);
}

}  // namespace
}  // namespace iz::test
