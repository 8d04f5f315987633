#include "common/durable_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "support/fsync_probe.hpp"
#include "support/scratch_fs.hpp"

namespace fs = std::filesystem;
using iz::test::FsyncProbe;

namespace {

std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

class DurableFile : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / fmt::format("iz-durable-{}-{}", ::getpid(), counter_++);
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    fs::path dir_;
    static inline int counter_ = 0;
};

}  // namespace

// The content reaches the file through a synced temporary, and then the
// directory is synced: without that the rename may not survive a crash.
TEST_F(DurableFile, SyncsTheFileThenItsDirectory) {
    auto file = dir_ / "state";
    ASSERT_TRUE(iz::write_file_durably(file, "first\n"));
    FsyncProbe probe;
    ASSERT_TRUE(iz::write_file_durably(file, "second\n", 0640));
    EXPECT_EQ(read_all(file), "second\n");
    EXPECT_EQ(fs::status(file).permissions() & fs::perms::all, fs::perms(0640) & fs::perms::all);
    EXPECT_FALSE(fs::exists(dir_ / "state.tmp"));
    int file_sync = FsyncProbe::index_of(file);
    int dir_sync = FsyncProbe::index_of(dir_);
    ASSERT_GE(file_sync, 0) << "the file was not fsynced";
    ASSERT_GE(dir_sync, 0) << "the directory was not fsynced";
    EXPECT_LT(file_sync, dir_sync) << "the directory was synced before the file's content";
    EXPECT_EQ(probe.synced().size(), 2u);
}

TEST_F(DurableFile, ATemporaryNamedByTheCallerIsWhatIsRenamed) {
    FsyncProbe probe;
    auto file = dir_ / "cursor";
    ASSERT_TRUE(iz::write_file_durably(file, "7\n", 0600, dir_ / ".cursor.tmp"));
    EXPECT_EQ(read_all(file), "7\n");
    EXPECT_FALSE(fs::exists(dir_ / ".cursor.tmp"));
    EXPECT_FALSE(fs::exists(dir_ / "cursor.tmp"));
    EXPECT_GE(FsyncProbe::index_of(dir_), 0);
}

// Something in the way of the rename: the old entry stays, and the error
// says which step failed, on which path, and why.
TEST_F(DurableFile, AFailedRenameSaysWhatWhereAndWhy) {
    auto file = dir_ / "state";
    fs::create_directories(file / "inside");
    auto ok = iz::write_file_durably(file, "content");
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().sys_errno, EISDIR);
    EXPECT_EQ(ok.error().message, fmt::format("rename into place '{}': {}", file.string(), std::strerror(EISDIR)));
    EXPECT_TRUE(fs::is_directory(file / "inside"));
}

TEST_F(DurableFile, AFailedFileSyncIsAnErrorAndNothingIsReplaced) {
    auto file = dir_ / "state";
    ASSERT_TRUE(iz::write_file_durably(file, "old"));
    FsyncProbe probe(FsyncProbe::Fail::files);
    auto ok = iz::write_file_durably(file, "new");
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().sys_errno, EIO);
    EXPECT_EQ(ok.error().message, fmt::format("fsync '{}.tmp': {}", file.string(), std::strerror(EIO)));
    EXPECT_EQ(read_all(file), "old");
}

TEST_F(DurableFile, AFailedDirectorySyncIsAnError) {
    FsyncProbe probe(FsyncProbe::Fail::dirs);
    auto ok = iz::write_file_durably(dir_ / "state", "new");
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().sys_errno, EIO);
    EXPECT_EQ(ok.error().message, fmt::format("fsync directory '{}': {}", dir_.string(), std::strerror(EIO)));
}

// A full filesystem: the write of the temporary fails, the file keeps its
// old content.
TEST(DurableFileFull, ANoSpaceWriteSaysWhatWhereAndWhy) {
    auto scratch = iz::test::ScratchFs::make(iz::test::FsType::tmpfs, 1, "durable-full");
    ASSERT_TRUE(scratch) << scratch.error().message;
    auto file = (*scratch)->mount_point() / "state";
    ASSERT_TRUE(iz::write_file_durably(file, "old"));
    auto ok = iz::write_file_durably(file, std::string(2 << 20, 'x'));
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().sys_errno, ENOSPC);
    EXPECT_EQ(ok.error().message, fmt::format("write '{}.tmp': {}", file.string(), std::strerror(ENOSPC)));
    EXPECT_EQ(read_all(file), "old");
}
