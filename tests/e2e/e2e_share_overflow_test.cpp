// End to end, shared fileset: a send-receive agent whose fanotify queue
// overflows while its applier brings in another agent's files. The
// overflow's rescan journals what differs from the tree the capture knew;
// the forwards applied meanwhile (files, and the directory times the
// applier sets) are not local changes and must never be journaled as the
// agent's own, nor sent back to the server (where an echo could even
// look like a conflict).
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "e2e_share_fixture.hpp"

namespace fs = std::filesystem;

namespace iz::test::e2e {
namespace {

class ShareOverflow : public ShareFixture {
protected:
    ShareOverflow() : ShareFixture("ovfl") {}
};

TEST_F(ShareOverflow, ForwardsAppliedAcrossAnOverflowAreNotJournaledAsLocalChanges) {
    constexpr int kRounds = 3, kFiles = 150, kNoise = 600;
    start(*a_, "a");
    // A queue this short overflows at once under the noise below (and
    // under the forwards themselves while the capture is still behind).
    auto r = b_->start({server_->endpoint()},
                       {"--mode", "send-receive", "--agent-id", "b", "--fileset", kShareFileset, "--queue-events", "64"});
    ASSERT_EQ(r.exit_code, 0) << r.err << "\n" << b_->log();
    fs::create_directory(a_->dir() / "from-a");
    write_file(a_->dir() / "from-a" / "seed", "seed\n");
    sync(*a_);
    sync(*b_);
    ASSERT_EQ(read_file(b_->dir() / "from-a" / "seed"), "seed\n");

    std::set<std::string> only_a;  // paths A alone changed
    for (int round = 0; round < kRounds; ++round) {
        b_->pause();
        // Local noise that leaves nothing behind: the rescan finds no change of B's.
        fs::create_directory(b_->dir() / "noise");
        for (int i = 0; i < kNoise; ++i) write_file(b_->dir() / "noise" / fmt::format("n{}", i), "");
        fs::remove_all(b_->dir() / "noise");
        // And one change of B's own, which the rescan must journal and send.
        write_file(b_->dir() / fmt::format("mine{}", round), fmt::format("B's round {}\n", round));
        auto sub = fmt::format("from-a/r{}", round);
        fs::create_directory(a_->dir() / sub);
        only_a.insert(sub);
        for (int i = 0; i < kFiles; ++i) {
            auto p = fmt::format("{}/f{}", sub, i);
            write_file(a_->dir() / p, fmt::format("round {} file {}\n", round, i));
            only_a.insert(p);
        }
        if (round > 0) {
            auto gone = fmt::format("from-a/r{}/f0", round - 1);
            fs::remove(a_->dir() / gone);
        }
        sync(*a_);
        b_->resume();
        sync(*b_);
    }
    sync(*a_);
    sync(*b_);

    auto status = b_->status();
    ASSERT_GE(status.value("overflows", 0), 1) << "the test did not overflow B's queue: " << status.dump();

    // B's journal: no record of B's own (no origin) names a path only A changed.
    size_t echoes = 0;
    for (auto& rec : journal_records(b_->journal())) {
        if (rec.contains("origin")) continue;
        for (auto key : {"path", "target"}) {
            auto p = rec.value(key, std::string());
            if (p == "from-a" || only_a.count(p)) {
                ADD_FAILURE() << "B journaled A's forward as its own change: " << rec.dump();
                ++echoes;
            }
        }
    }
    // The server's journal: nothing from B for them. (B's own noise may be
    // there: the events the short queue held before it overflowed.)
    for (auto& rec : journal_records(server_journal())) {
        if (rec.value("origin", "") == "a") continue;
        for (auto key : {"path", "target"}) {
            auto p = rec.value(key, std::string());
            EXPECT_FALSE(p == "from-a" || only_a.count(p)) << "an echo reached the server: " << rec.dump();
        }
    }
    EXPECT_EQ(echoes, 0u);
    // B's own changes made in the same windows are not taken for forwards.
    for (int round = 0; round < kRounds; ++round)
        EXPECT_EQ(read_file(a_->dir() / fmt::format("mine{}", round)), fmt::format("B's round {}\n", round));
    expect_all_equal("after the overflows");
}

}  // namespace
}  // namespace iz::test::e2e
