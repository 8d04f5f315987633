// End to end, conflicts in a shared fileset: two real izwatch agents in
// send-receive mode and one real izreplicate. Concurrency is made
// deterministic by stopping agent B, changing the same name on A (which
// reaches the server) and in B's directory, then starting B again: B's
// change is captured by its restart with what B had seen before it
// stopped, so it did not see A's. Whatever the case, A, B and the server
// end equal by the full manifest, with the same version at the name.
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "e2e_share_fixture.hpp"

namespace fs = std::filesystem;

namespace iz::test::e2e {
namespace {

class ShareConflict : public ShareFixture {
protected:
    ShareConflict() : ShareFixture("conflict") {}

    // A and B share `name` with `bytes`, both started.
    void share_base(const std::string& name, const std::string& bytes) {
        start(*a_, "a");
        start(*b_, "b");
        write_file(a_->dir() / name, bytes);
        sync(*a_);
        sync(*b_);
        ASSERT_EQ(read_file(b_->dir() / name), bytes);
    }

    // The server's fileset journal's conflict records.
    std::vector<nlohmann::json> conflicts_journaled(const fs::path& journal) {
        std::vector<nlohmann::json> out;
        for (auto& r : journal_records(journal))
            if (r.value("op", "") == "conflict") out.push_back(r);
        return out;
    }
};

// Two agents edit one file concurrently: the version the server had first
// (A's) stays at the name on A, B and the server; B's is kept beside it
// as NAME.conflict-b-TIME everywhere, journaled as a conflict naming both.
TEST_F(ShareConflict, ConcurrentEditsKeepBothVersionsEverywhere) {
    share_base("report.txt", "the first version\n");
    ASSERT_EQ(b_->stop().exit_code, 0);
    write_file(a_->dir() / "report.txt", "A's second version\n");
    sync(*a_);
    write_file(b_->dir() / "report.txt", "B's own second version, longer\n");
    start(*b_, "b");
    settle();

    for (auto& dir : {a_->dir(), b_->dir(), replica()}) {
        EXPECT_EQ(read_file(dir / "report.txt"), "A's second version\n") << dir;
        auto copies = names_starting(dir, "report.txt.conflict-b-");
        ASSERT_EQ(copies.size(), 1u) << dir;
        EXPECT_EQ(read_file(dir / copies[0]), "B's own second version, longer\n") << dir;
    }
    expect_all_equal("after the conflict");

    auto conflicts = conflicts_journaled(server_journal());
    ASSERT_EQ(conflicts.size(), 1u);
    EXPECT_EQ(conflicts[0].value("path", ""), "report.txt");
    EXPECT_TRUE(conflicts[0].value("target", "").starts_with("report.txt.conflict-b-")) << conflicts[0].dump();
    EXPECT_EQ(conflicts[0].value("origin", ""), "b");
    EXPECT_NE(conflicts[0].value("message", "").find("concurrent with a "), std::string::npos) << conflicts[0].dump();
    // Both agents were told, and count it.
    EXPECT_EQ(conflicts_journaled(a_->journal()).size(), 1u);
    EXPECT_EQ(conflicts_journaled(b_->journal()).size(), 1u);
    for (auto* agent : {a_.get(), b_.get()}) {
        auto st = agent->status();
        ASSERT_TRUE(st.contains("servers") && !st["servers"].empty()) << st.dump();
        EXPECT_EQ(st["servers"][0].value("conflicts", 0), 1) << st.dump();
    }
    // izlog shows the conflict with both origins.
    auto shown = run_process({bin_path("izlog").string(), "-D", server_journal().string(), "--no-pager"});
    EXPECT_NE(shown.out.find("conflict"), std::string::npos) << shown.out;
    EXPECT_NE(shown.out.find("origin=b@"), std::string::npos) << shown.out;
    EXPECT_NE(shown.out.find("concurrent with a"), std::string::npos) << shown.out;
}

// Delete against update: B deletes the file A updated meanwhile; the
// update wins, and the file comes back on B.
TEST_F(ShareConflict, DeleteAgainstUpdateKeepsTheUpdate) {
    share_base("plan.txt", "plan v1\n");
    ASSERT_EQ(b_->stop().exit_code, 0);
    write_file(a_->dir() / "plan.txt", "plan v2, from A\n");
    sync(*a_);
    fs::remove(b_->dir() / "plan.txt");
    start(*b_, "b");
    settle();
    for (auto& dir : {a_->dir(), b_->dir(), replica()}) {
        EXPECT_EQ(read_file(dir / "plan.txt"), "plan v2, from A\n") << dir;
        EXPECT_TRUE(names_starting(dir, "plan.txt.conflict").empty()) << dir;
    }
    expect_all_equal("after delete against update");
    EXPECT_TRUE(conflicts_journaled(server_journal()).empty());
}

// The other order: B updates the file A deleted meanwhile. The update
// wins: the file is made again on the server and A, and B, which gets A's
// delete after its update was taken, gets its version back.
TEST_F(ShareConflict, UpdateAfterAConcurrentDeleteMakesTheFileAgainEverywhere) {
    share_base("todo.txt", "todo v1\n");
    ASSERT_EQ(b_->stop().exit_code, 0);
    fs::remove(a_->dir() / "todo.txt");
    sync(*a_);
    write_file(b_->dir() / "todo.txt", "todo v2, from B\n");
    start(*b_, "b");
    settle();
    for (auto& dir : {a_->dir(), b_->dir(), replica()}) {
        EXPECT_EQ(read_file(dir / "todo.txt"), "todo v2, from B\n") << dir;
        EXPECT_TRUE(names_starting(dir, "todo.txt.conflict").empty()) << dir;
    }
    expect_all_equal("after update against delete");
}

// Two creates of one name: both kept, the second as a conflict copy.
TEST_F(ShareConflict, TwoCreatesOfOneNameAreBothKept) {
    share_base("base.txt", "shared\n");
    ASSERT_EQ(b_->stop().exit_code, 0);
    write_file(a_->dir() / "new.txt", "A made new.txt\n");
    sync(*a_);
    write_file(b_->dir() / "new.txt", "B made new.txt too\n");
    start(*b_, "b");
    settle();
    for (auto& dir : {a_->dir(), b_->dir(), replica()}) {
        EXPECT_EQ(read_file(dir / "new.txt"), "A made new.txt\n") << dir;
        auto copies = names_starting(dir, "new.txt.conflict-b-");
        ASSERT_EQ(copies.size(), 1u) << dir;
        EXPECT_EQ(read_file(dir / copies[0]), "B made new.txt too\n") << dir;
    }
    expect_all_equal("after two creates");
    EXPECT_EQ(conflicts_journaled(server_journal()).size(), 1u);
}

// An agent's own earlier change coming back is no conflict: A changes a
// file again and again without receiving anything in between (what it
// had seen stays behind its own changes), and B's later edit, made after
// it received A's, replaces it. Every record A and B captured carries
// what they had seen of the server.
TEST_F(ShareConflict, AnAgentsOwnChangesAndChangesThatSawTheLatestAreNoConflict) {
    share_base("log.txt", "one\n");
    for (int i = 0; i < 5; ++i) {
        write_file(a_->dir() / "log.txt", fmt::format("A's version {}\n", i));
        sync(*a_);
    }
    sync(*b_);
    write_file(b_->dir() / "log.txt", "B saw A's last version\n");
    settle();
    for (auto& dir : {a_->dir(), b_->dir(), replica()}) {
        EXPECT_EQ(read_file(dir / "log.txt"), "B saw A's last version\n") << dir;
        EXPECT_TRUE(names_starting(dir, "log.txt.conflict").empty()) << dir;
    }
    expect_all_equal("after changes that saw each other");
    EXPECT_TRUE(conflicts_journaled(server_journal()).empty());
    size_t stamped = 0;
    for (auto* agent : {a_.get(), b_.get()})
        for (auto& r : journal_records(agent->journal()))
            if (r.value("path", "") == "log.txt" && !r.contains("origin") && r.value("op", "") != "conflict") {
                EXPECT_TRUE(r.contains("seen")) << r.dump();
                ++stamped;
            }
    EXPECT_GE(stamped, 6u);
}

}  // namespace
}  // namespace iz::test::e2e
