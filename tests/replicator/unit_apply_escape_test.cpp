// Hostile paths straight into the Applier: "..", absolute paths, symlinks
// pointing outside the root (and writes through them). A path that is
// malformed or leaves the root is refused (the connection goes); one that
// meets a symlink on the replica is rejected: nothing of it is applied, and
// the records after it are (a symlink where a directory should be is what
// the replica holds, which an honest source can meet too). Either way the
// canary directory beside the root stays exactly as it was (checked in
// TearDown).
#include <sys/stat.h>

#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

class ApplyEscape : public ApplyTest {
protected:
    void SetUp() override {
        ApplyTest::SetUp();
        // Planted by an earlier (legitimate) symlink op: links are data.
        ok(OpMsg{.lsn = 1, .kind = OpKind::symlink, .path = "out_abs", .target = canary_.string()});
        ok(OpMsg{.lsn = 2, .kind = OpKind::symlink, .path = "out_rel", .target = "../canary"});
        ok(OpMsg{.lsn = 3, .kind = OpKind::symlink, .path = "out_file", .target = (canary_ / "file").string()});
        ok(OpMsg{.lsn = 4, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    }
    // Every way of naming the canary's file or directory from the wire:
    // by the path itself, and through a symlink the replica holds.
    std::vector<std::string> escaping_paths() const {
        return {"../canary/file", "d/../../canary/file", (canary_ / "file").string(), "/etc/x"};
    }
    std::vector<std::string> paths_through_links() const {
        return {"out_abs/file", "out_rel/file", "out_abs/dir/inner", "out_rel/dir/new"};
    }
    // What every op kind on `p` must come to.
    void every_kind(const std::string& p, Outcome want, uint64_t& lsn) {
        for (int k = 1; k <= static_cast<int>(proto::kLastOpKind); ++k) {
            OpMsg op{.lsn = ++lsn, .kind = static_cast<OpKind>(k), .path = p, .target = "inside", .mode = 0100777u,
                     .uid = 4242u, .mtime_ns = t(1), .size = 0, .xattr_name = "user.evil", .xattr_value = "x",
                     .extents = {proto::make_extent(0, "PWNED", false)}};
            if (op.kind == OpKind::mknod) op.mode = S_IFIFO | 0666u;
            if (op.kind == OpKind::symlink) op.target = "/etc/shadow";
            bool part = op.kind == OpKind::content_data || op.kind == OpKind::content_end;
            // Parts of content without their beginning are broken framing,
            // whatever their path.
            auto r = expect(part ? Outcome::refused : want, op);
            if (want == Outcome::rejected && !part) {
                EXPECT_NE(r.message.find("goes through a symlink, which is never followed"), std::string::npos) << r.message;
            }
            applier_->abort_content();
        }
    }
};

TEST_F(ApplyEscape, EveryOpKindRefusesEscapingPaths) {
    const bool etc_x_existed = fs::exists(fs::symlink_status("/etc/x"));
    const std::string inside = test::listing(root_);
    uint64_t lsn = 10;
    for (auto& p : escaping_paths()) every_kind(p, Outcome::refused, lsn);
    EXPECT_EQ(test::listing(root_), inside) << "something was created inside from an escaping path";
    EXPECT_EQ(fs::exists(fs::symlink_status("/etc/x")), etc_x_existed);
}

TEST_F(ApplyEscape, EveryOpKindRejectsPathsThroughASymlink) {
    const std::string inside = test::listing(root_);
    uint64_t lsn = 10;
    for (auto& p : paths_through_links()) every_kind(p, Outcome::rejected, lsn);
    EXPECT_EQ(test::listing(root_), inside) << "something was created inside from a path through a symlink";
    // The stream goes on: what follows is applied, and counts as progress.
    ok(content_ops(++lsn, "after", "after", t(2)));
    EXPECT_EQ(test::read_file(at("after")), "after");
    EXPECT_EQ(applier_->resume_lsn(), lsn);
}

TEST_F(ApplyEscape, EscapingTargetsOfRenameAndLinkRefused) {
    ok(content_ops(10, "mine", "data", t(1)));
    // Each at an LSN of its own: one at or below an LSN already applied
    // would be a replay, where a path through a symlink is no fault.
    uint64_t lsn = 11;
    auto each = [&](const std::string& p, Outcome want) {
        expect(want, OpMsg{.lsn = lsn++, .kind = OpKind::rename, .path = "mine", .target = p});
        expect(want, OpMsg{.lsn = lsn++, .kind = OpKind::link, .path = "mine", .target = p});
        // The source side too: stealing the canary into the root.
        expect(want, OpMsg{.lsn = lsn++, .kind = OpKind::rename, .path = p, .target = "stolen"});
        expect(want, OpMsg{.lsn = lsn++, .kind = OpKind::link, .path = p, .target = "stolen"});
    };
    for (auto& p : escaping_paths()) each(p, Outcome::refused);
    for (auto& p : paths_through_links()) each(p, Outcome::rejected);
    EXPECT_EQ(test::read_file(at("mine")), "data");
    EXPECT_FALSE(fs::exists(fs::symlink_status(at("stolen"))));
}

// Content for a name the replica holds as a symlink is never written
// through it, and never replaces it either (apply_content.cpp says why):
// rejected, with the reason, and the stream goes on.
TEST_F(ApplyEscape, ContentForAFinalSymlinkNeitherWritesThroughNorReplacesIt) {
    OpMsg w{.lsn = 10, .kind = OpKind::write, .path = "out_file", .extents = {proto::make_extent(0, "PWNED", false)}};
    auto r = expect(Outcome::rejected, w);
    EXPECT_NE(r.message.find("holds a symlink there"), std::string::npos) << r.message;
    expect(Outcome::rejected, OpMsg{.lsn = 11, .kind = OpKind::truncate, .path = "out_file", .size = 0});
    auto whole = content_ops(12, "out_file", std::string(10000, 'r'), t(1), 4096);
    expect(Outcome::rejected, whole.front());
    for (size_t i = 1; i < whole.size(); ++i) expect(Outcome::skipped, whole[i]);
    EXPECT_TRUE(fs::is_symlink(at("out_file")));
    EXPECT_EQ(fs::read_symlink(at("out_file")), canary_ / "file");
    EXPECT_EQ(test::listing(root_), "d\nout_abs\nout_file\nout_rel\n") << "a temporary was left behind";
    ok(content_ops(13, "after", "after", t(2)));
    EXPECT_EQ(applier_->resume_lsn(), 13u);
}

TEST_F(ApplyEscape, OperationsOnAFinalSymlinkActOnTheLinkItself) {
    // Attributes go to the link, not to what it points at.
    ok(OpMsg{.lsn = 11, .kind = OpKind::setattr, .path = "out_abs", .mode = 040777u, .uid = 4242u, .mtime_ns = t(2)});
    struct stat st{};
    ASSERT_EQ(::lstat(at("out_abs").c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));
    EXPECT_EQ(st.st_uid, 4242u);
    // Extended attributes: not on a symlink (skipped, the canary untouched).
    expect(Outcome::skipped, OpMsg{.lsn = 12, .kind = OpKind::setxattr, .path = "out_abs", .xattr_name = "user.evil", .xattr_value = "x"});
    // A hard link to the link is a second link, not to the canary.
    ok(OpMsg{.lsn = 13, .kind = OpKind::link, .path = "out_rel", .target = "hl"});
    EXPECT_TRUE(fs::is_symlink(at("hl")));
    // Block hashes do not follow it.
    auto h = applier_->hashes(proto::HashRequest{.id = 1, .path = "out_rel"});
    ASSERT_TRUE(h);
    EXPECT_FALSE(h->exists);
    // mkdir, unlink and rmdir replace or remove the link, never its target.
    ok(OpMsg{.lsn = 14, .kind = OpKind::mkdir, .path = "out_rel", .mode = 040700u});
    EXPECT_TRUE(fs::is_directory(fs::symlink_status(at("out_rel"))));
    ok(OpMsg{.lsn = 15, .kind = OpKind::unlink, .path = "out_abs"});
    EXPECT_FALSE(fs::exists(fs::symlink_status(at("out_abs"))));
    expect(Outcome::skipped, OpMsg{.lsn = 16, .kind = OpKind::rmdir, .path = "hl"});
}

TEST_F(ApplyEscape, DirectorySwappedForASymlinkBehindOurBack) {
    ok(OpMsg{.lsn = 10, .kind = OpKind::mkdir, .path = "sub", .mode = 040755u});
    // Someone on the server replaces the directory with a link outside.
    fs::remove(at("sub"));
    fs::create_symlink(canary_ / "dir", at("sub"));
    ASSERT_TRUE(applier_->finish_batch());  // the next frames come in a batch of their own
    expect(Outcome::rejected, OpMsg{.lsn = 11, .kind = OpKind::create, .path = "sub/new", .mode = 0100644u});
    auto content = content_ops(12, "sub/inner", std::string(10000, 'P'), t(1), 4096);
    expect(Outcome::rejected, content.front());
    for (size_t i = 1; i < content.size(); ++i) expect(Outcome::skipped, content[i]);
    expect(Outcome::rejected, OpMsg{.lsn = 13, .kind = OpKind::unlink, .path = "sub/inner"});
    // Block hashes describe nothing there (nothing of outside is read).
    auto h = applier_->hashes(proto::HashRequest{.id = 1, .path = "sub/inner"});
    ASSERT_TRUE(h) << h.error().message;
    EXPECT_FALSE(h->exists);
    EXPECT_TRUE(h->hashes.empty());
    // The records after them are applied.
    ok(content_ops(14, "after", "after", t(2)));
    EXPECT_EQ(applier_->resume_lsn(), 14u);
    EXPECT_TRUE(fs::is_symlink(at("sub")));
}

// Within one batch the applier keeps the directory it made open: entries go
// into that directory, wherever it is now, and never through the link that
// took its name (the canary is checked after every test).
TEST_F(ApplyEscape, DirectorySwappedWithinABatchIsNeverLeftThroughTheLink) {
    ok(OpMsg{.lsn = 10, .kind = OpKind::mkdir, .path = "sub", .mode = 040755u});
    fs::rename(at("sub"), dir_ / "moved");
    fs::create_symlink(canary_ / "dir", at("sub"));
    auto r = applier_->apply(OpMsg{.lsn = 11, .kind = OpKind::create, .path = "sub/new", .mode = 0100644u});
    EXPECT_NE(outcome_name(r.outcome), outcome_name(Outcome::refused)) << r.message;
    EXPECT_TRUE(fs::exists(dir_ / "moved/new"));
    EXPECT_FALSE(fs::exists(canary_ / "dir/new"));
    ASSERT_TRUE(applier_->finish_batch());
    expect(Outcome::rejected, OpMsg{.lsn = 12, .kind = OpKind::create, .path = "sub/other", .mode = 0100644u});
}

// A source may well hold the name the server keeps its state under (in the
// fileset root): nothing of it is applied, but it is no attack either, and
// refusing it dropped the connection over and over, the agent sending the
// same record again for ever. It is rejected (reported), and what follows
// is applied.
TEST_F(ApplyEscape, ReservedTopLevelNameRejectedAndTheStreamGoesOn) {
    reopen(".intermezzo");
    for (std::string p : {".intermezzo", ".intermezzo/agent/fs/applied"}) {
        expect(Outcome::rejected, OpMsg{.lsn = 20, .kind = OpKind::create, .path = p, .mode = 0100644u});
        expect(Outcome::rejected, OpMsg{.lsn = 21, .kind = OpKind::mkdir, .path = p, .mode = 040755u});
    }
    ok(content_ops(22, "x", "x", t(1)));
    expect(Outcome::rejected, OpMsg{.lsn = 23, .kind = OpKind::rename, .path = "x", .target = ".intermezzo"});
    // Content for such a path: its beginning is rejected, the rest skipped with it.
    auto content = content_ops(24, ".intermezzo/agent/fs/applied", std::string(10000, 'z'), t(2), 4096);
    expect(Outcome::rejected, content.front());
    for (size_t i = 1; i < content.size(); ++i) expect(Outcome::skipped, content[i]);
    auto hashes = applier_->hashes(proto::HashRequest{.id = 1, .path = ".intermezzo/agent/fs/applied"});
    ASSERT_TRUE(hashes) << hashes.error().message;
    EXPECT_FALSE(hashes->exists);
    ok(content_ops(25, "y", "after", t(3)));
    EXPECT_FALSE(fs::exists(at(".intermezzo")));
    EXPECT_EQ(test::read_file(at("x")), "x");
    EXPECT_EQ(test::read_file(at("y")), "after");
    EXPECT_EQ(applier_->resume_lsn(), 25u);
}

}  // namespace
}  // namespace iz::replicator::test_apply
