// Attribute changes: chmod, chown and utimes each give one setattr carrying
// the entry's new mode, owner and times; user.* xattrs give setxattr and
// removexattr with the name (and, in the journal, the value).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "agent_fixture.hpp"
#include "journal/reader.hpp"
#include "support/posix_acl.hpp"

namespace iz::test::agent {
namespace {

using Strings = std::vector<std::string>;

class Attributes : public AgentOn {
protected:
    void SetUp() override {
        AgentOn::SetUp();
        if (HasFatalFailure()) return;
        write_file(at("f"), "content");
        make_dir(at("d"));
    }
};

TEST_P(Attributes, ChmodIsSetattrWithTheNewMode) {
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::chmod(at("f").c_str(), 0600), 0);
    auto got = changes();
    ASSERT_EQ(describe(got), Strings{"setattr f"});
    EXPECT_EQ(got[0].value("mode", ""), "0100600");
    EXPECT_EQ(got[0].value("owner_uid", -1), 0);
    EXPECT_EQ(got[0].value("pid", 0), getpid());
}

TEST_P(Attributes, ChmodOfADirectory) {
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::chmod(at("d").c_str(), 0700), 0);
    auto got = changes();
    ASSERT_EQ(describe(got), Strings{"setattr d"});
    EXPECT_EQ(got[0].value("mode", ""), "0040700");
}

TEST_P(Attributes, ChownIsSetattrWithTheNewOwner) {
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::chown(at("f").c_str(), 1234, 5678), 0);
    auto got = changes();
    ASSERT_EQ(describe(got), Strings{"setattr f"});
    EXPECT_EQ(got[0].value("owner_uid", -1), 1234);
    EXPECT_EQ(got[0].value("owner_gid", -1), 5678);
    EXPECT_EQ(got[0].value("mode", ""), "0100644");
}

TEST_P(Attributes, UtimesIsSetattrWithTheNewTimes) {
    ASSERT_NO_FATAL_FAILURE(start());
    constexpr int64_t atime = 1'500'000'000'123'456'789, mtime = 1'600'000'000'987'654'321;
    timespec times[2] = {{atime / 1'000'000'000, atime % 1'000'000'000}, {mtime / 1'000'000'000, mtime % 1'000'000'000}};
    ASSERT_EQ(::utimensat(AT_FDCWD, at("f").c_str(), times, 0), 0);
    auto got = changes();
    ASSERT_EQ(describe(got), Strings{"setattr f"});
    EXPECT_EQ(got[0].value("mtime_ns", int64_t{0}), mtime);
    EXPECT_EQ(got[0].value("atime_ns", int64_t{0}), atime);
}

// A utimes that sets the mtime alone (`touch -m`) reaches fanotify as a
// modify. On a directory that is no write (a write record of a directory
// ships nothing, and a nested directory kept its old mtime on the replica):
// it is an attribute change carrying the new mtime.
TEST_P(Attributes, UtimesOfTheMtimeAloneOfANestedDirectoryIsSetattr) {
    make_dir(at("d/e"));
    ASSERT_NO_FATAL_FAILURE(start());
    constexpr int64_t mtime = 1'600'000'000'987'654'321;
    timespec times[2] = {{0, UTIME_OMIT}, {mtime / 1'000'000'000, mtime % 1'000'000'000}};
    // Read late too, as when the agent is behind.
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    ASSERT_EQ(::utimensat(AT_FDCWD, at("d/e").c_str(), times, 0), 0);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    auto got = changes();
    ASSERT_EQ(describe(got), Strings{"setattr d/e"});
    EXPECT_EQ(got[0].value("mtime_ns", int64_t{0}), mtime);
    EXPECT_EQ(got[0].value("mode", ""), "0040755");

    ASSERT_NO_FATAL_FAILURE(mark());
    ASSERT_EQ(::utimensat(AT_FDCWD, at("d").c_str(), times, 0), 0);
    got = changes();
    ASSERT_EQ(describe(got), Strings{"setattr d"});
    EXPECT_EQ(got[0].value("mtime_ns", int64_t{0}), mtime);
}

// The same on a fifo, a whiteout (a character device 0:0) and a symlink:
// no write either (a write record of one ships nothing, so the replica kept
// the mtime its own mknod gave it), but an attribute change.
TEST_P(Attributes, UtimesOfTheMtimeAloneOfASpecialFileIsSetattr) {
    ASSERT_EQ(::mkfifo(at("p").c_str(), 0640), 0);
    ASSERT_EQ(::mknod(at("w").c_str(), S_IFCHR | 0000, makedev(0, 0)), 0);
    ASSERT_EQ(::symlink("f", at("l").c_str()), 0);
    ASSERT_NO_FATAL_FAILURE(start());
    constexpr int64_t mtime = 1'540'690'543'757'475'122;
    timespec times[2] = {{0, UTIME_OMIT}, {mtime / 1'000'000'000, mtime % 1'000'000'000}};
    for (const char* name : {"p", "w", "l"}) {
        ASSERT_NO_FATAL_FAILURE(mark());
        ASSERT_EQ(::utimensat(AT_FDCWD, at(name).c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
        auto got = changes();
        ASSERT_EQ(describe(got), Strings{fmt::format("setattr {}", name)});
        EXPECT_EQ(got[0].value("mtime_ns", int64_t{0}), mtime) << name;
    }
}

// xattr values are not in izlog's JSON; the journal itself has them.
std::string xattr_value_at(const fs::path& journal, uint64_t lsn) {
    auto reader = journal::Reader::open(journal);
    EXPECT_TRUE(reader.has_value());
    if (!reader) return {};
    EXPECT_TRUE((*reader)->seek_lsn(lsn));
    auto rec = (*reader)->next();
    EXPECT_TRUE(rec.has_value() && rec->has_value());
    return rec && *rec ? (*rec)->xattr_value : std::string();
}

TEST_P(Attributes, SetxattrCarriesNameAndValue) {
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::setxattr(at("f").c_str(), "user.colour", "blue", 4, 0), 0);
    auto got = changes();
    ASSERT_EQ(describe(got), Strings{"setxattr f"});
    EXPECT_EQ(got[0].value("xattr_name", ""), "user.colour");
    EXPECT_EQ(got[0].value("pid", 0), getpid());
    EXPECT_EQ(xattr_value_at(watch().journal_dir(), got[0].value("lsn", uint64_t{0})), "blue");

    ASSERT_EQ(::setxattr(at("f").c_str(), "user.colour", "green", 5, XATTR_REPLACE), 0);
    got = changes();
    ASSERT_EQ(describe(got), (Strings{"setxattr f", "setxattr f"}));
    EXPECT_EQ(xattr_value_at(watch().journal_dir(), got[1].value("lsn", uint64_t{0})), "green");
}

TEST_P(Attributes, RemovexattrCarriesTheName) {
    ASSERT_EQ(::setxattr(at("f").c_str(), "user.a", "1", 1, 0), 0);
    ASSERT_EQ(::setxattr(at("f").c_str(), "user.b", "2", 1, 0), 0);
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::removexattr(at("f").c_str(), "user.a"), 0);
    auto got = changes();
    ASSERT_EQ(describe(got), Strings{"removexattr f"});
    EXPECT_EQ(got[0].value("xattr_name", ""), "user.a");
}

TEST_P(Attributes, XattrOnADirectory) {
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::setxattr(at("d").c_str(), "user.tag", "x", 1, 0), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    ASSERT_EQ(::removexattr(at("d").c_str(), "user.tag"), 0);
    auto got = changes();
    ASSERT_EQ(describe(got), (Strings{"setxattr d", "removexattr d"}));
    EXPECT_EQ(got[0].value("xattr_name", ""), "user.tag");
    EXPECT_EQ(got[1].value("xattr_name", ""), "user.tag");
}

std::vector<std::string> xattr_names_set(const std::vector<json>& records, const std::string& path) {
    std::vector<std::string> out;
    for (auto& r : with_op(records, "setxattr", path)) out.push_back(r.value("xattr_name", ""));
    std::sort(out.begin(), out.end());
    return out;
}

// An entry made in a directory with a default ACL gets an ACL of its own
// from the kernel, with no event of its own: the create must bring it.
TEST_P(Attributes, EntriesMadeUnderADefaultAclCarryTheAclTheyInherit) {
    ASSERT_NO_FATAL_FAILURE(start());
    auto acl = iz::test::acl_granting_user(4242);
    ASSERT_EQ(::setxattr(at("d").c_str(), "system.posix_acl_default", acl.data(), acl.size(), 0), 0)
        << std::strerror(errno);
    ASSERT_NO_FATAL_FAILURE(sync());
    ASSERT_NO_FATAL_FAILURE(mark());
    write_file(at("d/f"), "inherits");
    make_dir(at("d/sub"));
    auto got = changes();
    EXPECT_EQ(xattr_names_set(got, "d/f"), Strings{"system.posix_acl_access"});
    EXPECT_EQ(xattr_names_set(got, "d/sub"), (Strings{"system.posix_acl_access", "system.posix_acl_default"}));
    char value[256];
    ssize_t n = ::getxattr(at("d/f").c_str(), "system.posix_acl_access", value, sizeof value);
    ASSERT_GT(n, 0);
    auto set = with_op(got, "setxattr", "d/f");
    ASSERT_EQ(set.size(), 1u);
    EXPECT_EQ(xattr_value_at(watch().journal_dir(), set[0].value("lsn", uint64_t{0})),
              std::string(value, static_cast<size_t>(n)));
}

INSTANTIATE_TEST_SUITE_P(Filesystems, Attributes, ::testing::Values(FsType::ext4, FsType::xfs), fs_param_name);

}  // namespace
}  // namespace iz::test::agent
