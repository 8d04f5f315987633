// On the wire (protocol version 5): the server keeps every rejection it
// told an agent until the agent confirms it stored it, sends the kept ones
// again when asked after a handshake, and refuses a damaged file of them
// naming it while serving everyone else.
#include <gtest/gtest.h>

#include "hostile_server_harness.hpp"

namespace iz::test {
namespace {

namespace fs = std::filesystem;
using replicator::proto::OpKind;
using replicator::proto::OpMsg;
namespace proto = replicator::proto;

// Frames up to and including the first of type T (or an error).
template <class T>
Result<std::pair<std::vector<proto::RejectedMsg>, T>> until(WireClient& c) {
    std::vector<proto::RejectedMsg> rejected;
    for (;;) {
        auto m = c.receive(10s);
        if (!m) return fail(m.error());
        if (auto* r = std::get_if<proto::RejectedMsg>(&*m)) rejected.push_back(*r);
        else if (auto* t = std::get_if<T>(&*m)) return std::make_pair(rejected, *t);
    }
}

TEST(KeptRejectionsOnTheWire, KeptUntilConfirmedAndToldAgainWhenAsked) {
    ServerHarness server;
    fs::create_directories(server.fileset_root("fs1"));
    fs::create_directory_symlink(server.canary(), server.fileset_root("fs1") / "esc");
    const std::string path = "esc/new";
    {
        auto c = server.connect();
        ASSERT_TRUE(c.handshake(server.key, "agent-a", "fs1"));
        ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::create, .path = path, .mode = 0100644u}));
        ASSERT_TRUE(c.send(proto::Commit{1}));
        auto got = until<proto::Ack>(c);
        ASSERT_TRUE(got) << got.error().message << server.all_logs();
        ASSERT_EQ(got->first.size(), 1u);
        EXPECT_EQ(got->first[0].path, path);
        // The agent "dies" here: it never confirms.
    }
    auto file = server.root() / ".intermezzo" / "agent-a" / "fs1" / "rejected";
    EXPECT_TRUE(fs::exists(file)) << server.all_logs();
    {
        auto c = server.connect();
        ASSERT_TRUE(c.handshake(server.key, "agent-a", "fs1"));
        ASSERT_TRUE(c.send(proto::RejectedReplay{7}));
        auto got = until<proto::RejectedReplayed>(c);
        ASSERT_TRUE(got) << got.error().message << server.all_logs();
        EXPECT_EQ(got->second.id, 7u);
        EXPECT_EQ(got->second.count, 1u);
        ASSERT_EQ(got->first.size(), 1u);
        EXPECT_EQ(got->first[0].lsn, 1u);
        EXPECT_EQ(got->first[0].path, path);
        EXPECT_NE(got->first[0].message.find("symlink"), std::string::npos) << got->first[0].message;
        ASSERT_TRUE(c.send(proto::RejectedKept{1, path}));
        ASSERT_TRUE(c.send(proto::Ping{8}));
        ASSERT_TRUE(until<proto::Pong>(c));
    }
    EXPECT_FALSE(fs::exists(file));
    auto c = server.connect();
    ASSERT_TRUE(c.handshake(server.key, "agent-a", "fs1"));
    ASSERT_TRUE(c.send(proto::RejectedReplay{9}));
    auto got = until<proto::RejectedReplayed>(c);
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_EQ(got->second.count, 0u);
    EXPECT_TRUE(got->first.empty());
}

TEST(KeptRejectionsOnTheWire, ADamagedFileRefusesThatAgentNamingItAndNoOneElse) {
    ServerHarness server;
    auto file = server.root() / ".intermezzo" / "agent-b" / "fs1" / "rejected";
    fs::create_directories(file.parent_path());
    write_file(file, "not what the server wrote\n", 0600);
    auto c = server.connect();
    auto w = c.handshake(server.key, "agent-b", "fs1");
    ASSERT_FALSE(w);
    std::string why = w.error().message;
    if (why.find(file.string()) == std::string::npos) c.wait_closed(5s, &why);
    EXPECT_NE(why.find(file.string()), std::string::npos) << why << server.all_logs();
    EXPECT_NE(why.find("cannot be read"), std::string::npos) << why;
    auto other = server.connect();
    EXPECT_TRUE(other.handshake(server.key, "agent-a", "fs1")) << server.all_logs();
    EXPECT_EQ(read_file(file), "not what the server wrote\n");
}

}  // namespace
}  // namespace iz::test
