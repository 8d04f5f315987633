// The send-receive agent's receiver and conflicts: a forward never
// overwrites a local change the server has not acknowledged (it waits for
// the ack), and a conflict the server forwards is journaled and counted.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "open_writers.hpp"
#include "receiver_rig.hpp"

namespace iz::agent {
namespace {

using namespace std::chrono_literals;
using namespace test_receiver;

proto::Forward content(uint64_t lsn, const std::string& path, const std::string& bytes) {
    auto f = forward(lsn, proto::OpKind::content_begin, path);
    f.op.mode = 0100644;
    f.op.more = true;
    f.op.extents.push_back(proto::make_extent(0, bytes, false));
    return f;
}

proto::Forward content_end(uint64_t lsn, const std::string& path, uint64_t size) {
    auto f = forward(lsn, proto::OpKind::content_end, path);
    f.op.mode = 0100644;
    f.op.size = size;
    return f;
}

struct Local {
    std::mutex mu;
    std::map<std::string, uint64_t> unacked;  // path -> local LSN
    std::atomic<uint64_t> acked{0};
};

// The receiver learns of `local`'s unacknowledged changes and their acks.
void follow(ReceiverOptions& o, Local& local) {
    o.unacked_local = [&local](const std::string& path, const std::string& target) -> uint64_t {
        std::lock_guard lock(local.mu);
        for (auto* p : {&path, &target})
            if (auto it = local.unacked.find(*p); it != local.unacked.end() && it->second > local.acked) return it->second;
        return 0;
    };
    o.wait_acked = [&local](uint64_t lsn, std::chrono::milliseconds timeout) {
        std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(20)));
        return local.acked >= lsn;
    };
}

TEST(ReceiverConflict, AForwardWaitsForTheAckOfTheLocalChangeItWouldOverwrite) {
    test::TempDir root("recvc-root"), state("recvc-state");
    Local local;
    {
        std::ofstream(root.path() / "notes.txt") << "my unsent edit";
        std::lock_guard lock(local.mu);
        local.unacked["notes.txt"] = 7;
    }
    std::mutex jmu;
    std::vector<journal::Record> journaled;
    auto o = receiver_options(root, state);
    o.journal = [&](journal::Record r) -> Status {
        std::lock_guard lock(jmu);
        journaled.push_back(std::move(r));
        return {};
    };
    follow(o, local);
    auto r = Receiver::open(std::move(o));
    ASSERT_TRUE(r) << r.error().message;
    auto rc = *r;
    rc->on_connected();
    rc->on_forward(content(3, "notes.txt", "the other agent's"));
    rc->on_forward(content_end(3, "notes.txt", 17));
    // A conflict the server found: journaled with its note, and counted.
    proto::Forward c;
    c.origin = "laptop";
    c.origin_lsn = 7;
    c.op.lsn = 4;
    c.op.kind = proto::OpKind::conflict;
    c.op.path = "notes.txt";
    c.op.target = "notes.txt.conflict-laptop-20261207T200000Z";
    c.op.note = "concurrent with desk (server LSN 3)";
    rc->on_forward(c);

    // Not acknowledged: the local edit stays, and nothing after it is applied.
    std::this_thread::sleep_for(400ms);
    EXPECT_EQ(read_file(root.path() / "notes.txt"), "my unsent edit");
    EXPECT_EQ(rc->applied(), 0u);
    EXPECT_EQ(rc->seen(), 0u);
    EXPECT_EQ(rc->conflicts(), 0u);

    local.acked = 7;  // the server has it
    for (int i = 0; i < 500 && rc->applied() < 4; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_EQ(rc->applied(), 4u) << rc->last_error();
    EXPECT_EQ(rc->seen(), 4u);
    EXPECT_EQ(read_file(root.path() / "notes.txt"), "the other agent's");
    EXPECT_EQ(rc->conflicts(), 1u);
    rc->stop();
    std::lock_guard lock(jmu);
    ASSERT_EQ(journaled.size(), 2u);
    EXPECT_EQ(journaled[1].op, journal::Op::conflict);
    EXPECT_EQ(journaled[1].path, "notes.txt");
    EXPECT_EQ(journaled[1].target, "notes.txt.conflict-laptop-20261207T200000Z");
    EXPECT_EQ(journaled[1].origin, "laptop");
    EXPECT_EQ(journaled[1].message, "concurrent with desk (server LSN 3)");
}

// A file open for writing here is not replaced under its writer: the
// forward waits (and what comes after it) until the writer closed, then
// until the change its writer made, journaled by the capture's settle, is
// acknowledged; only then does the other agent's version replace it.
TEST(ReceiverConflict, AForwardWaitsForTheWriterOfTheFileItWouldReplace) {
    block_lease_signal();
    test::TempDir root("recvw-root"), state("recvw-state");
    Local local;
    std::ofstream(root.path() / "live.log") << "base\n";
    int writer = ::open((root.path() / "live.log").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    ASSERT_GE(writer, 0) << std::strerror(errno);
    ASSERT_EQ(::write(writer, "mine 1\n", 7), 7);
    std::atomic<int> settles{0};
    auto o = receiver_options(root, state);
    o.writer_poll = 10ms;
    follow(o, local);
    // The capture journals the writer's change (LSN 9) once it closed.
    o.settle_capture = [&]() -> Status {
        ++settles;
        std::lock_guard lock(local.mu);
        local.unacked["live.log"] = 9;
        return {};
    };
    auto rc = open_with(std::move(o));
    ASSERT_TRUE(rc);
    rc->on_connected();
    rc->on_forward(content(3, "live.log", "theirs\n"));
    rc->on_forward(content_end(3, "live.log", 7));

    // Open for writing: held, and the writer goes on into the same file.
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(rc->applied(), 0u);
    ASSERT_EQ(::write(writer, "mine 2\n", 7), 7);
    EXPECT_EQ(read_file(root.path() / "live.log"), "base\nmine 1\nmine 2\n");
    EXPECT_EQ(settles, 0);

    // Closed: its change is journaled, and the forward waits for its ack.
    ASSERT_EQ(::close(writer), 0);
    for (int i = 0; i < 500 && settles == 0; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_EQ(settles, 1);
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(rc->applied(), 0u);
    EXPECT_EQ(read_file(root.path() / "live.log"), "base\nmine 1\nmine 2\n");

    local.acked = 9;  // the server has the writer's version (kept by the conflict rules)
    EXPECT_TRUE(wait_applied(*rc, 3)) << rc->last_error();
    EXPECT_EQ(read_file(root.path() / "live.log"), "theirs\n");
    rc->stop();
}

}  // namespace
}  // namespace iz::agent
