// Bytes: whole-file content arriving as content_begin, content_data...,
// content_end (atomic, chunked, delta, in place for hard links, abandoned,
// skipped as a whole) and the block hashes a delta is computed against.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <cerrno>
#include <cstring>

#include "support/posix_acl.hpp"
#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

using test::mtime_ns;
using test::read_file;

class ApplyContent : public ApplyTest {};

TEST_F(ApplyContent, WholeFileContentInChunks) {
    std::string data;
    for (int i = 0; i < 50000; ++i) data += static_cast<char>('A' + (i * 7) % 26);
    auto ops = content_ops(1, "f", data, t(1), 4096);
    ASSERT_GT(ops.size(), 10u);
    ops.back().mode = 0100604u;
    ops.back().uid = 1000u;
    ops.back().parent_mtime_ns = t(2);
    ok(ops);
    EXPECT_EQ(read_file(at("f")), data);
    auto st = lstat_of(at("f"));
    EXPECT_EQ(st.st_mode & 07777, 0604u);
    EXPECT_EQ(st.st_uid, 1000u);
    EXPECT_EQ(mtime_ns(at("f")), t(1));
    settle();
    EXPECT_EQ(mtime_ns(root_), t(2));
    EXPECT_EQ(test::listing(root_), "f\n") << "temporary files were left behind";
}

TEST_F(ApplyContent, ContentIsInvisibleUntilItsEnd) {
    ok(content_ops(1, "f", "old version", t(1)));
    ok(OpMsg{.lsn = 2, .kind = OpKind::setxattr, .path = "f", .xattr_name = "user.keep", .xattr_value = "me"});
    auto ops = content_ops(3, "f", std::string(10000, 'n'), t(2), 4096);
    for (size_t i = 0; i + 1 < ops.size(); ++i) {
        ok(ops[i]);
        EXPECT_EQ(read_file(at("f")), "old version") << "after part " << i;
    }
    ok(ops.back());
    EXPECT_EQ(read_file(at("f")), std::string(10000, 'n'));
    // Attributes set by earlier operations survive the replacement.
    EXPECT_EQ(test::xattr(at("f"), "user.keep"), "me");
}

// A replacement is made in the file's directory and so inherits its
// default ACL as an access ACL; the file it replaces was made before that
// default was set and has none, so neither may its new content.
TEST_F(ApplyContent, ContentGainsNoACLFromItsDirectory) {
    fs::create_directories(at("d"));
    ok(content_ops(1, "d/f", "old version", t(1)));
    auto acl = test::acl_granting_user(4001);
    ASSERT_EQ(::setxattr(at("d").c_str(), "system.posix_acl_default", acl.data(), acl.size(), 0), 0)
        << std::strerror(errno);
    ok(content_ops(2, "d/f", std::string(10000, 'n'), t(2)));
    EXPECT_EQ(read_file(at("d/f")), std::string(10000, 'n'));
    EXPECT_EQ(test::xattr(at("d/f"), "system.posix_acl_access"), "");
    // Nor does content that makes a new file there (its ACLs, if the
    // source's has any, follow as xattr records).
    auto fresh = content_ops(3, "d/new", "new file", t(3));
    fresh.back().mode = 0100640u;
    ok(fresh);
    EXPECT_EQ(test::xattr(at("d/new"), "system.posix_acl_access"), "");
    EXPECT_EQ(lstat_of(at("d/new")).st_mode & 07777, 0640u);
}

// The replacement is made in the file's directory and gets an access ACL
// from the directory's default ACL; the file it replaces had none (made
// before the default ACL), so neither may the replacement.
TEST_F(ApplyContent, AReplacementBeneathADefaultAclGetsNoAclTheFileLacked) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    ok(content_ops(2, "d/f", "made before the default ACL", t(1)));
    ASSERT_EQ(test::xattr(at("d/f"), "system.posix_acl_access"), "");
    ok(OpMsg{.lsn = 3, .kind = OpKind::setxattr, .path = "d", .xattr_name = "system.posix_acl_default",
             .xattr_value = iz::test::acl_granting_user(4321)});
    ok(content_ops(4, "d/f", std::string(10000, 'n'), t(2), 4096));
    EXPECT_EQ(read_file(at("d/f")), std::string(10000, 'n'));
    EXPECT_EQ(test::xattr(at("d/f"), "system.posix_acl_access"), "");
    // What the file had, it keeps.
    ok(OpMsg{.lsn = 5, .kind = OpKind::setxattr, .path = "d/f", .xattr_name = "system.posix_acl_access",
             .xattr_value = iz::test::acl_granting_user(1234)});
    ok(content_ops(6, "d/f", std::string(10000, 'o'), t(3), 4096));
    EXPECT_EQ(test::xattr(at("d/f"), "system.posix_acl_access"), iz::test::acl_granting_user(1234));
}

// A new file is linked in under its name directly; a name that turned up
// in the meantime is still replaced atomically. Either way the attributes
// are the source's, whatever the file was made with.
TEST_F(ApplyContent, NewContentLinksInOrReplacesWhatAppeared) {
    auto fresh = content_ops(1, "new", std::string(6000, 'a'), t(1));
    fresh.back().mode = 0100600u;  // what the temporary file is made with
    fresh.back().uid = 0u;
    ok(fresh);
    EXPECT_EQ(read_file(at("new")), std::string(6000, 'a'));
    EXPECT_EQ(lstat_of(at("new")).st_mode & 07777, 0600u);

    auto raced = content_ops(2, "raced", "the source's", t(2));
    raced.back().mode = 0104755u;  // set-uid survives the owner change
    raced.back().uid = 1000u;
    ok(raced.front());
    test::write_file(at("raced"), "made on the server meanwhile", 0644);
    for (size_t i = 1; i < raced.size(); ++i) ok(raced[i]);
    EXPECT_EQ(read_file(at("raced")), "the source's");
    auto st = lstat_of(at("raced"));
    EXPECT_EQ(st.st_mode & 07777, 04755u);
    EXPECT_EQ(st.st_uid, 1000u);
    EXPECT_EQ(mtime_ns(at("raced")), t(2));
    EXPECT_EQ(test::listing(root_), "new\nraced\n") << "temporary files were left behind";
}

// content_begin may carry the mode: the new file is made with it, and
// content_end still sets whatever the umask took away, and the set-id bits
// (never given to a file being written).
TEST_F(ApplyContent, NewContentIsMadeWithTheModeContentBeginCarries) {
    auto made = content_ops(1, "plain", "text", t(1));
    made.front().mode = 0100640u;
    ok(made);
    EXPECT_EQ(lstat_of(at("plain")).st_mode & 07777, 0640u);

    mode_t old_mask = ::umask(077);
    auto masked = content_ops(2, "masked", "text", t(1));
    masked.front().mode = 0102775u;
    masked.back().mode = 0102775u;
    masked.back().uid = 0u;
    ok(masked);
    ::umask(old_mask);
    EXPECT_EQ(lstat_of(at("masked")).st_mode & 07777, 02775u);
}

TEST_F(ApplyContent, ContentDeltaPatchesTheExistingCopy) {
    ok(content_ops(1, "f", "abcdefghij", t(1)));
    OpMsg begin{.lsn = 2, .kind = OpKind::content_begin, .path = "f", .base = ContentBase::existing};
    begin.extents = {proto::make_extent(2, "XY", false)};
    ok(begin);
    ok(OpMsg{.lsn = 2, .kind = OpKind::content_end, .path = "f", .mtime_ns = t(2), .size = 12});
    EXPECT_EQ(read_file(at("f")), std::string("abXYefghij\0\0", 12));
}

TEST_F(ApplyContent, ContentOnHardLinkedFileKeepsTheLinksTogether) {
    ok(content_ops(1, "a", "first", t(1)));
    ok(OpMsg{.lsn = 2, .kind = OpKind::link, .path = "a", .target = "b"});
    ok(content_ops(3, "a", "second version", t(2)));
    EXPECT_EQ(read_file(at("a")), "second version");
    EXPECT_EQ(read_file(at("b")), "second version");
    EXPECT_EQ(lstat_of(at("a")).st_nlink, 2u);
    EXPECT_EQ(lstat_of(at("a")).st_ino, lstat_of(at("b")).st_ino);
}

// Content is only ever for a regular file. After a kill -9 of the agent, a
// late write whose file had lost its name to a device replaced the device
// with a regular file holding the write's bytes, and nothing later made it
// a device again. Whatever the entry (directory, symlink, fifo, socket,
// device), a write, a truncate and whole-file content leave it as it is
// and are rejected with the reason (the agent is told), and the stream
// goes on; the records that change its type apply.
TEST_F(ApplyContent, ContentNeverReplacesAnEntryOfAnotherType) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "dir", .mode = 040755u});
    ok(OpMsg{.lsn = 2, .kind = OpKind::symlink, .path = "link", .target = "dir"});
    ok(OpMsg{.lsn = 3, .kind = OpKind::mknod, .path = "fifo", .mode = S_IFIFO | 0640u});
    ok(OpMsg{.lsn = 4, .kind = OpKind::mknod, .path = "sock", .mode = S_IFSOCK | 0640u});
    ok(OpMsg{.lsn = 5, .kind = OpKind::mknod, .path = "null", .mode = S_IFCHR | 0666u,
             .rdev = static_cast<uint64_t>(makedev(1, 3))});
    ok(OpMsg{.lsn = 6, .kind = OpKind::mknod, .path = "loop", .mode = S_IFBLK | 0660u,
             .rdev = static_cast<uint64_t>(makedev(7, 200))});
    const std::string before = test::manifest(root_);
    struct Kind {
        std::string path, says;
    };
    uint64_t lsn = 10;
    for (auto& k : std::vector<Kind>{{"dir", "a directory"},
                                     {"link", "a symlink"},
                                     {"fifo", "a fifo"},
                                     {"sock", "a socket"},
                                     {"null", "a character device"},
                                     {"loop", "a block device"}}) {
        OpMsg w{.lsn = ++lsn, .kind = OpKind::write, .path = k.path, .mtime_ns = t(1), .size = 5,
                .extents = {proto::make_extent(0, "bytes", false)}};
        auto r = expect(Outcome::rejected, w);
        EXPECT_NE(r.message.find("holds " + k.says + " there"), std::string::npos) << r.message;
        expect(Outcome::rejected, OpMsg{.lsn = ++lsn, .kind = OpKind::truncate, .path = k.path, .size = 0});
        auto whole = content_ops(++lsn, k.path, std::string(9000, 'c'), t(2), 4096);
        r = expect(Outcome::rejected, whole.front());
        EXPECT_NE(r.message.find("holds " + k.says + " there"), std::string::npos) << r.message;
        for (size_t i = 1; i < whole.size(); ++i) expect(Outcome::skipped, whole[i]);
        EXPECT_EQ(test::manifest(root_), before) << k.path << " was replaced";
    }
    EXPECT_EQ(test::listing(root_), "dir\nfifo\nlink\nloop\nnull\nsock\n") << "a temporary was left behind";
    // The records that make a name a regular file again are applied, and
    // then its content.
    ok(OpMsg{.lsn = ++lsn, .kind = OpKind::unlink, .path = "null"});
    ok(OpMsg{.lsn = ++lsn, .kind = OpKind::create, .path = "null", .mode = 0100644u});
    ok(content_ops(++lsn, "null", "a file now", t(3)));
    EXPECT_EQ(read_file(at("null")), "a file now");
    ok(OpMsg{.lsn = ++lsn, .kind = OpKind::rmdir, .path = "dir"});
    ok(content_ops(++lsn, "dir", "was a directory", t(4)));
    EXPECT_EQ(read_file(at("dir")), "was a directory");
    EXPECT_EQ(applier_->resume_lsn(), lsn);
}

// Replayed after an unclean stop, content older than the record that made
// its name a device (applied by the stopped run) is expected: skipped, and
// nothing reported.
TEST_F(ApplyContent, ReplayedContentForANameThatBecameADeviceIsSkipped) {
    ok(content_ops(1, "f", "file", t(1)));
    settle();
    OpMsg w{.lsn = 2, .kind = OpKind::write, .path = "f", .mtime_ns = t(2), .size = 4,
            .extents = {proto::make_extent(0, "FILE", false)}};
    ok(w);
    auto whole = content_ops(3, "f", "WHOLE", t(3));
    ok(whole);
    ok(OpMsg{.lsn = 4, .kind = OpKind::rename, .path = "f", .target = "g"});
    ok(OpMsg{.lsn = 5, .kind = OpKind::mknod, .path = "f", .mode = S_IFCHR | 0666u,
             .rdev = static_cast<uint64_t>(makedev(1, 3))});
    auto killed = std::move(applier_);  // as a kill -9 leaves it
    auto a = Applier::open(ApplierOptions{root_, state_, "testhost", {}});
    ASSERT_TRUE(a) << a.error().message;
    applier_ = std::move(*a);
    auto r = expect(Outcome::skipped, w);
    EXPECT_NE(r.message.find("holds a character device there"), std::string::npos) << r.message;
    for (auto& op : whole) expect(Outcome::skipped, op);
    EXPECT_TRUE(S_ISCHR(lstat_of(at("f")).st_mode));
    EXPECT_EQ(lstat_of(at("f")).st_rdev, makedev(1, 3));
    EXPECT_EQ(read_file(at("g")), "WHOLE");
    (void)killed.release();
}

TEST_F(ApplyContent, ContentPartsWithoutTheirBeginningAreRefused) {
    OpMsg data{.lsn = 5, .kind = OpKind::content_data, .path = "f", .extents = {proto::make_extent(0, "x", false)}};
    expect(Outcome::refused, data);
    expect(Outcome::refused, OpMsg{.lsn = 5, .kind = OpKind::content_end, .path = "f", .size = 1});
    // Begun for another LSN or path.
    ok(content_ops(6, "f", "x", t(1)).front());
    expect(Outcome::refused, OpMsg{.lsn = 7, .kind = OpKind::content_end, .path = "f", .size = 1});
    EXPECT_FALSE(fs::exists(at("f")));
}

TEST_F(ApplyContent, SkippedContentBeginSkipsItsWholeSequence) {
    // The parent is gone (e.g. replaying from the middle of a history whose
    // directory was renamed since): the content cannot land. Its later parts
    // must be skipped with it, not refused: a refusal drops the connection,
    // and the agent would resend the same LSN forever.
    auto ops = content_ops(7, "gone-dir/f", std::string(9000, 'g'), t(1), 4096);
    ASSERT_EQ(ops.size(), 4u);
    for (auto& op : ops) expect(Outcome::skipped, op);
    EXPECT_EQ(applier_->resume_lsn(), 7u);  // done with, like any skipped op
    EXPECT_EQ(test::listing(root_), "");
    // Parts of another LSN are still refused.
    expect(Outcome::skipped, ops[0]);
    OpMsg other = ops[1];
    other.lsn = 8;
    expect(Outcome::refused, other);
}

TEST_F(ApplyContent, AbandonedContentLeavesNothingBehind) {
    ok(content_ops(1, "f", "kept", t(1)));
    auto ops = content_ops(2, "f", std::string(9000, 'q'), t(2), 4096);
    ok(ops[0]);
    ok(ops[1]);
    // Another operation arrives: the sender gave up on that content.
    ok(OpMsg{.lsn = 3, .kind = OpKind::create, .path = "g", .mode = 0100644u});
    expect(Outcome::refused, ops.back());
    EXPECT_EQ(read_file(at("f")), "kept");
    // And through abort_content (a dropped connection).
    ok(ops[0]);
    applier_->abort_content();
    EXPECT_EQ(read_file(at("f")), "kept");
    EXPECT_EQ(test::listing(root_), "f\ng\n");
}

TEST_F(ApplyContent, BlockHashes) {
    std::string data(200000, 'h');
    ok(content_ops(1, "f", data, t(1), 65536));
    ok(OpMsg{.lsn = 2, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    auto h = applier_->hashes(proto::HashRequest{.id = 9, .path = "f"});
    ASSERT_TRUE(h) << h.error().message;
    EXPECT_EQ(h->id, 9u);
    EXPECT_TRUE(h->exists);
    EXPECT_EQ(h->size, data.size());
    ASSERT_GT(h->block_size, 0u);
    EXPECT_EQ(h->hashes.size(), 16 * ((data.size() + h->block_size - 1) / h->block_size));
    for (std::string p : {"d", "missing", "nodir/x"}) {
        auto r = applier_->hashes(proto::HashRequest{.id = 1, .path = p});
        ASSERT_TRUE(r) << p;
        EXPECT_FALSE(r->exists) << p;
    }
    auto bad = applier_->hashes(proto::HashRequest{.id = 1, .path = "../canary/file"});
    ASSERT_FALSE(bad);
    EXPECT_TRUE(is_refusal(bad.error()));
}

}  // namespace
}  // namespace iz::replicator::test_apply
