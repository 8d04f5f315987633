// The receiver when a forward cannot be applied: one it can never apply is
// passed over but kept, durably, until a later record sets that path whole
// (or the directory is made equal to the fileset); one that may succeed
// later holds the cursor before it and has the connection made anew.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "receiver_rig.hpp"

namespace iz::agent {
namespace {

using namespace std::chrono_literals;
using namespace test_receiver;

struct Rig {
    std::mutex mu;
    std::vector<std::string> resubscribed;
};

std::shared_ptr<Receiver> open_receiver(const test::TempDir& root, const test::TempDir& state, Rig& rig) {
    auto o = receiver_options(root, state);
    o.resubscribe = [&rig](const std::string& why) {
        std::lock_guard lock(rig.mu);
        rig.resubscribed.push_back(why);
    };
    o.first_retry = 10ms;
    return open_with(std::move(o));
}

// A name longer than the filesystem takes can never be applied here: the
// cursor passes it (later changes still arrive), but it stays listed across
// a restart until a later record removes that path.
TEST(ReceiverFailure, AForwardThatCanNeverApplyIsPassedOverKeptAcrossARestartAndSuperseded) {
    test::TempDir root("recvf-root"), state("recvf-state");
    Rig rig;
    const std::string too_long(300, 'n');
    {
        auto r = open_receiver(root, state, rig);
        ASSERT_TRUE(r);
        r->on_connected();
        auto mk = forward(1, proto::OpKind::mkdir, too_long);
        mk.op.mode = 040755;
        r->on_forward(mk);
        auto ok = forward(2, proto::OpKind::mkdir, "fine");
        ok.op.mode = 040755;
        r->on_forward(ok);
        ASSERT_TRUE(wait_applied(*r, 2));
        EXPECT_TRUE(std::filesystem::is_directory(root.path() / "fine"));
        auto passed = r->permanent_failures();
        ASSERT_EQ(passed.size(), 1u);
        EXPECT_EQ(passed[0].path, too_long);
        EXPECT_EQ(passed[0].lsn, 1u);
        EXPECT_FALSE(r->failure());
        r->stop();
    }
    {
        auto r = open_receiver(root, state, rig);
        ASSERT_TRUE(r);
        ASSERT_EQ(r->permanent_failures().size(), 1u) << "forgotten by a restart";
        r->on_connected();
        auto rm = forward(3, proto::OpKind::rmdir, too_long);
        r->on_forward(rm);
        ASSERT_TRUE(wait_applied(*r, 3));
        EXPECT_TRUE(r->permanent_failures().empty());
        r->stop();
    }
    auto r = open_receiver(root, state, rig);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->permanent_failures().empty());
    std::lock_guard lock(rig.mu);
    EXPECT_TRUE(rig.resubscribed.empty());
}

}  // namespace
}  // namespace iz::agent
