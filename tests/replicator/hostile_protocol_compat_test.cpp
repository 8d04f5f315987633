// A fleet upgraded one machine at a time: agents of protocol version 4
// against a server of 5, an agent of 5 against a server that chooses 4, and
// peers whose range holds none of the server's versions.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "hostile_server_harness.hpp"
#include "hostile_shipper_options.hpp"
#include "journal/writer.hpp"
#include "replicator/ship/shipper.hpp"

namespace iz::test {
namespace {

namespace fs = std::filesystem;
namespace proto = replicator::proto;
using proto::OpKind;
using proto::OpMsg;

bool kept_rejection_type(const proto::Message& m) {
    auto t = static_cast<int>(proto::type_of(m));
    return t >= 22 && t <= 24;
}

// Every frame up to and including the ack of `lsn`; a frame of types 22-24
// fails the test.
Result<std::vector<proto::Message>> until_acked(WireClient& c, uint64_t lsn) {
    std::vector<proto::Message> got;
    for (;;) {
        auto m = c.receive(10s);
        if (!m) return fail(m.error());
        EXPECT_FALSE(kept_rejection_type(*m)) << "a version 4 peer got " << proto::msg_type_name(proto::type_of(*m));
        got.push_back(*m);
        if (auto* a = std::get_if<proto::Ack>(&*m); a && a->lsn >= lsn) return got;
    }
}

TEST(ProtocolCompat, AnAgentOfVersion4IsServedVersion4AndTheOldRejected) {
    ServerHarness server;
    fs::create_directories(server.fileset_root("fs1"));
    fs::create_directory_symlink(server.canary(), server.fileset_root("fs1") / "esc");
    for (int round = 0; round < 2; ++round) {
        auto c = server.connect();
        uint16_t chosen = 0;
        auto w = c.handshake(server.key, "agent-old", "fs1", 4, 4, &chosen);
        ASSERT_TRUE(w) << w.error().message << server.all_logs();
        EXPECT_EQ(chosen, 4u);
        // The second round, after a reconnection, resumes where welcome
        // says, as an old agent does: its rejection comes plain as well.
        const uint64_t base = w->resume_lsn;
        EXPECT_EQ(base, round == 0 ? 0u : 2u);
        const std::string dir = fmt::format("d{}", round), bad = fmt::format("esc/new{}", round);
        ASSERT_TRUE(c.send(OpMsg{.lsn = base + 1, .kind = OpKind::mkdir, .path = dir, .mode = 040755u}));
        ASSERT_TRUE(c.send(OpMsg{.lsn = base + 2, .kind = OpKind::create, .path = bad, .mode = 0100644u}));
        ASSERT_TRUE(c.send(proto::Commit{base + 2}));
        auto got = until_acked(c, base + 2);
        ASSERT_TRUE(got) << got.error().message << server.all_logs();
        std::vector<proto::RejectedMsg> rejected;
        for (auto& m : *got)
            if (auto* r = std::get_if<proto::RejectedMsg>(&m)) rejected.push_back(*r);
        ASSERT_EQ(rejected.size(), 1u) << server.all_logs();
        EXPECT_EQ(rejected[0].lsn, base + 2);
        EXPECT_EQ(rejected[0].path, bad);
        // Nothing new comes later either.
        ASSERT_TRUE(c.send(proto::Ping{5}));
        for (;;) {
            auto m = c.receive(10s);
            ASSERT_TRUE(m) << m.error().message;
            EXPECT_FALSE(kept_rejection_type(*m)) << proto::msg_type_name(proto::type_of(*m));
            if (std::holds_alternative<proto::Pong>(*m)) break;
        }
    }
    EXPECT_TRUE(fs::is_directory(server.fileset_root("fs1") / "d0")) << server.all_logs();
    EXPECT_TRUE(fs::is_directory(server.fileset_root("fs1") / "d1")) << server.all_logs();
    // A version 4 agent never confirms a rejection: none is kept for it.
    EXPECT_FALSE(fs::exists(server.root() / ".intermezzo" / "agent-old" / "fs1" / "rejected"));
    EXPECT_TRUE(server.logged("protocol version 4")) << server.all_logs();
}

TEST(ProtocolCompat, ARangeWithoutTheServersVersionsIsRefusedNamingBothAndOthersAreServed) {
    ServerHarness server;
    for (auto [lo, hi] : {std::pair<uint16_t, uint16_t>{proto::kVersion + 1, proto::kVersion + 4}, {1, 3}}) {
        auto c = server.connect();
        auto w = c.handshake(server.key, "agent-x", "fs1", lo, hi);
        ASSERT_FALSE(w);
        std::string why = w.error().message;
        auto expected = fmt::format("client speaks protocol versions {}..{}, this server speaks {}..{}", lo, hi,
                                    proto::kMinVersion, proto::kVersion);
        EXPECT_NE(why.find(expected), std::string::npos) << why;
        EXPECT_TRUE(server.eventually_logged(expected)) << server.all_logs();
        EXPECT_TRUE(c.wait_closed(5s));
    }
    auto c = server.connect();
    uint16_t chosen = 0;
    ASSERT_TRUE(c.handshake(server.key, "agent-y", "fs1", proto::kMinVersion, proto::kVersion, &chosen))
        << server.all_logs();
    EXPECT_EQ(chosen, proto::kVersion);
    ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u}));
    ASSERT_TRUE(c.send(proto::Commit{1}));
    auto got = [&]() -> bool {
        for (;;) {
            auto m = c.receive(10s);
            if (!m) return false;
            if (auto* a = std::get_if<proto::Ack>(&*m); a && a->lsn >= 1) return true;
        }
    }();
    EXPECT_TRUE(got) << server.all_logs();
    EXPECT_TRUE(fs::is_directory(server.fileset_root("fs1") / "d"));
}

// The agent of this build against a server that chooses version 4, as a
// server not yet upgraded does: it sends nothing of version 5 (such a
// server ends the connection at the frame), ships, is acked, and keeps the
// rejection it is told of as it always did.
TEST(ProtocolCompat, AnAgentOfVersion5ShipsToAServerOfVersion4) {
    ServerHarness server([](replicator::ServerOptions& o) { o.max_protocol_version = 4; });
    fs::create_directories(server.fileset_root("fs1"));
    fs::create_directory_symlink(server.canary(), server.fileset_root("fs1") / "esc");
    auto so = shipper_options_for(server, "agent-new");
    so.state_dir = server.base() / "agent-state";
    fs::create_directories(server.base() / "src/d");
    fs::create_directories(server.base() / "src/esc/new");
    journal::WriterOptions wo;
    wo.dir = so.journal_dir;

    auto writer = journal::Writer::open(wo);
    ASSERT_TRUE(writer) << writer.error().message;
    uint64_t last = 0;
    for (auto name : {"d", "esc/new"}) {
        journal::Record r;
        r.op = journal::Op::mkdir;
        r.path = name;
        r.mode = 040755;
        auto lsn = (*writer)->append(r);
        ASSERT_TRUE(lsn) << lsn.error().message;
        last = *lsn;
    }
    ASSERT_TRUE((*writer)->flush());
    auto shipper = replicator::Shipper::start(so);
    ASSERT_TRUE(shipper) << shipper.error().message;
    (*shipper)->notify(last);
    ASSERT_TRUE((*shipper)->wait_acked(last, 10s)) << (*shipper)->status()[0].last_error << "\n" << server.all_logs();
    auto st = (*shipper)->status();
    ASSERT_EQ(st.size(), 1u);
    EXPECT_TRUE(st[0].connected);
    EXPECT_EQ(st[0].protocol, 4u);
    EXPECT_EQ(st[0].acked_lsn, last);
    ASSERT_EQ(st[0].rejected.size(), 1u) << server.all_logs();
    EXPECT_EQ(st[0].rejected[0].lsn, last);
    EXPECT_EQ(st[0].rejected[0].path, "esc/new");
    EXPECT_EQ(st[0].server_errors, 0u) << server.all_logs();
    EXPECT_EQ(st[0].reconnects, 0u) << server.all_logs();
    // A second past the ack: a confirmation or a replay would have reached
    // the server by now, and it ends the connection at either.
    std::this_thread::sleep_for(1s);
    st = (*shipper)->status();
    EXPECT_TRUE(st[0].connected);
    EXPECT_EQ(st[0].reconnects, 0u) << server.all_logs();
    EXPECT_FALSE(server.logged("unexpected")) << server.all_logs();
    EXPECT_TRUE(server.logged("protocol version 4")) << server.all_logs();
    EXPECT_TRUE(fs::is_directory(server.fileset_root("fs1") / "d"));
    EXPECT_FALSE(fs::exists(server.root() / ".intermezzo" / "agent-new" / "fs1" / "rejected"));
    (*shipper)->stop();
    ASSERT_TRUE((*writer)->close());
}

// Forwards as ranges (version 6) are asked for with subscribe_ranges, which
// a connection of version 5 may not send (a server of 5 would end it at the
// frame's type): this server ends it as unexpected too, and takes it at 6.
TEST(ProtocolCompat, SubscribeRangesNeedsVersion6) {
    ServerHarness server;
    fs::create_directories(server.fileset_root("fs1"));
    for (uint16_t version : {uint16_t{5}, proto::kRangeForwardsVersion}) {
        auto c = server.connect();
        uint16_t chosen = 0;
        auto agent = fmt::format("agent-v{}", version);
        ASSERT_TRUE(c.handshake(server.key, agent, "fs1", proto::kMinVersion, version, &chosen)) << server.all_logs();
        EXPECT_EQ(chosen, version);
        ASSERT_TRUE(c.send(proto::SubscribeRanges{0, 0}));
        if (version < proto::kRangeForwardsVersion) {
            EXPECT_TRUE(c.wait_closed(5s)) << server.all_logs();
            EXPECT_TRUE(server.eventually_logged("unexpected subscribe_ranges frame")) << server.all_logs();
            continue;
        }
        EXPECT_TRUE(server.eventually_logged("writes as ranges after server LSN 0")) << server.all_logs();
        ASSERT_TRUE(c.send(proto::HeadRequest{1}));
        for (;;) {
            auto m = c.receive(10s);
            ASSERT_TRUE(m) << m.error().message << server.all_logs();
            if (std::holds_alternative<proto::HeadReply>(*m)) break;
        }
    }
}

// Against a server of this build the agent's status names the version chosen.
TEST(ProtocolCompat, TheStatusNamesTheVersionChosen) {
    ServerHarness server;
    auto so = shipper_options_for(server, "agent-a");
    journal::WriterOptions wo;
    wo.dir = so.journal_dir;
    auto writer = journal::Writer::open(wo);
    ASSERT_TRUE(writer) << writer.error().message;
    auto shipper = replicator::Shipper::start(so);
    ASSERT_TRUE(shipper) << shipper.error().message;
    ASSERT_TRUE(wait_until([&] { return (*shipper)->status()[0].connected; }, 10s)) << server.all_logs();
    EXPECT_EQ((*shipper)->status()[0].protocol, proto::kVersion);
    (*shipper)->stop();
    EXPECT_EQ((*shipper)->status()[0].protocol, 0u);
    ASSERT_TRUE((*writer)->close());
}

}  // namespace
}  // namespace iz::test
