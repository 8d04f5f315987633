#pragma once
// A server killed while it applies, then started again: its Applier is
// never closed (a killed process runs no destructor), a new one opens the
// same root and state, and the sender resumes and replays part of the
// journal onto what the killed one left.
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {

class ApplyAfterServerKill : public ApplyTest {
protected:
    void TearDown() override {
        // Left as the kill left them: closing them would finish their work.
        for (auto& k : killed_) (void)k.release();
        ApplyTest::TearDown();
    }

    // Kills this server, starts it again a tick later (birth times are
    // stamped with the coarse clock), and replays ops[from..] on a resumed
    // connection (replay_resumed).
    void kill_restart_and_replay(const std::vector<OpMsg>& ops, size_t from) {
        killed_.push_back(std::move(applier_));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        auto a = Applier::open(ApplierOptions{root_, state_, "testhost", {}});
        ASSERT_TRUE(a) << a.error().message;
        applier_ = std::move(*a);
        replay_resumed(ops, from);
    }

    // Replays ops[from..] on a resumed connection: each must be applied or
    // skipped, none may keep a conflict copy (a replay only meets what this
    // journal made). Then commits through the last.
    void replay_resumed(const std::vector<OpMsg>& ops, size_t from) {
        applier_->resume();
        auto results = replay_ops(ops, from);
        for (size_t k = 0; k < results.size(); ++k)
            EXPECT_TRUE(results[k].conflicts.empty()) << "#" << from + k << ": a conflict copy on replay";
        EXPECT_TRUE(applier_->commit(ops.back().lsn));
    }

    std::vector<std::unique_ptr<Applier>> killed_;
};

}  // namespace iz::replicator::test_apply
