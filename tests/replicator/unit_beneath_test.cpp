// Resolving wire paths strictly beneath a root: the lexical check, then
// openat2 with RESOLVE_BENEATH and no symlinks at all.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <filesystem>

#include "replicator/fs/beneath.hpp"
#include "support/tree.hpp"

namespace iz::replicator {
namespace {

namespace fs = std::filesystem;

TEST(BeneathLexical, OrdinaryPathsAccepted) {
    for (std::string_view p : {"a", "a/b/c", "..a", "a..", "a/...", ".hidden", "a/.b", "sp ace/x", "\xff\xfe"})
        EXPECT_TRUE(check_wire_path(p, false)) << p;
    EXPECT_TRUE(check_wire_path(std::string(255, 'n'), false));
    EXPECT_TRUE(check_wire_path("", true));
}

TEST(BeneathLexical, EscapesAndMalformedPathsRefused) {
    std::vector<std::string> bad = {"..",       "../x",   "a/../b", "a/..",     "/etc/x", "/",    ".",
                                    "./a",      "a/./b",  "a//b",   "a/",       "//x",    "x/.",  std::string("a\0b", 3),
                                    std::string(256, 'n'), "a/" + std::string(256, 'n'), std::string(4096, 'a')};
    for (auto& p : bad) {
        auto s = check_wire_path(p, true);
        ASSERT_FALSE(s) << "'" << p << "' accepted";
        EXPECT_TRUE(is_refusal(s.error())) << p;
    }
    // The root itself only where the operation allows it.
    auto s = check_wire_path("", false);
    ASSERT_FALSE(s);
    EXPECT_TRUE(is_refusal(s.error()));
}

// Deeper than the server takes, but well formed: rejected, not refused.
TEST(BeneathLexical, APathLongerThanTheServerTakesIsRejected) {
    std::string deep;
    while (deep.size() <= kMaxWirePath) deep += std::string(255, 'n') + "/";
    deep += "f";
    auto s = check_wire_path(deep, false);
    ASSERT_FALSE(s);
    EXPECT_TRUE(is_rejection(s.error())) << s.error().message;
    // Malformed as well: refused.
    s = check_wire_path(deep + "/../x", false);
    ASSERT_FALSE(s);
    EXPECT_TRUE(is_refusal(s.error()));
}

TEST(BeneathLexical, ReservedTopRefusedOnlyAtTheTop) {
    EXPECT_FALSE(check_wire_path(".intermezzo", false, ".intermezzo"));
    EXPECT_FALSE(check_wire_path(".intermezzo/agent/applied", false, ".intermezzo"));
    EXPECT_TRUE(check_wire_path("a/.intermezzo", false, ".intermezzo"));
    EXPECT_TRUE(check_wire_path(".intermezzo2", false, ".intermezzo"));
}

class BeneathFs : public ::testing::Test {
protected:
    void SetUp() override {
        fs::create_directories(dir_ / "root/sub/deeper");
        fs::create_directories(dir_ / "outside");
        test::write_file(dir_ / "outside/secret", "secret");
        test::write_file(dir_ / "root/sub/file", "inside");
        fs::create_symlink(dir_ / "outside", dir_ / "root/abs_dir_link");
        fs::create_symlink("../outside", dir_ / "root/rel_dir_link");
        fs::create_symlink("sub", dir_ / "root/inner_link");  // stays inside, still never followed
        fs::create_symlink(dir_ / "outside/secret", dir_ / "root/file_link");
        root_ = ::open((dir_ / "root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_GE(root_, 0);
        before_ = test::manifest(dir_ / "outside");
    }
    void TearDown() override {
        ::close(root_);
        EXPECT_EQ(test::manifest(dir_ / "outside"), before_) << "something outside the root changed";
    }
    test::TempDir dir_{"beneath"};
    int root_ = -1;
    std::string before_;
};

TEST_F(BeneathFs, OpensWhatIsBeneath) {
    auto f = open_beneath(root_, "sub/file", O_RDONLY);
    ASSERT_TRUE(f) << f.error().message;
    char buf[16] = {};
    EXPECT_EQ(::read(f->get(), buf, sizeof buf), 6);
    EXPECT_STREQ(buf, "inside");
    auto self = open_beneath(root_, "", O_RDONLY | O_DIRECTORY);
    ASSERT_TRUE(self);
    struct stat a{}, b{};
    ::fstat(self->get(), &a);
    ::fstat(root_, &b);
    EXPECT_EQ(a.st_ino, b.st_ino);
}

TEST_F(BeneathFs, SymlinksAreNeverTraversed) {
    for (std::string_view p : {"abs_dir_link/secret", "rel_dir_link/secret", "inner_link/file"}) {
        auto f = open_beneath(root_, p, O_RDONLY);
        ASSERT_FALSE(f) << p;
        // Rejected, not refused: the replica holds the link, and an honest
        // source may well name a path through it (applying nothing of it
        // must not stop the stream).
        EXPECT_TRUE(is_rejection(f.error())) << p << ": " << f.error().message;
        EXPECT_NE(f.error().message.find("goes through a symlink"), std::string::npos) << f.error().message;
    }
    // Nor followed at the end, nor created through.
    auto f = open_beneath(root_, "file_link", O_RDONLY);
    ASSERT_FALSE(f);
    EXPECT_TRUE(is_rejection(f.error())) << f.error().message;
    auto w = open_beneath(root_, "file_link", O_WRONLY | O_TRUNC);
    ASSERT_FALSE(w);
    auto c = open_beneath(root_, "abs_dir_link/new", O_WRONLY | O_CREAT | O_EXCL, 0644);
    ASSERT_FALSE(c);
    EXPECT_TRUE(is_rejection(c.error()));
    EXPECT_FALSE(fs::exists(dir_ / "outside/new"));
}

TEST_F(BeneathFs, FinalSymlinkOnlyAsOPathNoFollow) {
    auto node = open_beneath(root_, "file_link", O_PATH | O_NOFOLLOW);
    ASSERT_TRUE(node) << node.error().message;
    struct stat st{};
    ASSERT_EQ(::fstat(node->get(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST_F(BeneathFs, DotDotAndAbsoluteRefusedByTheKernelToo) {
    // Even without the lexical check, openat2 itself refuses the escape.
    for (std::string_view p : {"../outside/secret", "sub/../../outside/secret", "/etc/passwd"}) {
        auto f = open_beneath(root_, p, O_RDONLY);
        ASSERT_FALSE(f) << p;
        EXPECT_TRUE(is_refusal(f.error())) << p << ": " << f.error().message;
    }
    // ".." that stays inside is not an escape for the kernel.
    EXPECT_TRUE(open_beneath(root_, "sub/deeper/../file", O_RDONLY));
}

TEST_F(BeneathFs, OpenParentSplitsAndRefuses) {
    auto p = open_parent(root_, "sub/deeper/name");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->name, "name");
    auto top = open_parent(root_, "top");
    ASSERT_TRUE(top);
    EXPECT_EQ(top->name, "top");
    auto root = open_parent(root_, "");
    ASSERT_TRUE(root);
    EXPECT_EQ(root->name, ".");
    auto missing = open_parent(root_, "nope/name");
    ASSERT_FALSE(missing);
    EXPECT_FALSE(is_refusal(missing.error()));
    EXPECT_EQ(missing.error().sys_errno, ENOENT);
    auto through = open_parent(root_, "abs_dir_link/secret");
    ASSERT_FALSE(through);
    EXPECT_TRUE(is_rejection(through.error())) << through.error().message;
}

// A source may hold paths longer than PATH_MAX; the kernel takes no such
// path in one call, so they are walked a run of components at a time, each
// run still beneath the last and never through a symlink.
TEST_F(BeneathFs, PathsLongerThanPathMaxAreWalkedBeneathTheRoot) {
    std::string rel;
    int dir = ::dup(root_);
    for (int level = 0; level < 30; ++level) {
        std::string name(200, static_cast<char>('a' + level));
        ASSERT_EQ(::mkdirat(dir, name.c_str(), 0755), 0);
        int next = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ::close(dir);
        dir = next;
        rel += (rel.empty() ? "" : "/") + name;
    }
    ASSERT_GT(rel.size(), 6000u);
    EXPECT_TRUE(check_wire_path(rel + "/f", false));
    auto made = open_beneath(root_, rel + "/f", O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_TRUE(made) << made.error().message;
    EXPECT_EQ(::write(made->get(), "deep", 4), 4);
    struct stat st{};
    ASSERT_EQ(::fstatat(dir, "f", &st, 0), 0);
    EXPECT_EQ(st.st_size, 4);
    auto parent = open_parent(root_, rel + "/f");
    ASSERT_TRUE(parent) << parent.error().message;
    EXPECT_EQ(parent->name, "f");
    // A symlink past the first run is rejected like one in it.
    ASSERT_EQ(::symlinkat((dir_ / "outside").c_str(), dir, "out"), 0);
    auto escaped = open_beneath(root_, rel + "/out/secret", O_RDONLY);
    ASSERT_FALSE(escaped);
    EXPECT_TRUE(is_rejection(escaped.error())) << escaped.error().message;
    auto missing = open_beneath(root_, rel + "/nothing/f", O_RDONLY);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().sys_errno, ENOENT);
    ::close(dir);
}

TEST(BeneathSplit, SplitParent) {
    EXPECT_EQ(split_parent("a/b/c"), std::make_pair(std::string_view("a/b"), std::string_view("c")));
    EXPECT_EQ(split_parent("c"), std::make_pair(std::string_view(), std::string_view("c")));
}

}  // namespace
}  // namespace iz::replicator
