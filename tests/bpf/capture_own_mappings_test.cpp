// The agent maps only its own journal, to read it. Were the files it maps
// remembered by the safety net for stores through a mapping, every
// writeback of the journal (one per group commit) came back to the agent
// as a change of unknown content to a file outside the tree: a wakeup and
// a fruitless look-up each time. Another process's mapping of the same
// kind of file is still watched.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "capture_harness.hpp"

namespace iz::test {
namespace {

using agent::BpfCapture;
using agent::DirtyKind;

class CaptureOwnMappings : public ::testing::TestWithParam<FsType> {
protected:
    void SetUp() override {
        auto fs = ScratchFs::make(GetParam(), 320, "bpf-own");
        ASSERT_TRUE(fs.has_value()) << fs.error().message;
        fs_ = std::move(*fs);
        auto capture = BpfCapture::open(fs_->dev(), ::getpid());
        ASSERT_TRUE(capture.has_value()) << capture.error().message;
        capture_ = std::move(*capture);
        drain(*capture_);
    }
    void TearDown() override {
        capture_.reset();
        fs_.reset();
    }

    // A file of 64 KiB, written back, opened read-write.
    int make_file(const std::string& name, uint64_t& ino) {
        int fd = ::open((fs_->mount_point() / name).c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
        EXPECT_GE(fd, 0);
        std::string data(65536, 'x');
        EXPECT_EQ(::pwrite(fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
        EXPECT_EQ(::fsync(fd), 0);
        ino = inode_of(fd);
        return fd;
    }

    std::unique_ptr<ScratchFs> fs_;
    std::unique_ptr<BpfCapture> capture_;
};

// A journal's life: mapped to be read, appended to, written back.
TEST_P(CaptureOwnMappings, AFileTheAgentMapsToReadIsNotReportedAtEachWriteback) {
    uint64_t ino = 0;
    int fd = make_file("segment", ino);
    ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);  // the fault reads it in
    drain(*capture_);
    auto* map = static_cast<const char*>(::mmap(nullptr, 65536, PROT_READ, MAP_SHARED, fd, 0));
    ASSERT_NE(static_cast<const void*>(map), MAP_FAILED);
    EXPECT_EQ(static_cast<const volatile char*>(map)[4096], 'x');
    for (int commit = 0; commit < 3; ++commit) {
        std::string record(512, 'r');
        ASSERT_EQ(::pwrite(fd, record.data(), record.size(), 65536 + commit * 512), 512);
        ASSERT_EQ(::fdatasync(fd), 0);
    }
    ::munmap(const_cast<char*>(map), 65536);
    auto events = of_inode(drain(*capture_), ino);
    EXPECT_EQ(ranges_of(events, DirtyKind::unknown).size(), 0u);
    EXPECT_EQ(journal::coalesce(ranges_of(events, DirtyKind::write)), (std::vector<Range>{{65536, 1536}}));
    EXPECT_EQ(capture_->mapped_files(), 0u);
    ::close(fd);
}

// Another process's stores through a mapping are reported as before.
TEST_P(CaptureOwnMappings, AnotherProcesssStoresThroughAMappingAreStillReported) {
    uint64_t ino = 0;
    int fd = make_file("shared", ino);
    drain(*capture_);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        void* map = ::mmap(nullptr, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) _exit(1);
        static_cast<char*>(map)[100] = 'M';
        _exit(::msync(map, 65536, MS_SYNC) == 0 ? 0 : 2);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    auto events = of_inode(drain(*capture_), ino);
    EXPECT_FALSE(ranges_of(events, DirtyKind::unknown).empty());
    EXPECT_EQ(capture_->mapped_files(), 1u);
    ::close(fd);
}

INSTANTIATE_TEST_SUITE_P(Filesystems, CaptureOwnMappings, ::testing::Values(FsType::ext4, FsType::xfs),
                         [](const auto& info) { return fs_name(info.param); });

}  // namespace
}  // namespace iz::test
