// End to end, a receive-only agent's local change meets a forward of the
// same path: the forward is applied (B is a replica of the fileset), but
// the user's version is kept beside it first, as a conflict copy named as
// the server names its own, and reported. Never sent: the server and A
// never see it.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>

#include "e2e_share_fixture.hpp"

namespace fs = std::filesystem;

namespace iz::test::e2e {
namespace {

class ShareReceiveOnly : public ShareFixture {
protected:
    ShareReceiveOnly() : ShareFixture("shro") {}
};

// The entries of `dir` whose name starts with `prefix`.
std::vector<std::string> names_starting(const fs::path& dir, const std::string& prefix) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(dir, ec))
        if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().filename().string());
    return out;
}

TEST_F(ShareReceiveOnly, AForwardOfALocallyChangedPathKeepsTheLocalVersionAsAConflictCopy) {
    start(*a_, "a");
    start(*b_, "b", "receive-only");
    const fs::path A = a_->dir(), B = b_->dir();
    fs::create_directories(A / "docs");
    write_file(A / "docs/f.txt", "the first version\n");
    sync(*a_);
    sync(*b_);
    ASSERT_EQ(read_file(B / "docs/f.txt"), "the first version\n");

    // B's user edits f; B reports it as a local change.
    const std::string mine = "B's own version, kept\n";
    write_file(B / "docs/f.txt", mine);
    eventually(
        [&] {
            auto st = b_->status();
            auto paths = st.value("local_change_paths", std::vector<std::string>{});
            return std::find(paths.begin(), paths.end(), "docs/f.txt") != paths.end();
        },
        std::chrono::seconds(15));

    // A changes f: the forward reaches B.
    const std::string theirs = "A's second version, longer than the first\n";
    write_file(A / "docs/f.txt", theirs);
    sync(*a_);
    sync(*b_);

    EXPECT_EQ(read_file(B / "docs/f.txt"), theirs);
    auto copies = names_starting(B / "docs", "f.txt.conflict-");
    ASSERT_EQ(copies.size(), 1u) << "B's version was not kept aside";
    EXPECT_TRUE(std::regex_match(copies[0], std::regex(R"(f\.txt\.conflict-b-\d{8}T\d{6}Z)"))) << copies[0];
    EXPECT_EQ(read_file(B / "docs" / copies[0]), mine);

    // Reported: counted in status, journaled (izlog shows it), a warning.
    auto st = b_->status();
    ASSERT_TRUE(st.contains("servers") && !st["servers"].empty()) << st.dump();
    EXPECT_EQ(st["servers"][0].value("conflicts", 0), 1) << st.dump();
    auto shown = run_process({bin_path("izlog").string(), "-D", b_->journal().string(), "--no-pager"});
    EXPECT_NE(shown.out.find("conflict"), std::string::npos) << shown.out;
    EXPECT_NE(shown.out.find(copies[0]), std::string::npos) << shown.out;
    auto log = b_->log();
    EXPECT_NE(log.find("docs/f.txt"), std::string::npos);
    EXPECT_NE(log.find(copies[0]), std::string::npos) << log;

    // Never sent: neither the server nor A has B's copy or B's version.
    write_file(A / "later.txt", "later\n");
    sync(*a_);
    sync(*b_);
    EXPECT_EQ(read_file(B / "later.txt"), "later\n");
    EXPECT_TRUE(names_starting(replica() / "docs", "f.txt.conflict-").empty());
    EXPECT_TRUE(names_starting(A / "docs", "f.txt.conflict-").empty());
    EXPECT_EQ(read_file(replica() / "docs/f.txt"), theirs);
    EXPECT_EQ(read_file(A / "docs/f.txt"), theirs);
    EXPECT_EQ(read_file(B / "docs" / copies[0]), mine);
}

}  // namespace
}  // namespace iz::test::e2e
