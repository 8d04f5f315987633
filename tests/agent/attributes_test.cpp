// Attribute changes: chmod, chown and utimes each give one setattr carrying
// the entry's new mode, owner and times; user.* xattrs give setxattr and
// removexattr with the name (and, in the journal, the value).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "agent_fixture.hpp"
#include "journal/reader.hpp"

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

INSTANTIATE_TEST_SUITE_P(Filesystems, Attributes, ::testing::Values(FsType::ext4, FsType::xfs), fs_param_name);

}  // namespace
}  // namespace iz::test::agent
