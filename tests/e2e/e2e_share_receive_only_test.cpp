// End to end, a receive-only agent's local change meets a forward of the
// same path: the forward is applied (B is a replica of the fileset), but
// the user's version is kept beside it first, as a conflict copy named as
// the server names its own, and reported. Never sent: the server and A
// never see it.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/xattr.h>

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

// Waits until B's status lists `path` among its local changes.
void await_local_change(AgentHost& b, const std::string& path) {
    bool listed = eventually(
        [&] {
            auto paths = b.status().value("local_change_paths", std::vector<std::string>{});
            return std::find(paths.begin(), paths.end(), path) != paths.end();
        },
        std::chrono::seconds(15));
    ASSERT_TRUE(listed) << path << " is not among B's local changes: " << b.status().dump();
}

// `izwatch revert` on B: every kind of local change is undone, the conflict
// copy B kept goes too (and is named), B equals the server and A by the
// full manifest, its status lists no local change, and a later change of
// A still arrives.
TEST_F(ShareReceiveOnly, RevertMakesTheDirectoryEqualToTheFilesetAgain) {
    start(*a_, "a");
    start(*b_, "b", "receive-only");
    const fs::path A = a_->dir(), B = b_->dir();
    fs::create_directories(A / "docs");
    fs::create_directories(A / "sub/deep");
    write_file(A / "docs/f.txt", "the first version\n");
    write_file(A / "docs/g.txt", "g, mode 0644\n");
    write_file(A / "keep.txt", "deleted on B, comes back\n");
    write_file(A / "sub/deep/x.bin", std::string(100000, 'x'));
    fs::create_symlink("docs/f.txt", A / "link");
    ::chmod((A / "docs/g.txt").c_str(), 0644);
    // A history the replay goes through again: renames of a file and of a
    // directory, a name made again after its file moved, a hard link, a
    // removal.
    write_file(A / "docs/old.txt", "moved away\n");
    fs::create_directories(A / "olddir");
    write_file(A / "olddir/in.txt", "in a moved directory\n");
    sync(*a_);
    fs::rename(A / "docs/old.txt", A / "docs/renamed.txt");
    fs::rename(A / "olddir", A / "moved");
    write_file(A / "docs/old.txt", "a new file at the old name\n");
    fs::create_hard_link(A / "docs/renamed.txt", A / "hard.txt");
    write_file(A / "gone.txt", "removed on A\n");
    sync(*a_);
    fs::remove(A / "gone.txt");
    sync(*a_);
    sync(*b_);
    ASSERT_EQ(read_file(B / "sub/deep/x.bin"), std::string(100000, 'x'));
    expect_all_equal("before B's changes");

    // A local edit that a forward then meets: kept as a conflict copy.
    write_file(B / "docs/f.txt", "B's edit, kept as a conflict copy\n");
    await_local_change(*b_, "docs/f.txt");
    write_file(A / "docs/f.txt", "A's second version\n");
    sync(*a_);
    sync(*b_);
    auto copies = names_starting(B / "docs", "f.txt.conflict-");
    ASSERT_EQ(copies.size(), 1u);

    // Edits, additions, deletions, chmods, an xattr, a symlink retargeted.
    write_file(B / "docs/f.txt", "B edits the fileset's version too\n");
    write_file(B / "sub/deep/x.bin", "shorter now");
    write_file(B / "new.txt", "B's addition\n");
    fs::create_directories(B / "newdir/inner");
    write_file(B / "newdir/inner/y.txt", "deep addition\n");
    fs::remove(B / "keep.txt");
    ::chmod((B / "docs/g.txt").c_str(), 0600);
    ::chmod((B / "sub").c_str(), 0700);
    ASSERT_EQ(::setxattr((B / "docs/g.txt").c_str(), "user.b", "only on B", 9, 0), 0);
    fs::remove(B / "link");
    fs::create_symlink("elsewhere", B / "link");
    // A file made a directory, a directory removed, a name made a file,
    // another hard link, a file moved away.
    fs::remove(B / "docs/renamed.txt");
    fs::create_directories(B / "docs/renamed.txt/inside");
    fs::remove_all(B / "moved");
    write_file(B / "moved", "a file where A has a directory\n");
    fs::create_hard_link(B / "hard.txt", B / "hard2.txt");
    fs::rename(B / "docs/old.txt", B / "docs/old-moved.txt");
    await_local_change(*b_, "newdir/inner/y.txt");
    ASSERT_NE(manifest(B), manifest(replica()));

    auto r = b_->izwatch("revert", {"--timeout", "60"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << "\nagent log:\n" << b_->log();
    // What it removed is printed: the additions and the conflict copy.
    EXPECT_NE(r.out.find("removed new.txt"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("removed newdir"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("removed docs/" + copies[0]), std::string::npos) << r.out;
    expect_all_equal("after izwatch revert");
    EXPECT_EQ(read_file(B / "docs/f.txt"), "A's second version\n");
    EXPECT_EQ(read_file(B / "keep.txt"), "deleted on B, comes back\n");
    EXPECT_FALSE(fs::exists(B / "docs" / copies[0]));

    auto st = b_->status();
    EXPECT_EQ(st.value("local_changes", uint64_t{99}), 0u) << st.dump();
    EXPECT_TRUE(st.value("local_change_paths", std::vector<std::string>{"?"}).empty()) << st.dump();

    // A restart finds nothing local either, even after a kill that left
    // the saved tree older than the revert: what the revert removed is
    // journaled, so the rescan does not take it for a change.
    b_->kill9();
    start(*b_, "b", "receive-only");
    sync(*b_);
    st = b_->status();
    EXPECT_EQ(st.value("local_changes", uint64_t{99}), 0u) << st.dump();
    expect_all_equal("after B restarted");

    // Still a replica: a new change of A arrives, and nothing of B's went out.
    write_file(A / "after.txt", "after the revert\n");
    write_file(A / "docs/g.txt", "g, changed after the revert\n");
    sync(*a_);
    sync(*b_);
    EXPECT_EQ(read_file(B / "after.txt"), "after the revert\n");
    EXPECT_EQ(read_file(B / "docs/g.txt"), "g, changed after the revert\n");
    expect_all_equal("after a change of A that followed the revert");
    EXPECT_FALSE(fs::exists(replica() / "new.txt"));
}

// A send-receive agent's local work is sent, not a divergence: revert
// refuses and changes nothing; a server out of reach is said as such.
TEST_F(ShareReceiveOnly, RevertRefusesASendReceiveAgentAndAnUnreachableServer) {
    start(*a_, "a");
    start(*b_, "b", "receive-only");
    const fs::path A = a_->dir(), B = b_->dir();
    write_file(A / "f.txt", "A's\n");
    sync(*a_);
    sync(*b_);
    write_file(A / "mine.txt", "A's work\n");
    auto r = a_->izwatch("revert", {"--timeout", "20"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("receive-only"), std::string::npos) << r.err;
    EXPECT_EQ(read_file(A / "mine.txt"), "A's work\n");

    write_file(B / "local.txt", "B's\n");
    await_local_change(*b_, "local.txt");
    server_->kill9();
    r = b_->izwatch("revert", {"--timeout", "10"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("unreachable"), std::string::npos) << r.err;
    EXPECT_EQ(read_file(B / "local.txt"), "B's\n");
}

}  // namespace
}  // namespace iz::test::e2e
