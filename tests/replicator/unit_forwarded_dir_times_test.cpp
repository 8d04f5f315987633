// Which directories' times a subscriber gets again (forwarded_dir_times.hpp):
// those its own records changed after a forward set them, read from the
// replica once the forwarding has caught up.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "forwarded_dir_times.hpp"
#include "support/tree.hpp"
#include "unit_resolver_rig.hpp"

namespace iz::replicator {
namespace {

using journal::Op;
using journal::Record;

using test_resolver::rec;

TEST(ForwardedDirTimes, OwnChangesOfADirectoryAForwardSetAreDue) {
    ForwardedDirTimes t;
    t.forwarded(rec(Op::create, "inbox/a"));
    t.forwarded(rec(Op::mkdir, "top"));
    t.passed_over(rec(Op::create, "inbox/b"));       // after a forward set inbox's: due
    t.passed_over(rec(Op::create, "elsewhere/c"));   // no forward set it: its own time stands
    t.passed_over(rec(Op::rename, "x", "inbox/y"));  // the root and inbox
    EXPECT_EQ(t.take_due(), (std::vector<std::string>{"", "inbox"}));
    EXPECT_TRUE(t.take_due().empty());
    t.passed_over(rec(Op::unlink, "inbox/b"));  // again after more of its own
    EXPECT_EQ(t.take_due(), (std::vector<std::string>{"inbox"}));
}

TEST(ForwardedDirTimes, ADirectorysOwnTimesCountAndAFilesDoNot) {
    ForwardedDirTimes t;
    auto dir_times = rec(Op::setattr, "d");
    dir_times.mode = S_IFDIR | 0755;
    t.forwarded(dir_times);
    auto file = rec(Op::setattr, "f");
    file.mode = S_IFREG | 0644;
    t.forwarded(file);
    t.passed_over(file);
    EXPECT_TRUE(t.take_due().empty());
    t.passed_over(dir_times);
    EXPECT_EQ(t.take_due(), (std::vector<std::string>{"d"}));
}

TEST(ForwardedDirTimes, TheTimesForwardIsTheReplicasNow) {
    iz::test::TempDir root("fdt");
    std::filesystem::create_directories(root.path() / "d");
    struct timespec ts[2] = {{1500000000, 7}, {1600000000, 42}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (root.path() / "d").c_str(), ts, 0), 0);
    int fd = ::open(root.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    auto f = times_forward(fd, "d", 77, "srv");
    ASSERT_TRUE(f) << f.error().message;
    ASSERT_TRUE(f->has_value());
    EXPECT_EQ((*f)->origin, "srv");
    EXPECT_EQ((*f)->op.kind, proto::OpKind::setattr);
    EXPECT_EQ((*f)->op.lsn, 77u);
    EXPECT_EQ((*f)->op.path, "d");
    EXPECT_EQ((*f)->op.mtime_ns, int64_t{1600000000} * 1'000'000'000 + 42);
    EXPECT_FALSE((*f)->op.mode);  // times only
    auto gone = times_forward(fd, "nowhere", 78, "srv");
    ASSERT_TRUE(gone);
    EXPECT_FALSE(gone->has_value());
    ::close(fd);
}

}  // namespace
}  // namespace iz::replicator
