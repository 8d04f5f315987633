// Changes made on the server behind the replicator's back are conflicts:
// the server's version is kept beside the file as NAME.conflict-HOST-TIME
// and reported, never silently overwritten. And the applied LSNs survive a
// restart.
#include <sys/stat.h>

#include <fmt/format.h>

#include <functional>
#include <regex>

#include "applied_state.hpp"
#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

using test::read_file;

class ApplyConflict : public ApplyTest {
protected:
    // A file the replicator wrote, then changed on the server by someone else.
    void replicate_then_tamper(const std::string& path, const std::string& server_version) {
        ok(content_ops(1, path, "source version 1", t(1)));
        test::write_file(at(path), server_version);
    }
    void expect_one_conflict(const ApplyResult& r, uint64_t lsn, const std::string& path) {
        ASSERT_EQ(r.conflicts.size(), 1u);
        auto& c = r.conflicts[0];
        EXPECT_EQ(c.lsn, lsn);
        EXPECT_EQ(c.path, path);
        EXPECT_FALSE(c.message.empty());
        std::string leaf = fs::path(path).filename().string();
        std::regex pattern(std::regex_replace(leaf, std::regex(R"([.])"), R"(\.)") +
                           R"(\.conflict-testhost-\d{8}T\d{6}Z)");
        EXPECT_TRUE(std::regex_match(fs::path(c.conflict_copy).filename().string(), pattern)) << c.conflict_copy;
        EXPECT_EQ(fs::path(c.conflict_copy).parent_path(), fs::path(path).parent_path());
    }
};

TEST_F(ApplyConflict, RangeWriteOverTamperedFileKeepsTheServerVersion) {
    ok(OpMsg{.lsn = 0, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    replicate_then_tamper("d/f.txt", "edited on the server");
    OpMsg w{.lsn = 2, .kind = OpKind::write, .path = "d/f.txt", .mtime_ns = t(2)};
    w.extents = {proto::make_extent(0, "SOURCE", false)};
    auto r = expect(Outcome::applied, w);
    expect_one_conflict(r, 2, "d/f.txt");
    EXPECT_EQ(read_file(at(r.conflicts[0].conflict_copy)), "edited on the server");
    // The source's change is applied to the file itself.
    EXPECT_TRUE(read_file(at("d/f.txt")).starts_with("SOURCE"));
    // Once kept, the file is the replicator's again: no second conflict.
    w.lsn = 3;
    EXPECT_TRUE(apply(w).conflicts.empty());
}

TEST_F(ApplyConflict, ContentOverTamperedFile) {
    replicate_then_tamper("f", "server edit");
    auto ops = content_ops(2, "f", "source version 2", t(2));
    auto r = expect(Outcome::applied, ops[0]);
    expect_one_conflict(r, 2, "f");
    ok(ops.back());
    EXPECT_EQ(read_file(at("f")), "source version 2");
    EXPECT_EQ(read_file(at(r.conflicts[0].conflict_copy)), "server edit");
}

TEST_F(ApplyConflict, FileReplacedByAnotherInode) {
    ok(content_ops(1, "f", "source", t(1)));
    fs::remove(at("f"));
    test::write_file(at("f"), "source");  // same bytes, but not our file any more
    auto r = expect(Outcome::applied, OpMsg{.lsn = 2, .kind = OpKind::truncate, .path = "f", .size = 2});
    expect_one_conflict(r, 2, "f");
    EXPECT_EQ(read_file(at(r.conflicts[0].conflict_copy)), "source");
}

TEST_F(ApplyConflict, UnlinkOfTamperedFileMovesItAside) {
    replicate_then_tamper("f", "keep me");
    auto r = expect(Outcome::applied, OpMsg{.lsn = 2, .kind = OpKind::unlink, .path = "f"});
    expect_one_conflict(r, 2, "f");
    EXPECT_FALSE(fs::exists(at("f")));
    EXPECT_EQ(read_file(at(r.conflicts[0].conflict_copy)), "keep me");
}

TEST_F(ApplyConflict, RenameOverTamperedTarget) {
    replicate_then_tamper("target", "server's target");
    ok(content_ops(2, "src", "incoming", t(2)));
    auto r = expect(Outcome::applied, OpMsg{.lsn = 3, .kind = OpKind::rename, .path = "src", .target = "target", .replaced = true});
    expect_one_conflict(r, 3, "target");
    EXPECT_EQ(read_file(at("target")), "incoming");
    EXPECT_EQ(read_file(at(r.conflicts[0].conflict_copy)), "server's target");
}

TEST_F(ApplyConflict, UntamperedAndUnknownFilesAreNotConflicts) {
    ok(content_ops(1, "mine", "v1", t(1)));
    ok(content_ops(2, "mine", "v2", t(2)));
    // A file the replicator never wrote is adopted.
    test::write_file(at("preexisting"), "was here first");
    auto r = expect(Outcome::applied, content_ops(3, "preexisting", "source", t(3)).front());
    EXPECT_TRUE(r.conflicts.empty());
    EXPECT_EQ(test::listing(root_), "mine\npreexisting\n");
}

TEST_F(ApplyConflict, MemorySurvivesReopening) {
    ok(content_ops(1, "f", "source", t(1)));
    ASSERT_TRUE(applier_->commit(1));
    reopen();
    test::write_file(at("f"), "changed while the server was down");
    auto r = expect(Outcome::applied, content_ops(2, "f", "source 2", t(2)).front());
    expect_one_conflict(r, 2, "f");
}

TEST_F(ApplyConflict, TwoConflictsTheSameSecondGetDistinctNames) {
    replicate_then_tamper("f", "first server edit");
    auto r1 = expect(Outcome::applied, OpMsg{.lsn = 2, .kind = OpKind::truncate, .path = "f", .mtime_ns = t(2), .size = 1});
    test::write_file(at("f"), "second server edit");
    auto r2 = expect(Outcome::applied, OpMsg{.lsn = 3, .kind = OpKind::truncate, .path = "f", .mtime_ns = t(3), .size = 1});
    ASSERT_EQ(r1.conflicts.size(), 1u);
    ASSERT_EQ(r2.conflicts.size(), 1u);
    EXPECT_NE(r1.conflicts[0].conflict_copy, r2.conflicts[0].conflict_copy);
    EXPECT_EQ(read_file(at(r1.conflicts[0].conflict_copy)), "first server edit");
    EXPECT_EQ(read_file(at(r2.conflicts[0].conflict_copy)), "second server edit");
}

TEST_F(ApplyConflict, DirectoryOfOurOwnUnchangedFilesIsReplacedQuietly) {
    // What a replay of "mkdir a; fill a; rename a b" finds: b already full
    // of the replicator's own files.
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "b", .mode = 040755u});
    ok(OpMsg{.lsn = 2, .kind = OpKind::mkdir, .path = "b/sub", .mode = 040755u});
    ok(content_ops(3, "b/sub/f", "ours", t(1)));
    ok(OpMsg{.lsn = 4, .kind = OpKind::mkdir, .path = "a", .mode = 040755u});
    ok(content_ops(5, "a/g", "incoming", t(2)));
    auto r = expect(Outcome::applied, OpMsg{.lsn = 6, .kind = OpKind::rename, .path = "a", .target = "b"});
    EXPECT_TRUE(r.conflicts.empty());
    EXPECT_EQ(test::listing(root_), "b\nb/g\n");
}

TEST_F(ApplyConflict, DirectoryWithAnythingNotOursIsKeptAside) {
    // A changed file, an unknown file, a symlink, deep down: each keeps the
    // whole replaced directory aside.
    const std::vector<std::function<void(const fs::path&)>> spoilers = {
        [](const fs::path& d) { test::write_file(d / "sub/f", "changed on the server"); },
        [](const fs::path& d) { test::write_file(d / "sub/new", "made on the server"); },
        [](const fs::path& d) { fs::create_symlink("f", d / "sub/link"); },
    };
    uint64_t lsn = 0;
    for (size_t i = 0; i < spoilers.size(); ++i) {
        SCOPED_TRACE(i);
        std::string b = fmt::format("b{}", i), a = fmt::format("a{}", i);
        ok(OpMsg{.lsn = ++lsn, .kind = OpKind::mkdir, .path = b, .mode = 040755u});
        ok(OpMsg{.lsn = ++lsn, .kind = OpKind::mkdir, .path = b + "/sub", .mode = 040755u});
        ok(content_ops(++lsn, b + "/sub/f", "ours", t(1)));
        ok(content_ops(++lsn, b + "/ours-too", "ours", t(1)));
        spoilers[i](at(b));
        ok(OpMsg{.lsn = ++lsn, .kind = OpKind::mkdir, .path = a, .mode = 040755u});
        auto r = expect(Outcome::applied, OpMsg{.lsn = ++lsn, .kind = OpKind::rename, .path = a, .target = b});
        ASSERT_EQ(r.conflicts.size(), 1u);
        // Kept whole: nothing of it was removed before the spoiler was found.
        EXPECT_EQ(read_file(at(r.conflicts[0].conflict_copy + "/ours-too")), "ours");
        EXPECT_TRUE(fs::exists(fs::symlink_status(at(r.conflicts[0].conflict_copy + "/sub/f"))));
        EXPECT_TRUE(fs::is_empty(at(b)));
    }
}

TEST_F(ApplyConflict, LongNamesGetAConflictCopyThatFits) {
    std::string name(255, 'n');
    replicate_then_tamper(name, "server edit");
    auto r = expect(Outcome::applied, OpMsg{.lsn = 2, .kind = OpKind::truncate, .path = name, .size = 0});
    ASSERT_EQ(r.conflicts.size(), 1u);
    EXPECT_LE(r.conflicts[0].conflict_copy.size(), 255u);
    EXPECT_EQ(read_file(at(r.conflicts[0].conflict_copy)), "server edit");
}

TEST_F(ApplyConflict, AppliedLsnsSurviveReopening) {
    EXPECT_EQ(applier_->durable_lsn(), 0u);
    EXPECT_EQ(applier_->resume_lsn(), 0u);
    ok(OpMsg{.lsn = 10, .kind = OpKind::mkdir, .path = "a", .mode = 040755u});
    EXPECT_EQ(applier_->resume_lsn(), 10u);
    ASSERT_TRUE(applier_->commit(10));
    EXPECT_EQ(applier_->durable_lsn(), 10u);
    ok(OpMsg{.lsn = 11, .kind = OpKind::mkdir, .path = "b", .mode = 040755u});
    // Parts of an LSN do not count until its last part.
    auto ops = content_ops(12, "c", std::string(9000, 'c'), t(1));
    ok(ops[0]);
    EXPECT_EQ(applier_->resume_lsn(), 11u);
    reopen();
    // Same boot: the progress (applied, not yet durable) is trusted too.
    EXPECT_EQ(applier_->durable_lsn(), 10u);
    EXPECT_EQ(applier_->resume_lsn(), 11u);
    // The durable LSN never goes backwards.
    ASSERT_TRUE(applier_->commit(5));
    EXPECT_EQ(applier_->durable_lsn(), 10u);
    ASSERT_TRUE(applier_->commit(11));
    reopen();
    EXPECT_EQ(applier_->durable_lsn(), 11u);
    EXPECT_EQ(applier_->resume_lsn(), 11u);
}

// Progress is written once per commit interval, by its first operation:
// after the process dies the agent resumes after that one and replays the
// rest (harmless, and the stop is known to be unclean).
TEST_F(ApplyConflict, ProgressIsWrittenOncePerCommitInterval) {
    auto progress_lsn = [&] {
        auto line = read_file(state_ / "progress");
        return std::stoull(line.substr(0, line.find(' ')));
    };
    ok(OpMsg{.lsn = 10, .kind = OpKind::mkdir, .path = "a", .mode = 040755u});
    ASSERT_TRUE(applier_->commit(10));
    EXPECT_EQ(progress_lsn(), 10u);
    ok(OpMsg{.lsn = 11, .kind = OpKind::mkdir, .path = "b", .mode = 040755u});
    ok(OpMsg{.lsn = 12, .kind = OpKind::mkdir, .path = "c", .mode = 040755u});
    ok(OpMsg{.lsn = 13, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    EXPECT_EQ(applier_->resume_lsn(), 13u);  // this process knows exactly
    EXPECT_EQ(progress_lsn(), 11u);
    ASSERT_TRUE(applier_->commit(13));
    EXPECT_EQ(progress_lsn(), 13u);
    ok(OpMsg{.lsn = 14, .kind = OpKind::mkdir, .path = "e", .mode = 040755u});
    ok(OpMsg{.lsn = 15, .kind = OpKind::mkdir, .path = "f", .mode = 040755u});
    reopen();
    EXPECT_EQ(applier_->durable_lsn(), 13u);
    EXPECT_EQ(applier_->resume_lsn(), 14u);
    // What follows is replayed: nothing changes.
    ok(OpMsg{.lsn = 15, .kind = OpKind::mkdir, .path = "f", .mode = 040755u});
    EXPECT_TRUE(fs::is_directory(at("f")));
}

TEST_F(ApplyConflict, ProgressFromAnotherBootIsNotTrusted) {
    ok(OpMsg{.lsn = 3, .kind = OpKind::mkdir, .path = "a", .mode = 040755u});
    ASSERT_TRUE(applier_->commit(3));
    ok(OpMsg{.lsn = 4, .kind = OpKind::mkdir, .path = "b", .mode = 040755u});
    applier_.reset();
    // As if the machine had rebooted: the progress line names another boot.
    std::string line = "4 00000000-0000-0000-0000-000000000000\n";
    line.resize(64, ' ');
    test::write_file(state_ / "progress", line, 0600);
    reopen();
    EXPECT_EQ(applier_->durable_lsn(), 3u);
    EXPECT_EQ(applier_->resume_lsn(), 3u);
}

TEST_F(ApplyConflict, RefusedAndFailedOpsDoNotAdvanceProgress) {
    ok(OpMsg{.lsn = 5, .kind = OpKind::mkdir, .path = "a", .mode = 040755u});
    expect(Outcome::refused, OpMsg{.lsn = 6, .kind = OpKind::create, .path = "../escape"});
    EXPECT_EQ(applier_->resume_lsn(), 5u);
    // A skipped op (state mismatch) is done with: it counts.
    expect(Outcome::skipped, OpMsg{.lsn = 7, .kind = OpKind::setattr, .path = "missing", .mode = 0100600u});
    EXPECT_EQ(applier_->resume_lsn(), 7u);
}

TEST(AppliedStateFile, UnreadableStateIsAnError) {
    test::TempDir dir("state");
    test::write_file(dir / "applied", "not a number\n", 0600);
    auto st = AppliedState::open(dir.path());
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("unreadable"), std::string::npos);
}

}  // namespace
}  // namespace iz::replicator::test_apply
