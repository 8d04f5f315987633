// When a server's fileset journal syncs what it noted, seen from a client
// on the wire: an Ack goes once what it covers is in the journal, and what
// a connection applied and never committed reaches the journal when the
// connection ends (no commit of it will come, and nothing else may).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hostile_server_harness.hpp"
#include "journal/reader.hpp"

namespace iz::test {
namespace {

using replicator::proto::OpKind;
using replicator::proto::OpMsg;

// The paths of the records the fileset journal holds on disk, in order.
std::vector<std::string> journaled(const ServerHarness& server, const std::string& fileset) {
    std::vector<std::string> out;
    auto reader = journal::Reader::open(server.root() / ".intermezzo" / ".filesets" / fileset / "journal");
    if (!reader) return out;
    for (;;) {
        auto r = (*reader)->next();
        if (!r || !*r) break;
        out.push_back((*r)->path);
    }
    return out;
}

TEST(ServerJournalSync, AnAckGoesOnceWhatItCoversIsInTheFilesetJournal) {
    ServerHarness server;
    auto c = server.connect();
    ASSERT_TRUE(c.handshake(server.key, "alice", "fs"));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "a", .mode = 040755u}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 2, .kind = OpKind::mkdir, .path = "b", .mode = 040755u}));
    ASSERT_TRUE(c.send(replicator::proto::Commit{2}));
    auto ack = c.receive();
    ASSERT_TRUE(ack) << ack.error().message << "\n" << server.all_logs();
    auto* a = std::get_if<replicator::proto::Ack>(&*ack);
    ASSERT_NE(a, nullptr) << replicator::proto::msg_type_name(replicator::proto::type_of(*ack));
    EXPECT_EQ(a->lsn, 2u);
    EXPECT_EQ(journaled(server, "fs"), (std::vector<std::string>{"a", "b"}));
}

TEST(ServerJournalSync, WhatAConnectionAppliedWithoutACommitIsJournaledWhenItEnds) {
    ServerHarness server;
    {
        auto c = server.connect();
        ASSERT_TRUE(c.handshake(server.key, "alice", "fs"));
        ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "a", .mode = 040755u}));
        ASSERT_TRUE(c.send(OpMsg{.lsn = 2, .kind = OpKind::mkdir, .path = "b", .mode = 040755u}));
        ASSERT_TRUE(wait_until([&] { return fs::is_directory(server.fileset_root("fs") / "b"); }))
            << server.all_logs();
    }
    EXPECT_TRUE(wait_until([&] { return journaled(server, "fs").size() == 2; }, 5s)) << server.all_logs();
    EXPECT_EQ(journaled(server, "fs"), (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace iz::test
