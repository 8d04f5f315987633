// The hash tree that verification compares: two trees equal by the manifest
// have equal hashes, and two that differ in any one manifest property (one
// at a time) produce exactly that difference, at that path, and nothing
// else.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <functional>

#include "../support/posix_acl.hpp"
#include "replicator/fs/tree_hash.hpp"
#include "support/tree.hpp"
#include "replicator/fs/verify_compare.hpp"

namespace iz::replicator {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kTime = 1'700'000'000'123'456'789;

void set_time(const fs::path& p, int64_t ns) {
    struct timespec ts[2] = {{ns / 1'000'000'000, ns % 1'000'000'000}, {ns / 1'000'000'000, ns % 1'000'000'000}};
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << p;
}

// Every entry's mtime set to kTime, children before their directories.
void settle_times(const fs::path& root) {
    std::vector<fs::path> all;
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it)
        all.push_back(it->path());
    for (auto it = all.rbegin(); it != all.rend(); ++it) set_time(*it, kTime);
    set_time(root, kTime);
}

void build(const fs::path& root) {
    fs::create_directories(root / "dir/sub");
    test::write_file(root / "dir/file.txt", "some content of the file\n");
    test::write_file(root / "dir/sub/deep", "deep content");
    test::write_file(root / "top", std::string(70000, 'x'), 0600);
    fs::create_symlink("dir/file.txt", root / "link");
    ASSERT_EQ(::setxattr((root / "top").c_str(), "user.note", "v1", 2, 0), 0);
    ASSERT_EQ(::mknod((root / "fifo").c_str(), S_IFIFO | 0644, 0), 0);
    ASSERT_EQ(::mknod((root / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    // A hard link whose other name lies outside "dir": compared as "dir"
    // alone, only its link count tells.
    test::write_file(root / "linked", "two names");
    ASSERT_EQ(::link((root / "linked").c_str(), (root / "dir/linked2").c_str()), 0);
    settle_times(root);
}

class TreeHash : public ::testing::Test {
protected:
    void SetUp() override {
        build(src_.path());
        build(dst_.path());
    }

    int open_dir(const fs::path& p) {
        int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        fds_.push_back(fd);
        return fd;
    }
    void TearDown() override {
        for (int fd : fds_) ::close(fd);
    }

    std::vector<Difference> compare(const std::string& path = "") {
        auto local = tree::hash_path(open_dir(src_.path()), path, {});
        EXPECT_TRUE(local) << local.error().message;
        auto diffs = compare_path(*local, path, ask_local(open_dir(dst_.path())), true, {});
        EXPECT_TRUE(diffs) << diffs.error().message;
        return diffs ? *diffs : std::vector<Difference>{};
    }

    // Exactly one difference, at `path`, with one phrase starting `what`.
    // (A size that differs makes the content differ too: `phrases` 2.)
    void expect_only(const std::string& path, const std::string& what, const std::string& within = "", size_t phrases = 1) {
        auto diffs = compare(within);
        std::string all;
        for (auto& d : diffs) all += d.summary() + "\n";
        ASSERT_EQ(diffs.size(), 1u) << all;
        EXPECT_EQ(diffs[0].path, path) << all;
        ASSERT_EQ(diffs[0].what.size(), phrases) << all;
        EXPECT_TRUE(diffs[0].what[0].starts_with(what)) << all;
    }

    fs::path at(const std::string& rel) const { return dst_.path() / rel; }

    test::TempDir src_{"hash-src"}, dst_{"hash-dst"};
    std::vector<int> fds_;
};

TEST_F(TreeHash, EqualTreesHaveEqualHashesAndNoDifferences) {
    auto a = tree::hash_path(open_dir(src_.path()), "", {});
    auto b = tree::hash_path(open_dir(dst_.path()), "", {});
    ASSERT_TRUE(a && *a && b && *b);
    EXPECT_EQ((*a)->hash, (*b)->hash);
    EXPECT_EQ((*a)->hash.size(), 16u);
    EXPECT_TRUE(compare().empty());
}

TEST_F(TreeHash, ContentChangedWithSizeAndMtimeKept) {
    test::write_file(at("dir/file.txt"), "some content of the filE\n");
    set_time(at("dir/file.txt"), kTime);
    expect_only("dir/file.txt", "content:");
}

TEST_F(TreeHash, EachPropertyAlone) {
    struct Case {
        const char* name;
        std::function<void()> change;
        std::string path, what, within;
        size_t phrases = 1;
    };
    std::vector<Case> cases = {
        {"size", [&] { ASSERT_EQ(::truncate(at("top").c_str(), 69999), 0); set_time(at("top"), kTime); }, "top", "size:", "", 2},
        {"mode", [&] { fs::permissions(at("top"), fs::perms(0640)); }, "top", "mode:", ""},
        {"owner", [&] { ASSERT_EQ(::lchown(at("top").c_str(), 4242, -1), 0); }, "top", "owner:", ""},
        {"mtime", [&] { set_time(at("top"), kTime + 1); }, "top", "mtime:", ""},
        {"directory mtime", [&] { set_time(at("dir/sub"), kTime - 5); }, "dir/sub", "mtime:", ""},
        {"xattr value", [&] { ASSERT_EQ(::setxattr(at("top").c_str(), "user.note", "v2", 2, 0), 0); }, "top", "xattr user.note:", ""},
        {"xattr added", [&] { ASSERT_EQ(::setxattr(at("dir").c_str(), "user.extra", "e", 1, 0), 0); set_time(at("dir"), kTime); }, "dir", "xattr user.extra:", ""},
        {"posix acl", [&] {
             auto acl = test::acl_granting_user(4243);
             ASSERT_EQ(::setxattr(at("dir/sub/deep").c_str(), "system.posix_acl_access", acl.data(), acl.size(), 0), 0);
             // Setting an ACL sets the group bits of the mode to the mask: put them back.
             fs::permissions(at("dir/sub/deep"), fs::perms(0644));
         }, "dir/sub/deep", "xattr system.posix_acl_access:", ""},
        {"symlink target", [&] {
             fs::remove(at("link"));
             fs::create_symlink("dir/sub/deep", at("link"));
             set_time(at("link"), kTime);
             set_time(dst_.path(), kTime);
         }, "link", "symlink target:", ""},
        {"device", [&] {
             fs::remove(at("null"));
             ASSERT_EQ(::mknod(at("null").c_str(), S_IFCHR | 0666, makedev(1, 5)), 0);
             set_time(at("null"), kTime);
             set_time(dst_.path(), kTime);
         }, "null", "device:", ""},
        {"type", [&] {
             fs::remove(at("fifo"));
             test::write_file(at("fifo"), "", 0644);
             set_time(at("fifo"), kTime);
             set_time(dst_.path(), kTime);
         }, "fifo", "type:", ""},
        {"hard links", [&] { fs::remove(at("linked")); set_time(dst_.path(), kTime); }, "dir/linked2", "hard links:", "dir"},
        {"missing", [&] { fs::remove(at("dir/sub/deep")); set_time(at("dir/sub"), kTime); }, "dir/sub/deep", "missing on the replica", ""},
        {"extra", [&] { test::write_file(at("dir/sub/more"), "x"); set_time(at("dir/sub/more"), kTime); set_time(at("dir/sub"), kTime); }, "dir/sub/more", "extra on the replica", ""},
    };
    for (auto& c : cases) {
        SCOPED_TRACE(c.name);
        fs::remove_all(dst_.path() / "dir");
        for (auto& e : fs::directory_iterator(dst_.path())) fs::remove_all(e.path());
        build(dst_.path());
        ASSERT_TRUE(compare().empty()) << "rebuilt replica differs before the change";
        c.change();
        expect_only(c.path, c.what, c.within, c.phrases);
    }
}

// Four names of two files, grouped otherwise on the replica: link counts,
// contents and times all equal, only the grouping tells.
TEST_F(TreeHash, HardLinkGroupingIsCompared) {
    for (auto* root : {&src_, &dst_}) {
        fs::create_directories(root->path() / "g");
        test::write_file(root->path() / "g/x1", "same");
        test::write_file(root->path() / "g/y1", "same");
    }
    auto link = [](const fs::path& root, const char* from, const char* to) {
        ASSERT_EQ(::link((root / from).c_str(), (root / to).c_str()), 0);
    };
    link(src_.path(), "g/x1", "g/x2");
    link(src_.path(), "g/y1", "g/y2");
    link(dst_.path(), "g/x1", "g/y2");
    link(dst_.path(), "g/y1", "g/x2");
    for (auto* root : {&src_, &dst_})
        for (auto* name : {"g/x1", "g/x2", "g/y1", "g/y2", "g"}) set_time(root->path() / name, kTime);
    auto diffs = compare("g");
    std::string all;
    for (auto& d : diffs) all += d.summary() + "\n";
    ASSERT_EQ(diffs.size(), 3u) << all;
    EXPECT_EQ(diffs[0].summary(), "g/x2: hard-link group (its first name): 'g/x1' on the source, none on the replica");
    EXPECT_EQ(diffs[1].summary(), "g/y1: hard-link group (its first name): none on the source, 'g/x2' on the replica");
    EXPECT_EQ(diffs[2].summary(), "g/y2: hard-link group (its first name): 'g/y1' on the source, 'g/x1' on the replica");
    EXPECT_TRUE(tree::walk_order_less("a/x", "a-b"));
    EXPECT_FALSE(tree::walk_order_less("a-b", "a/x"));
    EXPECT_TRUE(tree::walk_order_less("", "a"));
    EXPECT_TRUE(tree::walk_order_less("a", "a/b"));
    EXPECT_FALSE(tree::walk_order_less("a/b", "a/b"));
}

TEST_F(TreeHash, ConflictCopiesAndExcludedPathsAreLeftOut) {
    test::write_file(at("dir/file.txt.conflict-srv1-20261207T074512Z"), "the server's own");
    test::write_file(at("dir/file.txt.conflict-srv1-20261207T074512Z-2"), "the server's own too");
    test::write_file(src_.path() / "dir/cache.tmp", "not replicated");
    set_time(at("dir"), kTime);
    set_time(src_.path() / "dir", kTime);
    auto local = tree::hash_path(open_dir(src_.path()), "", tree::WalkOptions{.excludes = {"*.tmp"}});
    ASSERT_TRUE(local);
    auto diffs = compare_path(*local, "", ask_local(open_dir(dst_.path())), true, {"*.tmp"});
    ASSERT_TRUE(diffs) << diffs.error().message;
    EXPECT_TRUE(diffs->empty()) << (*diffs)[0].summary();
    EXPECT_TRUE(tree::is_conflict_copy("a.conflict-host-with-dashes-20261207T074512Z-12"));
    EXPECT_FALSE(tree::is_conflict_copy("a.conflict-notes.txt"));
}

TEST_F(TreeHash, PathsThroughSymlinksAreRefused) {
    auto diffs = compare_path(std::nullopt, "link/x", ask_local(open_dir(dst_.path())), true, {});
    ASSERT_FALSE(diffs);
    EXPECT_NE(diffs.error().message.find("symlink"), std::string::npos) << diffs.error().message;
}

TEST_F(TreeHash, DeepTreesAreWalkedByDescriptors) {
    // Deeper than PATH_MAX allows in one path string.
    auto deep = [](const fs::path& root) {
        int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY);
        for (int i = 0; i < 300; ++i) {
            std::string name(20, static_cast<char>('a' + i % 26));
            ASSERT_EQ(::mkdirat(fd, name.c_str(), 0755), 0);
            int next = ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY);
            ::close(fd);
            fd = next;
        }
        ::close(fd);
    };
    deep(src_.path());
    // One descriptor per level, not two: under a limit of 400 descriptors
    // the 300 levels are walked.
    struct rlimit was{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &was), 0);
    struct rlimit low = was;
    low.rlim_cur = 400;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    auto local = tree::hash_path(open_dir(src_.path()), "", {});
    ::setrlimit(RLIMIT_NOFILE, &was);
    ASSERT_TRUE(local) << local.error().message;
    ASSERT_TRUE(*local);
    size_t depth = 0;
    for (const tree::Node* n = tree::find_node(**local, "", "aaaaaaaaaaaaaaaaaaaa"); n && !n->children.empty(); n = &n->children[0])
        ++depth;
    EXPECT_EQ(depth, 299u);
    for (const tree::Node* n = &**local; n; n = n->children.empty() ? nullptr : &n->children[0])
        ASSERT_NE(n->meta.type, '!') << n->name << ": " << n->meta.target.substr(n->meta.target.size() > 120 ? n->meta.target.size() - 120 : 0);
}

TEST(TreeHashEncoding, MetaRoundTripsAndGarbageFails) {
    tree::EntryMeta m{.type = 'f', .mode = 0644, .uid = 1, .gid = 2, .mtime_ns = -5, .size = 9, .content = std::string(16, 'c'),
                      .target = "", .nlink = 3, .rdev = 0, .xattrs = {{"user.a", std::string("\0b", 2)}}};
    auto back = tree::decode(tree::encode(m));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, m);
    auto bytes = tree::encode(m);
    for (size_t cut = 0; cut < bytes.size(); ++cut) EXPECT_FALSE(tree::decode(bytes.substr(0, cut))) << cut;
    EXPECT_FALSE(tree::decode(bytes + "x"));
}

}  // namespace
}  // namespace iz::replicator
