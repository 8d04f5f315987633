// What the replica itself forbids: a directory made immutable or
// append-only on the server (chattr +i, +a), and a mount point in the way.
// Each operation that meets one is rejected (left out and reported, with
// the path and the errno text), never skipped: a skip left the replica
// different with only an info line in the server's log. The operations
// after it still apply.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

using test::read_file;

// Sets (or, with 0, clears) the inode flags of the directory `p`; cleared
// again when it goes, so the temporary tree can be removed.
class Flags {
public:
    Flags(fs::path p, int flags) : p_(std::move(p)) { set(flags); }
    ~Flags() { set(0); }
    void set(int flags) {
        int fd = ::open(p_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_GE(fd, 0) << p_ << ": " << std::strerror(errno);
        int now = 0;
        EXPECT_EQ(::ioctl(fd, FS_IOC_GETFLAGS, &now), 0) << std::strerror(errno);
        now = (now & ~(FS_IMMUTABLE_FL | FS_APPEND_FL)) | flags;
        EXPECT_EQ(::ioctl(fd, FS_IOC_SETFLAGS, &now), 0) << std::strerror(errno);
        ::close(fd);
    }

private:
    fs::path p_;
};

class ApplyFlags : public ApplyTest {
protected:
    // Rejected, naming `path` and the errno text.
    void rejected(const OpMsg& op, const std::string& path, const std::string& errno_text) {
        auto r = expect(Outcome::rejected, op);
        EXPECT_NE(r.message.find("'" + path + "'"), std::string::npos) << r.message;
        EXPECT_NE(r.message.find(errno_text), std::string::npos) << r.message;
    }
};

TEST_F(ApplyFlags, EntriesMadeOrRemovedInAnImmutableDirectoryAreRejected) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "frozen", .mode = 040755u});
    ok(content_ops(2, "frozen/kept", "kept", t(1)));
    ok(OpMsg{.lsn = 3, .kind = OpKind::mkdir, .path = "frozen/sub", .mode = 040755u});
    Flags immutable(at("frozen"), FS_IMMUTABLE_FL);
    const std::string eperm = std::strerror(EPERM);
    rejected(OpMsg{.lsn = 10, .kind = OpKind::create, .path = "frozen/new", .mode = 0100644u, .parent_mtime_ns = t(2)},
             "frozen/new", eperm);
    rejected(OpMsg{.lsn = 11, .kind = OpKind::mkdir, .path = "frozen/dir", .mode = 040755u}, "frozen/dir", eperm);
    rejected(OpMsg{.lsn = 12, .kind = OpKind::symlink, .path = "frozen/link", .target = "kept"}, "frozen/link", eperm);
    // New content: its beginning is rejected, the rest goes with it.
    auto content = content_ops(13, "frozen/file", std::string(10000, 'c'), t(3));
    rejected(content.front(), "frozen/file", eperm);
    for (size_t i = 1; i < content.size(); ++i) expect(Outcome::skipped, content[i]);
    rejected(OpMsg{.lsn = 14, .kind = OpKind::unlink, .path = "frozen/kept"}, "frozen/kept", eperm);
    rejected(OpMsg{.lsn = 15, .kind = OpKind::rmdir, .path = "frozen/sub"}, "frozen/sub", eperm);
    rejected(OpMsg{.lsn = 16, .kind = OpKind::rename, .path = "frozen/kept", .target = "moved"}, "moved", eperm);
    auto r = expect(Outcome::rejected, OpMsg{.lsn = 17, .kind = OpKind::link, .path = "frozen/kept", .target = "frozen/two"});
    EXPECT_NE(r.message.find("immutable"), std::string::npos) << r.message;
    // What follows is applied.
    ok(content_ops(18, "after", "after", t(4)));
    EXPECT_EQ(test::listing(at("frozen")), "kept\nsub\n");
    EXPECT_EQ(read_file(at("frozen/kept")), "kept");
    EXPECT_EQ(read_file(at("after")), "after");
    EXPECT_EQ(applier_->resume_lsn(), 18u);
}

TEST_F(ApplyFlags, EntriesRemovedFromAnAppendOnlyDirectoryAreRejected) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "log", .mode = 040755u});
    ok(content_ops(2, "log/old", "old", t(1)));
    ok(OpMsg{.lsn = 3, .kind = OpKind::mkdir, .path = "log/sub", .mode = 040755u});
    Flags append_only(at("log"), FS_APPEND_FL);
    const std::string eperm = std::strerror(EPERM);
    // Making an entry is what append-only allows.
    ok(OpMsg{.lsn = 10, .kind = OpKind::create, .path = "log/new", .mode = 0100644u});
    rejected(OpMsg{.lsn = 11, .kind = OpKind::unlink, .path = "log/old"}, "log/old", eperm);
    rejected(OpMsg{.lsn = 12, .kind = OpKind::rmdir, .path = "log/sub"}, "log/sub", eperm);
    rejected(OpMsg{.lsn = 13, .kind = OpKind::rename, .path = "log/old", .target = "log/renamed"}, "log/renamed", eperm);
    ok(content_ops(14, "after", "after", t(2)));
    EXPECT_EQ(test::listing(at("log")), "new\nold\nsub\n");
    EXPECT_EQ(read_file(at("after")), "after");
}

// rmdir of a mount point, a rename of one or over one: EBUSY for as long as
// the mount stays.
TEST_F(ApplyFlags, RemovingOrRenamingAMountPointIsRejected) {
    ok(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "mnt", .mode = 040755u});
    ok(OpMsg{.lsn = 2, .kind = OpKind::mkdir, .path = "other", .mode = 040755u});
    ASSERT_EQ(::mount("tmpfs", at("mnt").c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
    struct Unmount {
        fs::path at;
        ~Unmount() { ::umount2(at.c_str(), MNT_DETACH); }
    } unmount{at("mnt")};
    const std::string ebusy = std::strerror(EBUSY);
    auto r = expect(Outcome::rejected, OpMsg{.lsn = 10, .kind = OpKind::rmdir, .path = "mnt"});
    EXPECT_NE(r.message.find(ebusy), std::string::npos) << r.message;
    EXPECT_NE(r.message.find("mount point"), std::string::npos) << r.message;
    rejected(OpMsg{.lsn = 11, .kind = OpKind::rename, .path = "mnt", .target = "moved"}, "moved", ebusy);
    rejected(OpMsg{.lsn = 12, .kind = OpKind::rename, .path = "other", .target = "mnt"}, "mnt", ebusy);
    ok(content_ops(13, "after", "after", t(1)));
    EXPECT_EQ(test::listing(root_), "after\nmnt\nother\n");
    EXPECT_EQ(applier_->resume_lsn(), 13u);
}

}  // namespace
}  // namespace iz::replicator::test_apply
