// The shipper tells its owner about acks as they arrive (izwatch answers
// pending syncs from that, without polling).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include <fmt/format.h>

#include "hostile_server_harness.hpp"
#include "journal/writer.hpp"
#include "replicator/shipper.hpp"

namespace iz::test {
namespace {

TEST(ShipperAcks, EveryAckReachesTheOwnersHook) {
    ServerHarness server;
    auto key_file = server.base() / "key";
    std::string hex;
    for (char c : server.key.bytes) hex += fmt::format("{:02x}", static_cast<unsigned char>(c));
    write_file(key_file, hex + "\n", 0600);
    fs::create_directories(server.base() / "src");

    journal::WriterOptions wo;
    wo.dir = server.base() / "journal";
    auto writer = journal::Writer::open(wo);
    ASSERT_TRUE(writer) << writer.error().message;

    std::mutex mu;
    std::condition_variable cv;
    int calls = 0;
    replicator::ShipperOptions so;
    so.journal_dir = wo.dir;
    so.watched_root = server.base() / "src";
    so.fileset = "fs1";
    so.agent_id = "agent-a";
    so.servers.push_back({"127.0.0.1", server.port()});
    so.key_file = key_file;
    so.register_consumers = false;
    so.on_acked = [&] {
        std::lock_guard lock(mu);
        ++calls;
        cv.notify_all();
    };
    auto shipper = replicator::Shipper::start(so);
    ASSERT_TRUE(shipper) << shipper.error().message;

    journal::Record r;
    r.op = journal::Op::start;
    r.message = "test";
    auto lsn = (*writer)->append(r);
    ASSERT_TRUE(lsn);
    ASSERT_TRUE((*writer)->flush());
    (*shipper)->notify(*lsn);

    // Woken by the hook itself, not by polling status().
    std::unique_lock lock(mu);
    bool acked = cv.wait_for(lock, std::chrono::seconds(10), [&] {
        auto st = (*shipper)->status();
        return !st.empty() && st[0].acked_lsn >= *lsn;
    });
    EXPECT_TRUE(acked) << "last error: " << (*shipper)->status()[0].last_error << "\n" << server.all_logs();
    EXPECT_GE(calls, 1);
    lock.unlock();
    (*shipper)->stop();
    ASSERT_TRUE((*writer)->close());
}

}  // namespace
}  // namespace iz::test
