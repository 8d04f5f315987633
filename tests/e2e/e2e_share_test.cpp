// End to end, shared filesets: two real izwatch agents in send-receive mode
// (one network namespace, each on its own ext4 image) share a fileset
// through one real izreplicate. What either does reaches the other, the
// three trees end equal by the full manifest, an empty directory joining
// is filled, and nothing comes back to where it was made.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "e2e_share_fixture.hpp"

namespace fs = std::filesystem;

namespace iz::test::e2e {
namespace {

class Share : public ShareFixture {
protected:
    Share() : ShareFixture("share") {}
};

// Every kind of change made on A reaches B, and every kind made on B
// reaches A, through the server; neither agent sends back what it received.
TEST_F(Share, EveryOperationTypeFlowsBothWaysWithoutEcho) {
    start(*a_, "a");
    start(*b_, "b");
    const fs::path A = a_->dir(), B = b_->dir();

    // ---- made on A ----
    fs::create_directories(A / "docs/deep");
    write_file(A / "docs/report.txt", "the first version of the report\n");
    write_file(A / "docs/deep/big.bin", std::string(3 << 20, 'x') + "tail");
    write_file(A / "doomed.txt", "soon gone");
    write_file(A / "moving.txt", "moves");
    ASSERT_EQ(::symlink("docs/report.txt", (A / "latest").c_str()), 0);
    ASSERT_EQ(::link((A / "docs/report.txt").c_str(), (A / "report-link.txt").c_str()), 0);
    ASSERT_EQ(::chmod((A / "docs/report.txt").c_str(), 0640), 0);
    ASSERT_EQ(::setxattr((A / "moving.txt").c_str(), "user.tag", "blue", 4, 0), 0);
    fs::rename(A / "moving.txt", A / "docs/moved.txt");
    fs::remove(A / "doomed.txt");
    sync(*a_);
    sync(*b_);
    EXPECT_EQ(read_file(B / "docs/report.txt"), "the first version of the report\n");
    EXPECT_EQ(read_file(B / "docs/deep/big.bin").size(), (3u << 20) + 4);
    EXPECT_FALSE(fs::exists(B / "doomed.txt"));
    expect_all_equal("after A's changes");

    // ---- made on B, on A's files too ----
    write_file(B / "docs/report.txt", "the second version, from B\n");
    fs::create_directories(B / "from-b");
    write_file(B / "from-b/notes.txt", "B's notes");
    ASSERT_EQ(::symlink("notes.txt", (B / "from-b/notes-link").c_str()), 0);
    ASSERT_EQ(::link((B / "from-b/notes.txt").c_str(), (B / "from-b/notes-hard.txt").c_str()), 0);
    ASSERT_EQ(::chmod((B / "docs/moved.txt").c_str(), 0600), 0);
    ASSERT_EQ(::setxattr((B / "docs/moved.txt").c_str(), "user.tag", "green", 5, 0), 0);
    ASSERT_EQ(::removexattr((B / "docs/moved.txt").c_str(), "user.tag"), 0);
    ASSERT_EQ(::setxattr((B / "from-b/notes.txt").c_str(), "user.by", "b", 1, 0), 0);
    fs::rename(B / "docs/deep", B / "from-b/deep");
    fs::remove(B / "latest");
    sync(*b_);
    sync(*a_);
    EXPECT_EQ(read_file(A / "docs/report.txt"), "the second version, from B\n");
    EXPECT_EQ(read_file(A / "report-link.txt"), "the second version, from B\n");
    EXPECT_EQ(read_file(A / "from-b/notes.txt"), "B's notes");
    EXPECT_TRUE(fs::exists(A / "from-b/deep/big.bin"));
    EXPECT_FALSE(fs::exists(A / "docs/deep"));
    expect_all_equal("after B's changes");

    // ---- no echo ----
    // A's journal: B's changes with B as their origin, and no local record
    // of anything A only received (from-b/ and beneath exists on A only
    // because B made it); nothing of A's own came back.
    auto ja = journal_records(a_->journal());
    size_t from_b = 0;
    for (auto& r : ja) {
        std::string path = r.value("path", "");
        std::string origin = r.value("origin", "");
        EXPECT_NE(origin, "a") << r.dump();
        if (origin == "b") {
            ++from_b;
            continue;
        }
        EXPECT_FALSE(path.starts_with("from-b")) << "captured on A as a local change: " << r.dump();
    }
    EXPECT_GE(from_b, 8u);
    // The same for B: A's changes arrived with A as their origin, and B
    // journaled none of them as its own.
    auto jb = journal_records(b_->journal());
    size_t from_a = 0;
    for (auto& r : jb) {
        std::string origin = r.value("origin", "");
        EXPECT_NE(origin, "b") << r.dump();
        if (origin == "a") ++from_a;
        else
            EXPECT_NE(r.value("path", ""), "doomed.txt") << "captured on B as a local change: " << r.dump();
    }
    EXPECT_GE(from_a, 8u);
    // The server's fileset journal names both origins, and holds nothing
    // an agent sent back: every record of from-b/ came from B.
    auto js = journal_records(server_journal());
    std::set<std::string> origins;
    for (auto& r : js) {
        origins.insert(r.value("origin", ""));
        if (r.value("path", "").starts_with("from-b/notes")) EXPECT_EQ(r.value("origin", ""), "b") << r.dump();
        if (r.value("path", "") == "doomed.txt") EXPECT_EQ(r.value("origin", ""), "a") << r.dump();
    }
    EXPECT_EQ(origins, (std::set<std::string>{"a", "b"}));
    // izlog shows the origin column on the server's journal too.
    auto shown = run_process({bin_path("izlog").string(), "-D", server_journal().string(), "--no-pager"});
    EXPECT_NE(shown.out.find("from-b/notes.txt"), std::string::npos) << shown.out;
    EXPECT_NE(shown.out.find(" origin=b@"), std::string::npos) << shown.out;
}

// An agent whose directory is empty joins a fileset the server has: it is
// filled, and `izwatch sync` returns only once it is.
TEST_F(Share, AnEmptyDirectoryJoiningIsFilled) {
    start(*a_, "a");
    const fs::path A = a_->dir();
    fs::create_directories(A / "src/lib");
    for (int i = 0; i < 20; ++i) write_file(A / fmt::format("src/lib/f{}.c", i), fmt::format("int f{}(void);\n", i));
    ASSERT_EQ(::symlink("src", (A / "code").c_str()), 0);
    ASSERT_EQ(::chmod((A / "src").c_str(), 0750), 0);
    sync(*a_);
    start(*b_, "b");
    sync(*b_);
    EXPECT_EQ(read_file(b_->dir() / "src/lib/f7.c"), "int f7(void);\n");
    expect_all_equal("after B joined");
    // B sent nothing back: the server's journal holds A's records only.
    for (auto& r : journal_records(server_journal())) EXPECT_EQ(r.value("origin", ""), "a") << r.dump();
}

}  // namespace
}  // namespace iz::test::e2e
