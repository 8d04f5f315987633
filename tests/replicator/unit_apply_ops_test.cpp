// Every OpKind applied to a fresh root gives exactly the tree it describes:
// types, modes, owners, times, xattrs, symlink targets, link counts and
// bytes.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "support/posix_acl.hpp"
#include "support/scratch_fs.hpp"
#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

using test::mtime_ns;
using test::read_file;

class ApplyOps : public ApplyTest {};

TEST_F(ApplyOps, Noop) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::noop});
    EXPECT_EQ(test::listing(root_), "");
}

TEST_F(ApplyOps, CreateSetsModeOwnerTimesAndParentMtime) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::create, .path = "f", .mode = 0100640u, .uid = 1234u, .gid = 2345u,
             .atime_ns = t(1), .mtime_ns = t(2), .parent_mtime_ns = t(3)});
    auto st = lstat_of(at("f"));
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    EXPECT_EQ(st.st_uid, 1234u);
    EXPECT_EQ(st.st_gid, 2345u);
    EXPECT_EQ(st.st_size, 0);
    EXPECT_EQ(mtime_ns(at("f")), t(2));
    settle();
    EXPECT_EQ(mtime_ns(root_), t(3));
}

// The journal can carry a directory's default ACL before an entry the
// source made in it while it had none: what the replica's entries inherit
// from it is not the source's (whose ACLs, when it has any, follow as
// xattr records), and their modes are the records'.
TEST_F(ApplyOps, EntriesMadeInADirectoryWithADefaultACLInheritNone) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    auto acl = test::acl_granting_user(4011);
    ok(OpMsg{.lsn = 2, .kind = OpKind::setxattr, .path = "d", .xattr_name = "system.posix_acl_default", .xattr_value = acl});
    ok(OpMsg{.lsn = 3, .kind = OpKind::create, .path = "d/f", .mode = 0100644u});
    ok(OpMsg{.lsn = 4, .kind = OpKind::mkdir, .path = "d/e", .mode = 040755u});
    ok(OpMsg{.lsn = 5, .kind = OpKind::mknod, .path = "d/p", .mode = 010640u});
    for (auto rel : {"d/f", "d/e", "d/p"}) {
        EXPECT_EQ(test::xattr(at(rel), "system.posix_acl_access"), "") << rel;
        EXPECT_EQ(test::xattr(at(rel), "system.posix_acl_default"), "") << rel;
    }
    EXPECT_EQ(lstat_of(at("d/f")).st_mode & 07777, 0644u);
    EXPECT_EQ(lstat_of(at("d/e")).st_mode & 07777, 0755u);
    EXPECT_EQ(lstat_of(at("d/p")).st_mode & 07777, 0640u);
    // The source's own ACL, journaled after the creation, is set as it comes.
    ok(OpMsg{.lsn = 6, .kind = OpKind::setxattr, .path = "d/e", .xattr_name = "system.posix_acl_default", .xattr_value = acl});
    EXPECT_EQ(test::xattr(at("d/e"), "system.posix_acl_default"), acl);
}

TEST_F(ApplyOps, MkdirNestedWithAttributes) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040750u, .uid = 7u, .gid = 8u, .mtime_ns = t(1)});
    ok(OpMsg{.lsn = 2, .kind = OpKind::mkdir, .path = "d/e", .mode = 040700u, .mtime_ns = t(2), .parent_mtime_ns = t(3)});
    auto d = lstat_of(at("d")), e = lstat_of(at("d/e"));
    EXPECT_TRUE(S_ISDIR(d.st_mode) && S_ISDIR(e.st_mode));
    EXPECT_EQ(d.st_mode & 07777, 0750u);
    EXPECT_EQ(d.st_uid, 7u);
    EXPECT_EQ(d.st_gid, 8u);
    EXPECT_EQ(e.st_mode & 07777, 0700u);
    EXPECT_EQ(mtime_ns(at("d/e")), t(2));
    settle();
    EXPECT_EQ(mtime_ns(at("d")), t(3));  // the parent's mtime from the source
    // A missing parent is a state problem (skipped), not a refusal.
    expect(Outcome::skipped, OpMsg{.lsn = 3, .kind = OpKind::mkdir, .path = "nope/x", .mode = 040700u});
}

// A whiteout (what renameat2 RENAME_WHITEOUT leaves) is a character device
// 0:0 with no permission bits; other devices keep their numbers. Applied
// again, nothing changes; a device of another number is replaced.
TEST_F(ApplyOps, MknodCharacterDevicesWithTheirNumbers) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mknod, .path = "wh", .mode = S_IFCHR | 0u, .uid = 0u, .gid = 0u,
             .mtime_ns = t(1), .rdev = 0u});
    auto st = lstat_of(at("wh"));
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0u);
    EXPECT_EQ(st.st_rdev, 0u);
    EXPECT_EQ(mtime_ns(at("wh")), t(1));
    ok(OpMsg{.lsn = 2, .kind = OpKind::mknod, .path = "null", .mode = S_IFCHR | 0666u,
             .rdev = static_cast<uint64_t>(makedev(1, 3))});
    EXPECT_EQ(lstat_of(at("null")).st_rdev, makedev(1, 3));
    auto ino = lstat_of(at("null")).st_ino;
    ok(OpMsg{.lsn = 2, .kind = OpKind::mknod, .path = "null", .mode = S_IFCHR | 0666u,
             .rdev = static_cast<uint64_t>(makedev(1, 3))});
    EXPECT_EQ(lstat_of(at("null")).st_ino, ino);
    ok(OpMsg{.lsn = 3, .kind = OpKind::mknod, .path = "null", .mode = S_IFCHR | 0666u,
             .rdev = static_cast<uint64_t>(makedev(1, 5))});
    EXPECT_EQ(lstat_of(at("null")).st_rdev, makedev(1, 5));
}

TEST_F(ApplyOps, MknodFifoAndRegular) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mknod, .path = "fifo", .mode = S_IFIFO | 0620u, .mtime_ns = t(1)});
    auto st = lstat_of(at("fifo"));
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0620u);
    EXPECT_EQ(mtime_ns(at("fifo")), t(1));
    ok(OpMsg{.lsn = 2, .kind = OpKind::mknod, .path = "reg", .mode = S_IFREG | 0600u});
    EXPECT_TRUE(S_ISREG(lstat_of(at("reg")).st_mode));
    // No mode, or a type mknod cannot make: refused.
    expect(Outcome::refused, OpMsg{.lsn = 3, .kind = OpKind::mknod, .path = "x"});
    expect(Outcome::refused, OpMsg{.lsn = 4, .kind = OpKind::mknod, .path = "x", .mode = S_IFDIR | 0700u});
    expect(Outcome::refused, OpMsg{.lsn = 5, .kind = OpKind::mknod, .path = "x", .mode = S_IFLNK | 0700u});
    EXPECT_FALSE(fs::exists(fs::symlink_status(at("x"))));
}

TEST_F(ApplyOps, SymlinkKeepsItsTextAndOwner) {
    // The target is data: it may point anywhere, it is never resolved.
    ok(OpMsg{.lsn = 1, .kind = OpKind::symlink, .path = "l", .target = "../../somewhere/else", .uid = 99u, .gid = 98u,
             .mtime_ns = t(1)});
    auto st = lstat_of(at("l"));
    EXPECT_TRUE(S_ISLNK(st.st_mode));
    EXPECT_EQ(fs::read_symlink(at("l")), "../../somewhere/else");
    EXPECT_EQ(st.st_uid, 99u);
    EXPECT_EQ(st.st_gid, 98u);
    EXPECT_EQ(mtime_ns(at("l")), t(1));
    // Changing the text replaces the link.
    ok(OpMsg{.lsn = 2, .kind = OpKind::symlink, .path = "l", .target = "new-target"});
    EXPECT_EQ(fs::read_symlink(at("l")), "new-target");
    expect(Outcome::refused, OpMsg{.lsn = 3, .kind = OpKind::symlink, .path = "m", .target = ""});
    expect(Outcome::refused, OpMsg{.lsn = 4, .kind = OpKind::symlink, .path = "m", .target = std::string("a\0b", 3)});
}

TEST_F(ApplyOps, LinkGroupsNames) {
    ok(content_ops(1, "a", "shared bytes", t(1)));
    ok(OpMsg{.lsn = 2, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    ok(OpMsg{.lsn = 3, .kind = OpKind::link, .path = "a", .target = "d/b", .target_parent_mtime_ns = t(2)});
    auto a = lstat_of(at("a")), b = lstat_of(at("d/b"));
    EXPECT_EQ(a.st_ino, b.st_ino);
    EXPECT_EQ(a.st_nlink, 2u);
    EXPECT_EQ(read_file(at("d/b")), "shared bytes");
    settle();
    EXPECT_EQ(mtime_ns(at("d")), t(2));
    // Replayed: already one file, nothing changes.
    ok(OpMsg{.lsn = 3, .kind = OpKind::link, .path = "a", .target = "d/b"});
    EXPECT_EQ(lstat_of(at("a")).st_nlink, 2u);
    // A hard link to a directory is skipped, never made.
    expect(Outcome::skipped, OpMsg{.lsn = 4, .kind = OpKind::link, .path = "d", .target = "dlink"});
}

// A link record names its first name as it was when the agent read it: by
// the time it is applied that name may hold another object (here a device
// made there since). Linking it would put a device in the regular file's
// link group; the record says the type of what the source linked, and a
// first name holding another type is skipped, the second name left as it is.
TEST_F(ApplyOps, ALinkWhoseFirstNameHoldsAnotherTypeIsSkipped) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mknod, .path = "dev", .mode = 020644u, .rdev = makedev(1, 3)});
    ok(content_ops(2, "file", "regular bytes", t(1)));
    expect(Outcome::skipped, OpMsg{.lsn = 3, .kind = OpKind::link, .path = "dev", .target = "file", .mode = S_IFREG});
    auto f = lstat_of(at("file"));
    EXPECT_TRUE(S_ISREG(f.st_mode));
    EXPECT_EQ(f.st_nlink, 1u);
    EXPECT_EQ(read_file(at("file")), "regular bytes");
    EXPECT_EQ(lstat_of(at("dev")).st_nlink, 1u);
    expect(Outcome::skipped, OpMsg{.lsn = 4, .kind = OpKind::link, .path = "dev", .target = "new", .mode = S_IFREG});
    EXPECT_FALSE(fs::exists(fs::symlink_status(at("new"))));
    // Of the type the record says, it is linked.
    ok(OpMsg{.lsn = 5, .kind = OpKind::link, .path = "dev", .target = "dev2", .mode = S_IFCHR});
    EXPECT_EQ(lstat_of(at("dev")).st_ino, lstat_of(at("dev2")).st_ino);
}

TEST_F(ApplyOps, UnlinkAndRmdir) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    ok(OpMsg{.lsn = 2, .kind = OpKind::create, .path = "d/f", .mode = 0100644u});
    ok(OpMsg{.lsn = 3, .kind = OpKind::link, .path = "d/f", .target = "g"});
    ok(OpMsg{.lsn = 4, .kind = OpKind::unlink, .path = "d/f", .parent_mtime_ns = t(1)});
    EXPECT_FALSE(fs::exists(at("d/f")));
    EXPECT_EQ(lstat_of(at("g")).st_nlink, 1u);
    settle();
    EXPECT_EQ(mtime_ns(at("d")), t(1));
    ok(OpMsg{.lsn = 5, .kind = OpKind::rmdir, .path = "d", .parent_mtime_ns = t(2)});
    EXPECT_FALSE(fs::exists(at("d")));
    settle();
    EXPECT_EQ(mtime_ns(root_), t(2));
    // Already gone, or the whole directory gone: nothing to do.
    ok(OpMsg{.lsn = 6, .kind = OpKind::unlink, .path = "d/f"});
    ok(OpMsg{.lsn = 7, .kind = OpKind::rmdir, .path = "d"});
    // The wrong kind of entry is skipped and left alone.
    ok(OpMsg{.lsn = 8, .kind = OpKind::mkdir, .path = "d2", .mode = 040755u});
    expect(Outcome::skipped, OpMsg{.lsn = 9, .kind = OpKind::unlink, .path = "d2"});
    expect(Outcome::skipped, OpMsg{.lsn = 10, .kind = OpKind::rmdir, .path = "g"});
    EXPECT_TRUE(fs::is_directory(at("d2")));
    EXPECT_TRUE(fs::is_regular_file(at("g")));
}

TEST_F(ApplyOps, RmdirOfDirectoryWithServerOnlyEntriesKeepsThemAside) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    test::write_file(at("d/local"), "made on the server");
    auto r = expect(Outcome::applied, OpMsg{.lsn = 2, .kind = OpKind::rmdir, .path = "d"});
    EXPECT_FALSE(fs::exists(at("d")));
    ASSERT_EQ(r.conflicts.size(), 1u);
    EXPECT_EQ(r.conflicts[0].path, "d");
    EXPECT_TRUE(r.conflicts[0].conflict_copy.starts_with("d.conflict-testhost-")) << r.conflicts[0].conflict_copy;
    EXPECT_EQ(read_file(at(r.conflicts[0].conflict_copy + "/local")), "made on the server");
}

TEST_F(ApplyOps, RenameFilesAndDirectories) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    ok(content_ops(2, "d/f", "payload", t(1)));
    ok(OpMsg{.lsn = 3, .kind = OpKind::rename, .path = "d/f", .target = "g", .parent_mtime_ns = t(2),
             .target_parent_mtime_ns = t(3)});
    EXPECT_FALSE(fs::exists(at("d/f")));
    EXPECT_EQ(read_file(at("g")), "payload");
    EXPECT_EQ(mtime_ns(at("d")), t(2));
    settle();
    EXPECT_EQ(mtime_ns(root_), t(3));
    // A directory moves with what it holds.
    ok(content_ops(4, "d/inner", "inner", t(4)));
    ok(OpMsg{.lsn = 5, .kind = OpKind::rename, .path = "d", .target = "e"});
    EXPECT_EQ(read_file(at("e/inner")), "inner");
    // Over an existing file: the target is replaced.
    ok(content_ops(6, "h", "old h", t(5)));
    ok(OpMsg{.lsn = 7, .kind = OpKind::rename, .path = "g", .target = "h", .replaced = true});
    EXPECT_EQ(read_file(at("h")), "payload");
    EXPECT_FALSE(fs::exists(at("g")));
    // Replayed: the source is gone and the target there: done already.
    ok(OpMsg{.lsn = 7, .kind = OpKind::rename, .path = "g", .target = "h", .replaced = true});
    EXPECT_EQ(read_file(at("h")), "payload");
    // Into itself: skipped.
    expect(Outcome::skipped, OpMsg{.lsn = 8, .kind = OpKind::rename, .path = "e", .target = "e/sub"});
    EXPECT_EQ(test::listing(root_), "e\ne/inner\nh\n");
}

TEST_F(ApplyOps, ExchangeSwapsFilesAndDirectoriesWithWhatTheyHold) {
    ok(content_ops(1, "f", "AAA", t(1)));
    ok(content_ops(2, "g", "BB", t(2)));
    ok(OpMsg{.lsn = 3, .kind = OpKind::mkdir, .path = "a", .mode = 040755u});
    ok(content_ops(4, "a/x", "in a", t(3)));
    ok(OpMsg{.lsn = 5, .kind = OpKind::mkdir, .path = "b", .mode = 040755u});
    ok(content_ops(6, "b/y", "in b", t(4)));
    ok(OpMsg{.lsn = 7, .kind = OpKind::exchange, .path = "f", .target = "g", .parent_mtime_ns = t(5),
             .target_parent_mtime_ns = t(5)});
    EXPECT_EQ(read_file(at("f")), "BB");
    EXPECT_EQ(read_file(at("g")), "AAA");
    ok(OpMsg{.lsn = 8, .kind = OpKind::exchange, .path = "a", .target = "b"});
    EXPECT_EQ(read_file(at("a/y")), "in b");
    EXPECT_EQ(read_file(at("b/x")), "in a");
    // A file and a directory.
    ok(OpMsg{.lsn = 9, .kind = OpKind::exchange, .path = "g", .target = "b"});
    EXPECT_EQ(read_file(at("b")), "AAA");
    EXPECT_EQ(read_file(at("g/x")), "in a");
    EXPECT_EQ(test::listing(root_), "a\na/y\nb\nf\ng\ng/x\n");
    // The file memory followed: content for the new holders of the names is
    // no change behind the replicator's back (no conflict copy).
    auto r = expect(Outcome::applied, OpMsg{.lsn = 10, .kind = OpKind::write, .path = "f", .mtime_ns = t(6),
                                            .size = 2, .extents = {proto::make_extent(0, "CC", false)}});
    EXPECT_TRUE(r.conflicts.empty()) << r.conflicts[0].message;
    auto r2 = expect(Outcome::applied, OpMsg{.lsn = 11, .kind = OpKind::write, .path = "b", .mtime_ns = t(7),
                                             .size = 3, .extents = {proto::make_extent(0, "DDD", false)}});
    EXPECT_TRUE(r2.conflicts.empty()) << r2.conflicts[0].message;
    EXPECT_EQ(read_file(at("f")), "CC");
    EXPECT_EQ(read_file(at("b")), "DDD");
    // With itself, or with what lies beneath it: nothing / skipped.
    ok(OpMsg{.lsn = 12, .kind = OpKind::exchange, .path = "f", .target = "f"});
    expect(Outcome::skipped, OpMsg{.lsn = 13, .kind = OpKind::exchange, .path = "g", .target = "g/x"});
    expect(Outcome::skipped, OpMsg{.lsn = 14, .kind = OpKind::exchange, .path = "g/x", .target = "g"});
    EXPECT_EQ(test::listing(root_), "a\na/y\nb\nf\ng\ng/x\n");
}

// A replica without one of the two names (it diverged): the other is put
// where the source now has it, once.
TEST_F(ApplyOps, ExchangeWithOneSideMissingMovesTheOther) {
    ok(content_ops(1, "f", "AAA", t(1)));
    ok(OpMsg{.lsn = 2, .kind = OpKind::exchange, .path = "f", .target = "g"});
    EXPECT_FALSE(fs::exists(at("f")));
    EXPECT_EQ(read_file(at("g")), "AAA");
    ok(OpMsg{.lsn = 2, .kind = OpKind::exchange, .path = "f", .target = "g"});
    EXPECT_EQ(test::listing(root_), "g\n");
    expect(Outcome::skipped, OpMsg{.lsn = 3, .kind = OpKind::exchange, .path = "x", .target = "y"});
}

TEST_F(ApplyOps, SetattrOnFileDirAndRoot) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::create, .path = "f", .mode = 0100600u});
    ok(OpMsg{.lsn = 2, .kind = OpKind::setattr, .path = "f", .mode = 0104755u, .uid = 501u, .gid = 20u,
             .atime_ns = t(1), .mtime_ns = t(2)});
    auto st = lstat_of(at("f"));
    EXPECT_EQ(st.st_mode & 07777, 04755u);  // set-id survives: the mode comes after chown
    EXPECT_EQ(st.st_uid, 501u);
    EXPECT_EQ(st.st_gid, 20u);
    EXPECT_EQ(st.st_atim.tv_sec * 1'000'000'000 + st.st_atim.tv_nsec, t(1));
    EXPECT_EQ(mtime_ns(at("f")), t(2));
    // Only what is given changes.
    ok(OpMsg{.lsn = 3, .kind = OpKind::setattr, .path = "f", .mode = 0100640u});
    st = lstat_of(at("f"));
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    EXPECT_EQ(st.st_uid, 501u);
    EXPECT_EQ(mtime_ns(at("f")), t(2));
    // The root itself may be given attributes.
    ok(OpMsg{.lsn = 4, .kind = OpKind::setattr, .path = "", .mode = 040711u, .mtime_ns = t(3)});
    EXPECT_EQ(lstat_of(root_).st_mode & 07777, 0711u);
    EXPECT_EQ(mtime_ns(root_), t(3));
    expect(Outcome::skipped, OpMsg{.lsn = 5, .kind = OpKind::setattr, .path = "missing", .mode = 0100600u});
}

TEST_F(ApplyOps, WriteRangesSizeAndMtime) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::create, .path = "f", .mode = 0100644u});
    OpMsg w{.lsn = 2, .kind = OpKind::write, .path = "f", .mtime_ns = t(1), .size = 20};
    w.extents = {proto::make_extent(0, "hello", false), proto::make_extent(10, "world", false)};
    ok(w);
    EXPECT_EQ(read_file(at("f")), std::string("hello\0\0\0\0\0world\0\0\0\0\0", 20));
    EXPECT_EQ(mtime_ns(at("f")), t(1));
    // Overwrite in the middle with a compressed extent, grow the file.
    std::string big(6000, 'x');
    OpMsg w2{.lsn = 3, .kind = OpKind::write, .path = "f", .mtime_ns = t(2)};
    w2.extents = {proto::make_extent(3, big)};
    ASSERT_TRUE(w2.extents[0].zstd);
    ok(w2);
    EXPECT_EQ(read_file(at("f")), "hel" + big);  // 6003 bytes: grown past the old 20
    EXPECT_EQ(mtime_ns(at("f")), t(2));
    // A write to a missing file creates it.
    OpMsg w3{.lsn = 4, .kind = OpKind::write, .path = "new", .mtime_ns = t(3)};
    w3.extents = {proto::make_extent(2, "ab", false)};
    ok(w3);
    EXPECT_EQ(read_file(at("new")), std::string("\0\0ab", 4));
    // To a directory: rejected, the directory left as it is.
    ok(OpMsg{.lsn = 5, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    expect(Outcome::rejected, OpMsg{.lsn = 6, .kind = OpKind::write, .path = "d", .extents = w3.extents});
    EXPECT_TRUE(fs::is_directory(fs::symlink_status(at("d"))));
}

TEST_F(ApplyOps, TruncateShrinksAndGrows) {
    ok(content_ops(1, "f", "0123456789", t(1)));
    ok(OpMsg{.lsn = 2, .kind = OpKind::truncate, .path = "f", .mtime_ns = t(2), .size = 4});
    EXPECT_EQ(read_file(at("f")), "0123");
    EXPECT_EQ(mtime_ns(at("f")), t(2));
    ok(OpMsg{.lsn = 3, .kind = OpKind::truncate, .path = "f", .size = 6});
    EXPECT_EQ(read_file(at("f")), std::string("0123\0\0", 6));
    // Extents on a truncate are not written.
    OpMsg tr{.lsn = 4, .kind = OpKind::truncate, .path = "f", .size = 6};
    tr.extents = {proto::make_extent(0, "ZZ", false)};
    ok(tr);
    EXPECT_EQ(read_file(at("f")), std::string("0123\0\0", 6));
}

TEST_F(ApplyOps, XattrsSetReplacedAndRemoved) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::create, .path = "f", .mode = 0100644u});
    ok(OpMsg{.lsn = 2, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    std::string value("bin\0ary", 7);
    ok(OpMsg{.lsn = 3, .kind = OpKind::setxattr, .path = "f", .xattr_name = "user.a", .xattr_value = value});
    ok(OpMsg{.lsn = 4, .kind = OpKind::setxattr, .path = "d", .xattr_name = "user.b", .xattr_value = "dir"});
    ok(OpMsg{.lsn = 5, .kind = OpKind::setxattr, .path = "", .xattr_name = "user.root", .xattr_value = "r"});
    EXPECT_EQ(test::xattr(at("f"), "user.a"), value);
    EXPECT_EQ(test::xattr(at("d"), "user.b"), "dir");
    EXPECT_EQ(test::xattr(root_, "user.root"), "r");
    ok(OpMsg{.lsn = 6, .kind = OpKind::setxattr, .path = "f", .xattr_name = "user.a", .xattr_value = "v2"});
    EXPECT_EQ(test::xattr(at("f"), "user.a"), "v2");
    ok(OpMsg{.lsn = 7, .kind = OpKind::removexattr, .path = "f", .xattr_name = "user.a"});
    EXPECT_EQ(::lgetxattr(at("f").c_str(), "user.a", nullptr, 0), -1);
    // Removing what is not there is done already.
    ok(OpMsg{.lsn = 8, .kind = OpKind::removexattr, .path = "f", .xattr_name = "user.a"});
    // Malformed names and oversized values, which no source holds, are
    // refused; names outside the namespaces the server sets are rejected.
    for (std::string name : {"user.", "", "trusted", ".x"})
        expect(Outcome::refused, OpMsg{.lsn = 9, .kind = OpKind::setxattr, .path = "f", .xattr_name = name, .xattr_value = "v"});
    for (std::string name : {"os2.x", "system.evil"})
        expect(Outcome::rejected, OpMsg{.lsn = 9, .kind = OpKind::setxattr, .path = "f", .xattr_name = name, .xattr_value = "v"});
    expect(Outcome::refused, OpMsg{.lsn = 10, .kind = OpKind::setxattr, .path = "f", .xattr_name = "user.big",
                                   .xattr_value = std::string(65537, 'v')});
    // A FIFO is never opened for its attributes.
    ok(OpMsg{.lsn = 11, .kind = OpKind::mknod, .path = "p", .mode = S_IFIFO | 0600u});
    expect(Outcome::skipped, OpMsg{.lsn = 12, .kind = OpKind::setxattr, .path = "p", .xattr_name = "user.a", .xattr_value = "v"});
}

TEST_F(ApplyOps, CreateOverAnUnknownFileAdoptsItWithTheSourceAttributes) {
    test::write_file(at("f"), "", 0666);
    ok(OpMsg{.lsn = 1, .kind = OpKind::create, .path = "f", .mode = 0100640u, .uid = 12u, .mtime_ns = t(1)});
    auto st = lstat_of(at("f"));
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    EXPECT_EQ(st.st_uid, 12u);
    EXPECT_EQ(mtime_ns(at("f")), t(1));
    // Adopted: a later write is not a conflict.
    OpMsg w{.lsn = 2, .kind = OpKind::write, .path = "f", .mtime_ns = t(2), .extents = {proto::make_extent(0, "x", false)}};
    EXPECT_TRUE(expect(Outcome::applied, w).conflicts.empty());
}

// The mtimes ops carry for their directories end up in the order the ops
// came: a later explicit setattr of a directory is never overwritten by an
// earlier op's, and a directory moved or removed afterwards is no error.
TEST_F(ApplyOps, DirectoryMtimesAreSetInOrder) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u, .mtime_ns = t(1)});
    ok(OpMsg{.lsn = 2, .kind = OpKind::create, .path = "d/a", .mode = 0100644u, .parent_mtime_ns = t(2)});
    ok(OpMsg{.lsn = 3, .kind = OpKind::create, .path = "d/b", .mode = 0100644u, .parent_mtime_ns = t(3)});
    // The end of the batch sets d's, with the last value it was given.
    ok(OpMsg{.lsn = 4, .kind = OpKind::create, .path = "e", .mode = 0100644u, .parent_mtime_ns = t(4)});
    ASSERT_TRUE(applier_->finish_batch());
    EXPECT_EQ(mtime_ns(at("d")), t(3));
    // A setattr of the directory itself comes after the ops in it.
    ok(OpMsg{.lsn = 5, .kind = OpKind::create, .path = "d/c", .mode = 0100644u, .parent_mtime_ns = t(5)});
    ok(OpMsg{.lsn = 6, .kind = OpKind::setattr, .path = "d", .mtime_ns = t(6)});
    EXPECT_EQ(mtime_ns(at("d")), t(6));
    settle();
    EXPECT_EQ(mtime_ns(at("d")), t(6));
    EXPECT_EQ(mtime_ns(root_), t(4));
    // A directory then moved keeps it.
    ok(OpMsg{.lsn = 7, .kind = OpKind::create, .path = "d/x", .mode = 0100644u, .parent_mtime_ns = t(7)});
    ok(OpMsg{.lsn = 8, .kind = OpKind::rename, .path = "d", .target = "m"});
    EXPECT_EQ(mtime_ns(at("m")), t(7));
    // A directory then removed: no error.
    ok(OpMsg{.lsn = 9, .kind = OpKind::unlink, .path = "m/x", .parent_mtime_ns = t(8)});
    ok(OpMsg{.lsn = 10, .kind = OpKind::unlink, .path = "m/a"});
    ok(OpMsg{.lsn = 11, .kind = OpKind::unlink, .path = "m/b"});
    ok(OpMsg{.lsn = 12, .kind = OpKind::unlink, .path = "m/c", .parent_mtime_ns = t(9)});
    ok(OpMsg{.lsn = 13, .kind = OpKind::rmdir, .path = "m"});
    settle();
    EXPECT_FALSE(fs::exists(at("m")));
}

// The applier keeps directories open within a batch; one renamed is never
// reached by its old name afterwards, nor a new one by that name missed.
TEST_F(ApplyOps, ADirectoryRenamedWithinABatchIsNotReachedByItsOldName) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    ok(OpMsg{.lsn = 2, .kind = OpKind::create, .path = "d/a", .mode = 0100644u, .parent_mtime_ns = t(2)});
    ok(OpMsg{.lsn = 3, .kind = OpKind::rename, .path = "d", .target = "e"});
    expect(Outcome::skipped, OpMsg{.lsn = 4, .kind = OpKind::create, .path = "d/b", .mode = 0100644u});
    EXPECT_FALSE(fs::exists(at("e/b")));
    ok(OpMsg{.lsn = 5, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    ok(OpMsg{.lsn = 6, .kind = OpKind::create, .path = "d/c", .mode = 0100644u, .parent_mtime_ns = t(6)});
    ASSERT_TRUE(applier_->finish_batch());
    EXPECT_EQ(test::listing(root_), "d\nd/c\ne\ne/a\n");
    EXPECT_EQ(mtime_ns(at("e")), t(2));
    EXPECT_EQ(mtime_ns(at("d")), t(6));
}

// Once a directory is replaced, ops under its name find what is there now,
// never the directory an earlier op resolved.
TEST_F(ApplyOps, OpsAfterTheirDirectoryWasReplacedDoNotGoIntoTheOldOne) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    ok(OpMsg{.lsn = 2, .kind = OpKind::create, .path = "d/x", .mode = 0100644u, .parent_mtime_ns = t(1)});
    ok(OpMsg{.lsn = 3, .kind = OpKind::unlink, .path = "d/x", .parent_mtime_ns = t(2)});
    // The directory makes room for a fifo.
    ok(OpMsg{.lsn = 4, .kind = OpKind::mknod, .path = "d", .mode = S_IFIFO | 0600u});
    expect(Outcome::skipped, OpMsg{.lsn = 5, .kind = OpKind::create, .path = "d/y", .mode = 0100644u, .parent_mtime_ns = t(3)});
    EXPECT_TRUE(S_ISFIFO(lstat_of(at("d")).st_mode));
    // And in a directory made again under the same name, ops land in the new one.
    ok(OpMsg{.lsn = 6, .kind = OpKind::mkdir, .path = "d", .mode = 040755u});
    ok(OpMsg{.lsn = 7, .kind = OpKind::create, .path = "d/z", .mode = 0100644u, .parent_mtime_ns = t(4)});
    ok(OpMsg{.lsn = 8, .kind = OpKind::create, .path = "d/w", .mode = 0100644u, .parent_mtime_ns = t(5)});
    EXPECT_EQ(test::listing(at("d")), "w\nz\n");
    settle();
    EXPECT_EQ(mtime_ns(at("d")), t(5));
}

// An XFS source may hold extended attributes of up to 64 KiB; ext4 keeps a
// file's in its inode and one block, and answers a larger one (or one more
// than fits) with ENOSPC however empty the disk. That was a failure to try
// again, which dropped the connection, and the agent sent the same record
// again for ever. It is rejected (nothing of it applied, the agent told),
// and the stream goes on. So is an attribute name the server does not set.
TEST_F(ApplyOps, AnExtendedAttributeTheFilesystemCannotHoldIsRejected) {
    auto scratch = test::ScratchFs::make(test::FsType::ext4, 320, "xattr");
    ASSERT_TRUE(scratch) << scratch.error().message;
    auto opened = Applier::open(ApplierOptions{(*scratch)->mount_point() / "root", dir_ / "ext4-state", "testhost", {}});
    ASSERT_TRUE(opened) << opened.error().message;
    auto& a = **opened;
    auto expect_on = [&](Outcome want, const OpMsg& op) {
        auto r = a.apply(op);
        EXPECT_EQ(outcome_name(r.outcome), outcome_name(want)) << op.xattr_name << ": " << r.message;
        return r;
    };
    const auto root = (*scratch)->mount_point() / "root";
    expect_on(Outcome::applied, OpMsg{.lsn = 1, .kind = OpKind::create, .path = "f", .mode = 0100644u});
    auto r = expect_on(Outcome::rejected, OpMsg{.lsn = 2, .kind = OpKind::setxattr, .path = "f", .xattr_name = "user.big",
                                                .xattr_value = std::string(60000, 'x')});
    EXPECT_NE(r.message.find("user.big"), std::string::npos) << r.message;
    EXPECT_NE(r.message.find("'f'"), std::string::npos) << r.message;
    EXPECT_EQ(test::xattr(root / "f", "user.big"), "");
    r = expect_on(Outcome::rejected, OpMsg{.lsn = 3, .kind = OpKind::setxattr, .path = "f", .xattr_name = "system.other",
                                           .xattr_value = "x"});
    EXPECT_NE(r.message.find("not allowed"), std::string::npos) << r.message;
    expect_on(Outcome::applied,
              OpMsg{.lsn = 4, .kind = OpKind::setxattr, .path = "f", .xattr_name = "user.small", .xattr_value = "fits"});
    EXPECT_EQ(test::xattr(root / "f", "user.small"), "fits");
    EXPECT_EQ(a.resume_lsn(), 4u);
    opened->reset();
}

// A source may nest directories deeper than the longest path the server
// takes from the wire: not applied, and no reason to stop the stream.
TEST_F(ApplyOps, APathLongerThanTheServerTakesIsRejected) {
    std::string deep;
    while (deep.size() <= kMaxWirePath) deep += std::string(250, 'd') + "/";
    deep += "f";
    auto content = content_ops(1, deep, std::string(9000, 'x'), t(1), 4096);
    auto r = expect(Outcome::rejected, content.front());
    EXPECT_NE(r.message.find("longer than"), std::string::npos) << r.message;
    for (size_t i = 1; i < content.size(); ++i) expect(Outcome::skipped, content[i]);
    expect(Outcome::rejected, OpMsg{.lsn = 2, .kind = OpKind::mkdir, .path = deep, .mode = 040755u});
    auto h = applier_->hashes(proto::HashRequest{.id = 1, .path = deep});
    ASSERT_TRUE(h) << h.error().message;
    EXPECT_FALSE(h->exists);
    ok(content_ops(3, "after", "after", t(2)));
    EXPECT_EQ(test::listing(root_), "after\n");
    EXPECT_EQ(applier_->resume_lsn(), 3u);
}

}  // namespace
}  // namespace iz::replicator::test_apply
