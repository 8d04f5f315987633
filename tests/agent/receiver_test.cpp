// The send-receive agent's receiver on its own: forwards in, the tree
// beneath its root, journal records with their origin, and a cursor that
// moves only once applied durably and survives a restart.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "receiver_rig.hpp"

namespace iz::agent {
namespace {

using namespace std::chrono_literals;
using namespace test_receiver;

struct Journaled {
    std::mutex mu;
    std::vector<journal::Record> records;
};

std::shared_ptr<Receiver> open_receiver(const test::TempDir& root, const test::TempDir& state, Journaled& j) {
    auto o = receiver_options(root, state);
    o.journal = [&j](journal::Record r) -> Status {
        std::lock_guard lock(j.mu);
        j.records.push_back(std::move(r));
        return {};
    };
    return open_with(std::move(o));
}

TEST(Receiver, AppliesForwardsJournalsTheirOriginAndKeepsTheCursorAcrossARestart) {
    test::TempDir root("recv-root"), state("recv-state");
    Journaled j;
    {
        auto r = open_receiver(root, state, j);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->cursor(), 0u);
        r->on_connected();
        auto mk = forward(1, proto::OpKind::mkdir, "docs");
        mk.op.mode = 040755;
        r->on_forward(mk);
        auto begin = forward(2, proto::OpKind::content_begin, "docs/a.txt");
        begin.op.mode = 0100640;
        begin.op.more = true;
        begin.op.extents.push_back(proto::make_extent(0, "hello", false));
        r->on_forward(begin);
        auto end = forward(2, proto::OpKind::content_end, "docs/a.txt");
        end.op.mode = 0100640;
        end.op.size = 5;
        r->on_forward(end);
        // A run of the subscriber's own records at the head: a noop moves
        // the cursor, and journals nothing.
        proto::Forward skip;
        skip.op.lsn = 4;
        r->on_forward(skip);
        ASSERT_TRUE(wait_applied(*r, 4)) << "applied through " << r->applied() << ": " << r->last_error();
        EXPECT_EQ(r->last_error(), "");
        r->stop();
    }
    EXPECT_EQ(read_file(root.path() / "docs/a.txt"), "hello");
    struct stat st{};
    ASSERT_EQ(::stat((root.path() / "docs/a.txt").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    {
        std::lock_guard lock(j.mu);
        ASSERT_EQ(j.records.size(), 2u);  // the mkdir, and the content as one write
        EXPECT_EQ(j.records[0].op, journal::Op::mkdir);
        EXPECT_EQ(j.records[0].path, "docs");
        EXPECT_EQ(j.records[0].origin, "desk");
        EXPECT_EQ(j.records[0].origin_lsn, 101u);
        EXPECT_EQ(j.records[1].op, journal::Op::write);
        EXPECT_EQ(j.records[1].path, "docs/a.txt");
        EXPECT_TRUE(j.records[1].ranges.empty());  // the whole file
        EXPECT_EQ(j.records[1].origin_lsn, 102u);
        j.records.clear();
    }
    // A restart resumes after what was applied durably.
    auto again = open_receiver(root, state, j);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->cursor(), 4u);
}

// A record that came only in part before the connection dropped is void:
// its parts come again whole on the next connection, and the file holds
// what the whole record says.
TEST(Receiver, ARecordCutByAReconnectionIsTakenWholeTheNextTime) {
    test::TempDir root("recv-root"), state("recv-state");
    Journaled j;
    auto r = open_receiver(root, state, j);
    ASSERT_TRUE(r);
    auto begin = forward(1, proto::OpKind::content_begin, "f");
    begin.op.more = true;
    begin.op.extents.push_back(proto::make_extent(0, "half", false));
    r->on_forward(begin);
    r->on_connected();
    begin.op.extents[0] = proto::make_extent(0, "whole", false);
    r->on_forward(begin);
    auto end = forward(1, proto::OpKind::content_end, "f");
    end.op.size = 5;
    end.op.mode = 0100644;
    r->on_forward(end);
    ASSERT_TRUE(wait_applied(*r, 1)) << r->last_error();
    EXPECT_EQ(read_file(root.path() / "f"), "whole");
    EXPECT_EQ(r->last_error(), "");
}

}  // namespace
}  // namespace iz::agent
