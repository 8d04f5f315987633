// A forwarded removal of a directory that still holds entries on a
// send-receive agent: it waits until the agent's own changes beneath it
// are acknowledged (the server has them and decided), then takes the
// directory whole; kept aside as a conflict copy it was on this agent only.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "receiver_rig.hpp"

namespace iz::agent {
namespace {

using namespace std::chrono_literals;
using namespace test_receiver;
namespace fs = std::filesystem;

TEST(ReceiverRemoveDir, ARemovalOfADirectoryWaitsForTheChangesBeneathItThenTakesItWhole) {
    test::TempDir root("recvd-root"), state("recvd-state");
    fs::create_directories(root.path() / "d" / "sub");
    std::ofstream(root.path() / "d" / "mine") << "made here, not acknowledged yet";
    std::ofstream(root.path() / "d" / "sub" / "deep") << "older";
    std::atomic<uint64_t> acked{0};
    auto o = receiver_options(root, state);
    o.unacked_local = [](const std::string&, const std::string&) -> uint64_t { return 0; };
    o.unacked_beneath = [&](const std::string& dir) -> uint64_t { return dir == "d" && acked < 9 ? 9 : 0; };
    o.wait_acked = [&](uint64_t lsn, std::chrono::milliseconds timeout) {
        std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(20)));
        return acked >= lsn;
    };
    auto rc = open_with(std::move(o));
    ASSERT_TRUE(rc);
    rc->on_connected();
    rc->on_forward(forward(3, proto::OpKind::rmdir, "d"));

    std::this_thread::sleep_for(400ms);
    EXPECT_EQ(read_file(root.path() / "d" / "mine"), "made here, not acknowledged yet");
    EXPECT_EQ(rc->applied(), 0u);

    acked = 9;
    ASSERT_TRUE(wait_applied(*rc, 3)) << rc->last_error();
    rc->stop();
    // Gone whole, and nothing kept aside beside it.
    std::vector<std::string> left;
    for (auto& e : fs::directory_iterator(root.path())) left.push_back(e.path().filename().string());
    EXPECT_TRUE(left.empty()) << left[0];
}

}  // namespace
}  // namespace iz::agent
