// End to end, joining a shared fileset with a non-empty directory: A shares
// a tree; B starts in send-receive mode on a directory that already holds
// files equal to A's, files that differ from A's and files only B has.
// After a sync on both, A, B and the server are equal by the full
// manifest: equal files adopted without their data being sent, a
// differing file with the fileset's version at its name and B's at a
// conflict copy, what only one side had on both, nothing deleted.
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <set>

#include "e2e_share_fixture.hpp"

namespace fs = std::filesystem;

namespace iz::test::e2e {
namespace {

class ShareJoin : public ShareFixture {
protected:
    ShareJoin() : ShareFixture("join") {}

    // Since B started, of its first server: file data and whole frames sent.
    std::pair<uint64_t, uint64_t> bytes_sent(AgentHost& agent) {
        auto st = agent.status();
        if (!st.contains("servers") || st["servers"].empty()) return {0, 0};
        return {st["servers"][0].value("data_bytes_sent", uint64_t{0}),
                st["servers"][0].value("wire_bytes_sent", uint64_t{0})};
    }
};

// The 8 MiB of equal files cost no data; the differing file and what only
// B has arrive everywhere; B's version of the differing file is kept.
TEST_F(ShareJoin, ANonEmptyDirectoryIsMerged) {
    const std::string big(256 * 1024, 'e');
    start(*a_, "a");
    const fs::path A = a_->dir();
    fs::create_directories(A / "same/deep");
    for (int i = 0; i < 32; ++i) write_file(A / fmt::format("same/deep/f{}.bin", i), big + std::to_string(i));
    write_file(A / "same/readme.txt", "the same words\n");
    write_file(A / "report.txt", "A's report\n");
    fs::create_directories(A / "only-a");
    write_file(A / "only-a/a.txt", "only on A\n");
    sync(*a_);

    // B's directory before it joins: the same tree copied, one file
    // different, files and a directory only B has.
    const fs::path B = b_->dir();
    fs::create_directories(B / "same/deep");
    for (int i = 0; i < 32; ++i) write_file(B / fmt::format("same/deep/f{}.bin", i), big + std::to_string(i));
    write_file(B / "same/readme.txt", "the same words\n");
    ASSERT_EQ(::chmod((B / "same/readme.txt").c_str(), 0600), 0);  // the fileset's attributes win
    write_file(B / "report.txt", "B's own report, longer\n");
    write_file(B / "same/only-b.txt", "only on B\n");
    fs::create_directories(B / "mine");
    write_file(B / "mine/b.txt", "B's directory\n");

    start(*b_, "b");
    sync(*b_);
    sync(*a_);
    sync(*b_);

    for (auto& dir : {A, B, replica()}) {
        EXPECT_EQ(read_file(dir / "same/deep/f5.bin"), big + "5") << dir;
        EXPECT_EQ(read_file(dir / "report.txt"), "A's report\n") << dir;
        auto copies = names_starting(dir, "report.txt.conflict-b-");
        ASSERT_EQ(copies.size(), 1u) << dir;
        EXPECT_EQ(read_file(dir / copies[0]), "B's own report, longer\n") << dir;
        EXPECT_EQ(read_file(dir / "only-a/a.txt"), "only on A\n") << dir;
        EXPECT_EQ(read_file(dir / "same/only-b.txt"), "only on B\n") << dir;
        EXPECT_EQ(read_file(dir / "mine/b.txt"), "B's directory\n") << dir;
        struct stat st {};
        ASSERT_EQ(::stat((dir / "same/readme.txt").c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 07777, 0644u) << dir;
    }
    expect_all_equal("after B joined with a non-empty directory");

    // Nothing of the equal files was sent: the server journaled no record
    // of B's for them (before, each was sent and kept as a conflict copy),
    // and B sent some kilobytes in all, not the 8 MiB it shares with A
    // (nor the block hashes of a comparison of them).
    auto [data, wire] = bytes_sent(*b_);
    std::cout << "B sent " << data << " data bytes, " << wire << " bytes on the wire, for a tree of "
              << 32 * big.size() << " equal bytes\n";
    for (auto& r : journal_records(server_journal()))
        if (r.value("origin", "") == "b" && r.value("op", "") != "conflict")
            EXPECT_TRUE(r.value("path", "") == "same/only-b.txt" || r.value("path", "").starts_with("mine") ||
                        r.value("path", "").starts_with("report.txt"))
                << r.dump();
    auto log = b_->log();
    auto compared = log.find("the comparison cost ");
    EXPECT_NE(compared, std::string::npos) << log;
    if (compared != std::string::npos) std::cout << log.substr(compared, log.find('\n', compared) - compared) << "\n";
    EXPECT_LT(data, 4u * 1024) << b_->status().dump();
    EXPECT_LT(wire, 64u * 1024) << b_->status().dump();

    // The conflict is journaled on the server, with B as the losing origin.
    size_t conflicts = 0;
    for (auto& r : journal_records(server_journal()))
        if (r.value("op", "") == "conflict") {
            ++conflicts;
            EXPECT_EQ(r.value("path", ""), "report.txt") << r.dump();
            EXPECT_EQ(r.value("origin", ""), "b") << r.dump();
        }
    EXPECT_EQ(conflicts, 1u);

    // A later change flows as usual both ways.
    write_file(B / "mine/b.txt", "B changed it\n");
    sync(*b_);
    sync(*a_);
    EXPECT_EQ(read_file(A / "mine/b.txt"), "B changed it\n");
    expect_all_equal("after a change following the join");
}

// Receive-only, a directory joining keeps what it has: what the fileset
// holds alike is adopted (no local change, no copy), a file that differs
// has the fileset's version at its name and B's kept beside it, and what
// only B has stays on B as a local change; nothing of B's reaches the
// server or A.
TEST_F(ShareJoin, AReceiveOnlyDirectoryJoiningKeepsItsOwnVersions) {
    start(*a_, "a");
    const fs::path A = a_->dir();
    fs::create_directories(A / "same");
    for (int i = 0; i < 8; ++i) write_file(A / fmt::format("same/f{}.txt", i), fmt::format("file {}\n", i));
    write_file(A / "report.txt", "A's report\n");
    write_file(A / "only-a.txt", "only on A\n");
    sync(*a_);

    const fs::path B = b_->dir();
    fs::create_directories(B / "same");
    for (int i = 0; i < 8; ++i) write_file(B / fmt::format("same/f{}.txt", i), fmt::format("file {}\n", i));
    write_file(B / "report.txt", "B's own report\n");
    write_file(B / "only-b.txt", "only on B\n");
    start(*b_, "b", "receive-only");
    sync(*b_);

    EXPECT_EQ(read_file(B / "report.txt"), "A's report\n");
    auto copies = names_starting(B, "report.txt.conflict-b-");
    ASSERT_EQ(copies.size(), 1u);
    EXPECT_EQ(read_file(B / copies[0]), "B's own report\n");
    EXPECT_EQ(read_file(B / "only-a.txt"), "only on A\n");
    EXPECT_EQ(read_file(B / "only-b.txt"), "only on B\n");
    EXPECT_EQ(read_file(B / "same/f3.txt"), "file 3\n");
    EXPECT_TRUE(names_starting(B / "same", "f3.txt.conflict-").empty());
    // B's own versions are its local changes, the adopted files are not.
    auto st = b_->status();
    auto paths = st.value("local_change_paths", std::vector<std::string>{});
    std::set<std::string> local(paths.begin(), paths.end());
    EXPECT_TRUE(local.count("report.txt") && local.count("only-b.txt")) << st.dump();
    for (auto& p : local) EXPECT_FALSE(p.starts_with("same")) << st.dump();
    // Nothing of B's left B.
    for (auto& dir : {A, replica()}) {
        EXPECT_FALSE(fs::exists(dir / "only-b.txt")) << dir;
        EXPECT_TRUE(names_starting(dir, "report.txt.conflict-").empty()) << dir;
        EXPECT_EQ(read_file(dir / "report.txt"), "A's report\n") << dir;
    }
}

}  // namespace
}  // namespace iz::test::e2e
