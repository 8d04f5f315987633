// The capture programs on real ext4 and XFS filesystems: every syscall that
// changes file content yields events naming exactly that inode and those
// bytes, attributed to the process that made it, and nothing from any other
// filesystem gets through.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "capture_harness.hpp"

namespace iz::test {
namespace {

using agent::BpfCapture;
using agent::DirtyKind;
using agent::DirtyRangeEvent;

class CaptureOn : public ::testing::TestWithParam<FsType> {
protected:
    void SetUp() override {
        auto fs = ScratchFs::make(GetParam(), 320, "bpf");
        ASSERT_TRUE(fs.has_value()) << fs.error().message;
        fs_ = std::move(*fs);
        auto capture = BpfCapture::open(fs_->dev());
        ASSERT_TRUE(capture.has_value()) << capture.error().message;
        capture_ = std::move(*capture);
        drain(*capture_);
    }
    void TearDown() override {
        if (fd_ >= 0) ::close(fd_);
        capture_.reset();
        fs_.reset();
    }

    // A new file on the scratch filesystem, opened read-write.
    uint64_t create(const std::string& name = "file") {
        path_ = fs_->mount_point() / name;
        fd_ = ::open(path_.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
        EXPECT_GE(fd_, 0) << path_;
        return inode_of(fd_);
    }

    void write_at(uint64_t offset, size_t length, char fill = 'x') {
        std::string data(length, fill);
        ASSERT_EQ(::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(length));
    }

    std::unique_ptr<ScratchFs> fs_;
    std::unique_ptr<BpfCapture> capture_;
    std::filesystem::path path_;
    int fd_ = -1;
};

TEST_P(CaptureOn, PwriteGivesExactlyItsRanges) {
    uint64_t ino = create();
    write_at(5000, 100);
    write_at(20000, 10000);
    write_at((3 << 20) + 7, 1 << 20);
    auto events = of_inode(drain(*capture_), ino);
    ASSERT_FALSE(events.empty());
    // ext4 reports one event per folio written (bytes copied); XFS one per
    // write call. Merged, both are exactly what was written.
    EXPECT_EQ(journal::coalesce(ranges_of(events, DirtyKind::write)),
              (std::vector<Range>{{5000, 100}, {20000, 10000}, {(3 << 20) + 7, 1 << 20}}));
    for (const auto& ev : events) EXPECT_EQ(ev.kind, DirtyKind::write);
    if (GetParam() == FsType::xfs) {
        EXPECT_EQ(events.size(), 3u);
    }
    EXPECT_EQ(capture_->stats().dropped, 0u);
}

TEST_P(CaptureOn, DirectWritesGiveTheirRanges) {
    uint64_t ino = create();
    ::close(fd_);
    fd_ = ::open(path_.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
    ASSERT_GE(fd_, 0);
    void* buf = nullptr;
    ASSERT_EQ(::posix_memalign(&buf, 4096, 65536), 0);
    std::memset(buf, 'd', 65536);
    EXPECT_EQ(::pwrite(fd_, buf, 65536, 1 << 20), 65536);
    EXPECT_EQ(::pwrite(fd_, buf, 8192, 8192), 8192);
    EXPECT_EQ(::pread(fd_, buf, 65536, 1 << 20), 65536);  // reads are not writes
    ::free(buf);
    auto events = of_inode(drain(*capture_), ino);
    EXPECT_EQ(journal::coalesce(ranges_of(events, DirtyKind::write)),
              (std::vector<Range>{{8192, 8192}, {1 << 20, 65536}}));
    EXPECT_EQ(events.size(), 2u);
}

TEST_P(CaptureOn, EventsNameTheWriter) {
    uint64_t ino = create();
    write_at(0, 10);
    auto events = of_inode(drain(*capture_), ino);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].pid, getpid());
    EXPECT_EQ(events[0].uid, geteuid());
    EXPECT_EQ(events[0].gid, getegid());
    EXPECT_EQ(events[0].comm, own_comm());
    EXPECT_GT(events[0].time_ns, 0u);
}

TEST_P(CaptureOn, EventsNameAnotherUsersProcess) {
    uint64_t ino = create();
    ASSERT_EQ(::fchmod(fd_, 0666), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::prctl(PR_SET_NAME, "izbpf-writer");
        if (::setresgid(4321, 4321, 4321) != 0 || ::setresuid(1234, 1234, 1234) != 0) ::_exit(2);
        int fd = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) ::_exit(3);
        ::_exit(::pwrite(fd, "hello", 5, 4096) == 5 ? 0 : 4);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    auto events = of_inode(drain(*capture_), ino);
    // A writer preempted between its write and the page's dirtying may add
    // an event of unknown range (the safety net's): harmless, and not what
    // this test is about.
    std::erase_if(events, [](const DirtyRangeEvent& e) { return e.kind == DirtyKind::unknown; });
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].pid, child);
    EXPECT_EQ(events[0].uid, 1234u);
    EXPECT_EQ(events[0].gid, 4321u);
    EXPECT_EQ(events[0].comm, "izbpf-writer");
    EXPECT_EQ(ranges_of(events, DirtyKind::write), (std::vector<Range>{{4096, 5}}));
}

// A process that changed the namespace and exited before the agent read
// its fanotify events is still named: its exit carries comm and ids.
TEST_P(CaptureOn, ProcessExitNamesTheProcess) {
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::prctl(PR_SET_NAME, "izbpf-exiting");
        if (::setresgid(4322, 4322, 4322) != 0 || ::setresuid(1235, 1235, 1235) != 0) ::_exit(2);
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    std::vector<DirtyRangeEvent> exits;
    ASSERT_TRUE(capture_->consume([&](const DirtyRangeEvent& ev) {
        if (ev.kind == DirtyKind::process_exit && ev.pid == child) exits.push_back(ev);
    }).has_value());
    ASSERT_EQ(exits.size(), 1u);
    EXPECT_EQ(exits[0].comm, "izbpf-exiting");
    EXPECT_EQ(exits[0].uid, 1235u);
    EXPECT_EQ(exits[0].gid, 4322u);
    EXPECT_EQ(exits[0].ino, 0u);
}

TEST_P(CaptureOn, TruncateGivesTheNewSize) {
    uint64_t ino = create();
    write_at(0, 30000);
    drain(*capture_);
    ASSERT_EQ(::ftruncate(fd_, 100000), 0);  // grow
    ASSERT_EQ(::ftruncate(fd_, 7000), 0);    // shrink
    ASSERT_EQ(::truncate(path_.c_str(), 5000), 0);
    ASSERT_EQ(::ftruncate(fd_, -1), -1);  // refused: no event
    auto events = of_inode(drain(*capture_), ino);
    EXPECT_EQ(ranges_of(events, DirtyKind::truncate), (std::vector<Range>{{100000, 0}, {7000, 0}, {5000, 0}}));
    EXPECT_EQ(events.size(), 3u);
}

// Opens with O_TRUNC and truncates are counted apart in the kernel (the
// tracepoint that ties a truncate to its inode looks only while a truncate
// is in flight): many creating O_TRUNC opens, each counted in and out,
// leave a truncate and an O_TRUNC open that follow them still reported,
// and a truncate to the size the file has already (which changes its
// times, and truncates its blocks past that size) too.
TEST_P(CaptureOn, TruncatesAfterManyTruncatingOpensAreStillReported) {
    for (int i = 0; i < 200; ++i) {
        auto p = fs_->mount_point() / ("churn" + std::to_string(i));
        int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0) << p;
        ASSERT_EQ(::write(fd, "hello world\n", 12), 12);
        ::close(fd);
        ASSERT_EQ(::unlink(p.c_str()), 0);
    }
    uint64_t ino = create();
    write_at(0, 20000);
    drain(*capture_);
    ASSERT_EQ(::ftruncate(fd_, 50000), 0);
    ASSERT_EQ(::ftruncate(fd_, 50000), 0);  // the same size
    int fd = ::open(path_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ::close(fd);
    auto events = of_inode(drain(*capture_), ino);
    EXPECT_EQ(ranges_of(events, DirtyKind::truncate), (std::vector<Range>{{50000, 0}, {50000, 0}, {0, 0}}));
    EXPECT_EQ(events.size(), 3u);
}

TEST_P(CaptureOn, OpenWithTruncTruncatesToZero) {
    uint64_t ino = create();
    write_at(0, 9000);
    drain(*capture_);
    int fd = ::open(path_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ::close(fd);
    // Creating a new file with O_TRUNC truncates nothing.
    int created = ::open((fs_->mount_point() / "fresh").c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(created, 0);
    ::close(created);
    auto all = drain(*capture_);
    auto events = of_inode(all, ino);
    EXPECT_EQ(ranges_of(events, DirtyKind::truncate), (std::vector<Range>{{0, 0}}));
    EXPECT_EQ(all.size(), 1u);
}

TEST_P(CaptureOn, FallocatePunchAndZeroGiveTheirRanges) {
    uint64_t ino = create();
    write_at(0, 16384);
    drain(*capture_);
    ASSERT_EQ(::fallocate(fd_, 0, 65536, 8192), 0);
    ASSERT_EQ(::fallocate(fd_, FALLOC_FL_KEEP_SIZE, 131072, 4096), 0);
    ASSERT_EQ(::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 65536, 4096), 0);
    ASSERT_EQ(::fallocate(fd_, FALLOC_FL_ZERO_RANGE, 4096, 4096), 0);
    auto events = of_inode(drain(*capture_), ino);
    EXPECT_EQ(ranges_of(events, DirtyKind::fallocate), (std::vector<Range>{{65536, 8192}, {131072, 4096}}));
    EXPECT_EQ(ranges_of(events, DirtyKind::punch_hole), (std::vector<Range>{{65536, 4096}}));
    EXPECT_EQ(ranges_of(events, DirtyKind::zero_range), (std::vector<Range>{{4096, 4096}}));
    EXPECT_EQ(events.size(), 4u);
}

TEST_P(CaptureOn, CollapseAndInsertRangeAreReported) {
    uint64_t ino = create();
    write_at(0, 1 << 20);
    ASSERT_EQ(::fsync(fd_), 0);
    drain(*capture_);
    ASSERT_EQ(::fallocate(fd_, FALLOC_FL_COLLAPSE_RANGE, 65536, 65536), 0);
    ASSERT_EQ(::fallocate(fd_, FALLOC_FL_INSERT_RANGE, 131072, 65536), 0);
    auto events = of_inode(drain(*capture_), ino);
    EXPECT_EQ(ranges_of(events, DirtyKind::collapse_range), (std::vector<Range>{{65536, 65536}}));
    EXPECT_EQ(ranges_of(events, DirtyKind::insert_range), (std::vector<Range>{{131072, 65536}}));
}

// Stores through a shared mapping pass no write tracepoint: the folio they
// dirty is reported as a change of unknown range, and so is the writeback
// that cleans it (later stores into a dirty folio fault no more).
TEST_P(CaptureOn, StoresThroughASharedMappingAreReportedAsUnknown) {
    uint64_t ino = create();
    write_at(0, 65536);
    ASSERT_EQ(::fsync(fd_), 0);  // clean folios: the next store faults
    drain(*capture_);
    void* map = ::mmap(nullptr, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    ASSERT_NE(map, MAP_FAILED);
    static_cast<char*>(map)[100] = 'M';
    static_cast<char*>(map)[5 * 4096 + 7] = 'M';
    auto stored = of_inode(drain(*capture_), ino);
    EXPECT_FALSE(ranges_of(stored, DirtyKind::unknown).empty());
    EXPECT_TRUE(ranges_of(stored, DirtyKind::write).empty());
    ASSERT_EQ(::msync(map, 65536, MS_SYNC), 0);
    auto written_back = of_inode(drain(*capture_), ino);
    EXPECT_FALSE(ranges_of(written_back, DirtyKind::unknown).empty());
    ::munmap(map, 65536);
}

// Reading a file through a writable shared mapping changes nothing: no
// unknown event (each was a whole-file compare in the agent), on ext4 where
// the faults are watched as on XFS where they are not.
TEST_P(CaptureOn, ReadingThroughAMappingRaisesNoUnknownEvents) {
    uint64_t ino = create();
    write_at(0, 65536);
    ASSERT_EQ(::fsync(fd_), 0);
    // Out of the page cache: the faults read it in (filemap_fault), rather
    // than map what is cached (fault-around).
    ASSERT_EQ(::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED), 0);
    drain(*capture_);
    auto* map = static_cast<char*>(::mmap(nullptr, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0));
    ASSERT_NE(static_cast<void*>(map), MAP_FAILED);
    unsigned sum = 0;
    for (size_t i = 0; i < 65536; i += 4096) sum += static_cast<unsigned char>(static_cast<volatile char*>(map)[i]);
    EXPECT_EQ(sum, 16u * 'x');
    ::munmap(map, 65536);
    auto events = of_inode(drain(*capture_), ino);
    EXPECT_EQ(ranges_of(events, DirtyKind::unknown).size(), 0u);
}

// A file faulted in for reading is remembered all the same: a store through
// that older mapping into a page a write(2) has since left dirty dirties
// nothing, and is reported when the page is written back.
TEST_P(CaptureOn, AStoreIntoAPageAWriteLeftDirtyIsReportedAtWriteback) {
    uint64_t ino = create();
    write_at(0, 65536);
    ASSERT_EQ(::fsync(fd_), 0);
    auto* map = static_cast<char*>(::mmap(nullptr, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0));
    ASSERT_NE(static_cast<void*>(map), MAP_FAILED);
    volatile char first = map[8192];  // faulted in for reading only
    (void)first;
    write_at(8192, 100, 'w');
    drain(*capture_);
    map[8192 + 500] = 'S';
    ::munmap(map, 65536);
    drain(*capture_);
    ASSERT_EQ(::syncfs(fd_), 0);
    auto written_back = of_inode(drain(*capture_), ino);
    EXPECT_FALSE(ranges_of(written_back, DirtyKind::unknown).empty());
}

// The safety net's list of mapped files forgets a file the kernel evicts
// (no mapping can hold it then): here, unlinked files once closed and
// unmapped.
TEST_P(CaptureOn, MappedFilesAreForgottenOnceEvicted) {
    constexpr int kFiles = 50;
    for (int i = 0; i < kFiles; ++i) {
        create("m" + std::to_string(i));
        write_at(0, 4096);
        auto* map = static_cast<char*>(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0));
        ASSERT_NE(static_cast<void*>(map), MAP_FAILED);
        map[10] = 'M';
        ::munmap(map, 4096);
        ::close(fd_);
        fd_ = -1;
    }
    EXPECT_GE(capture_->mapped_files(), static_cast<size_t>(kFiles));
    for (int i = 0; i < kFiles; ++i)
        ASSERT_EQ(::unlink((fs_->mount_point() / ("m" + std::to_string(i))).c_str()), 0);
    EXPECT_EQ(capture_->mapped_files(), 0u);
}

// Nor does it grow past its capacity with files that stay (the least
// recently faulted go first).
TEST_P(CaptureOn, MappedFilesAreBounded) {
    const size_t files = BpfCapture::kMappedFilesCapacity + 300;
    for (size_t i = 0; i < files; ++i) {
        auto p = fs_->mount_point() / ("m" + std::to_string(i));
        int fd = ::open(p.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0) << p;
        ASSERT_EQ(::ftruncate(fd, 4096), 0);
        auto* map = static_cast<char*>(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        ::close(fd);
        ASSERT_NE(static_cast<void*>(map), MAP_FAILED);
        map[10] = 'M';
        ::munmap(map, 4096);
        if (i % 1024 == 0) drain(*capture_);
    }
    drain(*capture_);
    auto remembered = capture_->mapped_files();
    EXPECT_LE(remembered, BpfCapture::kMappedFilesCapacity);
    EXPECT_GT(remembered, BpfCapture::kMappedFilesCapacity / 2);
}

// copy_file_range (and on XFS a clone) into a file: the destination range,
// whether the filesystem copies through its write path (ext4) or shares
// extents (XFS), where no write tracepoint fires.
TEST_P(CaptureOn, CopiesAndClonesGiveTheDestinationRange) {
    create("src");
    write_at(0, 256 * 1024, 's');
    ASSERT_EQ(::fsync(fd_), 0);
    int src = fd_;
    uint64_t ino = create("dst");
    write_at(0, 4096, 'd');
    drain(*capture_);
    loff_t in = 65536, out = 131072;
    ASSERT_EQ(::copy_file_range(src, &in, fd_, &out, 65536, 0), 65536);
    std::vector<Range> expected{{131072, 65536}};
    if (GetParam() == FsType::xfs) {
        file_clone_range r{};
        r.src_fd = src;
        r.src_offset = 0;
        r.src_length = 65536;
        r.dest_offset = 262144;
        ASSERT_EQ(::ioctl(fd_, FICLONERANGE, &r), 0) << std::strerror(errno);
        expected.push_back({262144, 65536});
    }
    ::close(src);
    auto events = of_inode(drain(*capture_), ino);
    EXPECT_EQ(journal::coalesce(ranges_of(events, DirtyKind::write)), expected);
}

// ext4 and XFS move the mtime of a collapse they then refuse as unaligned:
// the failed call is reported, so the agent reads the file again.
TEST_P(CaptureOn, AFailedFallocateThatTouchedTheFileIsReported) {
    uint64_t ino = create();
    write_at(0, 1 << 20);
    ASSERT_EQ(::fsync(fd_), 0);
    // A later tick, and a time that was read: the next update moves it.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    struct stat before{}, after{};
    ASSERT_EQ(::fstat(fd_, &before), 0);
    drain(*capture_);
    EXPECT_NE(::fallocate(fd_, FALLOC_FL_COLLAPSE_RANGE, 327231, 275591), 0);
    EXPECT_EQ(errno, EINVAL);
    ASSERT_EQ(::fstat(fd_, &after), 0);
    auto events = of_inode(drain(*capture_), ino);
    bool moved = before.st_mtim.tv_sec != after.st_mtim.tv_sec || before.st_mtim.tv_nsec != after.st_mtim.tv_nsec;
    EXPECT_EQ(ranges_of(events, DirtyKind::unknown).size(), moved ? 1u : 0u) << "mtime moved: " << moved;
}

// The safety net costs ordinary writes nothing: the folios they dirty are
// the ones their own tracepoints named, and no unknown event follows
// (truncates and fallocates that zero part of a folio included).
TEST_P(CaptureOn, OrdinaryWritesRaiseNoUnknownEvents) {
    uint64_t ino = create();
    for (int i = 0; i < 64; ++i) write_at(static_cast<uint64_t>(i) * 10000, 7000);
    write_at(0, 3 << 20);
    ASSERT_EQ(::ftruncate(fd_, 100000 + 123), 0);
    ASSERT_EQ(::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5000, 3000), 0);
    ASSERT_EQ(::fallocate(fd_, FALLOC_FL_ZERO_RANGE, 20000, 100), 0);
    ASSERT_EQ(::fsync(fd_), 0);
    auto events = of_inode(drain(*capture_), ino);
    EXPECT_FALSE(events.empty());
    EXPECT_EQ(ranges_of(events, DirtyKind::unknown).size(), 0u);
}

// Nor does the metadata of creating files and directories (ext4 keeps it in
// the block device's page cache, dirtied like file content).
TEST_P(CaptureOn, CreatingEntriesRaisesNoUnknownEvents) {
    for (int i = 0; i < 200; ++i) {
        auto p = fs_->mount_point() / ("f" + std::to_string(i));
        int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::write(fd, "hello", 5), 5);
        ASSERT_EQ(::fchmod(fd, 0600), 0);
        ::close(fd);
        ASSERT_EQ(::mkdir((fs_->mount_point() / ("d" + std::to_string(i))).c_str(), 0755), 0);
    }
    ::sync();
    auto events = drain(*capture_);
    EXPECT_FALSE(events.empty());
    EXPECT_EQ(ranges_of(events, DirtyKind::unknown).size(), 0u);
}

TEST_P(CaptureOn, OtherFilesystemsAreFilteredOut) {
    auto other = ScratchFs::make(GetParam(), 320, "bpf-other");
    ASSERT_TRUE(other.has_value()) << other.error().message;
    auto path = (*other)->mount_point() / "elsewhere";
    int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    std::string data(50000, 'z');
    EXPECT_EQ(::pwrite(fd, data.data(), data.size(), 0), 50000);
    EXPECT_EQ(::ftruncate(fd, 1000), 0);
    EXPECT_EQ(::fallocate(fd, 0, 0, 65536), 0);
    EXPECT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), 0);
    ::close(fd);
    fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ::close(fd);
    EXPECT_TRUE(drain(*capture_).empty());
}

TEST_P(CaptureOn, DescriptionNamesTheAttachedTracepoints) {
    std::string d = capture_->description();
    RecordProperty("description", d);
    if (GetParam() == FsType::ext4) {
        EXPECT_NE(d.find("ext4/ext4_da_write_end"), std::string::npos) << d;
        EXPECT_NE(d.find("ext4/ext4_punch_hole"), std::string::npos) << d;
        EXPECT_EQ(d.find("xfs/"), std::string::npos) << d;
        // A truncate is tied to its inode by the journal handle it starts
        // on it, not by every inode dirtying (four times as many), where
        // the kernel has that tracepoint (6.4 on).
        if (std::filesystem::exists("/sys/kernel/tracing/events/ext4/ext4_journal_start_inode")) {
            EXPECT_NE(d.find("ext4/ext4_journal_start_inode"), std::string::npos) << d;
            EXPECT_EQ(d.find("ext4/ext4_mark_inode_dirty"), std::string::npos) << d;
        }
    } else {
        EXPECT_NE(d.find("xfs/xfs_file_buffered_write"), std::string::npos) << d;
        EXPECT_NE(d.find("xfs/xfs_setattr"), std::string::npos) << d;
        EXPECT_EQ(d.find("ext4/"), std::string::npos) << d;
    }
    EXPECT_NE(d.find("syscalls/sys_exit_ftruncate"), std::string::npos) << d;
}

// Not a pass/fail on speed: how many events the agent has to coalesce per
// MiB written sequentially in chunks of several sizes (printed), and that
// they add up to exactly what was written.
TEST_P(CaptureOn, EventsPerMegabyteAreBoundedAndAddUp) {
    constexpr uint64_t kTotal = 16 << 20;
    for (size_t chunk : {size_t(4096), size_t(65536), size_t(1) << 20, size_t(1000)}) {
        SCOPED_TRACE(chunk);
        uint64_t ino = create("seq-" + std::to_string(chunk));
        std::string data(chunk, 'q');
        size_t events = 0;
        std::vector<Range> ranges;
        for (uint64_t off = 0; off < kTotal; off += chunk) {
            size_t n = std::min<uint64_t>(chunk, kTotal - off);
            ASSERT_EQ(::pwrite(fd_, data.data(), n, static_cast<off_t>(off)), static_cast<ssize_t>(n));
            if ((off / chunk) % 64 == 63) {  // drain now and then, as the agent would
                for (const auto& ev : of_inode(drain(*capture_), ino)) {
                    ++events;
                    ranges.push_back({ev.offset, ev.length});
                }
            }
        }
        for (const auto& ev : of_inode(drain(*capture_), ino)) {
            ++events;
            ranges.push_back({ev.offset, ev.length});
        }
        ::close(fd_);
        fd_ = -1;
        double per_mib = static_cast<double>(events) / (kTotal >> 20);
        std::printf("%s: %.1f events per MiB written in %zu-byte pwrites\n", fs_name(GetParam()).c_str(), per_mib,
                    chunk);
        RecordProperty("events_per_mib_" + std::to_string(chunk), std::to_string(per_mib));
        EXPECT_EQ(journal::coalesce(ranges), (std::vector<Range>{{0, kTotal}}));
        // At worst one per write call plus one per 4 KiB page it touches.
        EXPECT_LE(per_mib, double((1 << 20) / chunk) + 257.0);
    }
    EXPECT_EQ(capture_->stats().dropped, 0u);
}

// A ring buffer the agent does not drain fills up; what no longer fits is
// counted, never silently lost, so the agent knows to treat files as wholly
// dirty.
TEST_P(CaptureOn, EventsThatDoNotFitAreCounted) {
    uint64_t ino = create();
    constexpr size_t kWrites = 300000;  // more 72-byte records than 16 MiB holds
    for (size_t i = 0; i < kWrites; ++i) ASSERT_EQ(::pwrite(fd_, "b", 1, static_cast<off_t>(i % 4096)), 1);
    size_t delivered = 0;
    for (const auto& ev : drain(*capture_)) delivered += ev.ino == ino;
    auto stats = capture_->stats();
    EXPECT_GT(stats.dropped, 0u);
    EXPECT_GT(delivered, 100000u);
    // Exits of processes elsewhere on the machine share the buffer (and
    // its drops), so the sum may exceed the writes by a few.
    EXPECT_GE(delivered + stats.dropped, kWrites);
    EXPECT_LE(delivered + stats.dropped, kWrites + 1000);
    // Once drained, events flow again.
    write_at(8192, 10);
    EXPECT_EQ(ranges_of(of_inode(drain(*capture_), ino), DirtyKind::write), (std::vector<Range>{{8192, 10}}));
}

INSTANTIATE_TEST_SUITE_P(Filesystems, CaptureOn, ::testing::Values(FsType::ext4, FsType::xfs),
                         [](const auto& info) { return fs_name(info.param); });

// Where no tracepoint fits, open() fails with a reason instead of watching
// nothing; the agent then falls back to fanotify alone. (A kernel refusing
// BPF outright cannot be staged here as root.)
TEST(CaptureRefusal, FilesystemWithoutTracepointsIsAClearError) {
    auto fs = ScratchFs::make(FsType::tmpfs, 16, "bpf");
    ASSERT_TRUE(fs.has_value()) << fs.error().message;
    auto capture = BpfCapture::open((*fs)->dev());
    ASSERT_FALSE(capture.has_value());
    EXPECT_NE(capture.error().message.find("tmpfs"), std::string::npos) << capture.error().message;
}

}  // namespace
}  // namespace iz::test

namespace iz::test {
namespace {

// Run by hand (--gtest_also_run_disabled_tests): time 4 KiB pwrites with
// and without the capture programs attached (the writer's cost).
double seconds_writing(int fd, uint64_t total, size_t chunk, agent::BpfCapture* capture) {
    std::string data(chunk, 'w');
    size_t drained = 0;
    auto start = std::chrono::steady_clock::now();
    for (uint64_t off = 0; off < total; off += chunk) {
        if (::pwrite(fd, data.data(), chunk, static_cast<off_t>(off)) != static_cast<ssize_t>(chunk)) return -1;
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // Drained after the clock stops: the agent reads the ring buffer in its
    // own thread, so the writer pays only for the programs.
    if (capture) drained += *capture->consume([](const agent::DirtyRangeEvent&) {});
    return seconds;
}

TEST(CaptureCost, DISABLED_SmallWritesWithAndWithoutCapture) {
    for (FsType type : {FsType::ext4, FsType::xfs}) {
        auto fs = ScratchFs::make(type, 1024, "bpf-cost");
        ASSERT_TRUE(fs.has_value()) << fs.error().message;
        constexpr uint64_t kTotal = 256 << 20;
        auto run = [&](agent::BpfCapture* capture) {
            auto path = (*fs)->mount_point() / "cost";
            int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
            double best = 1e9;
            for (int i = 0; i < 3; ++i) best = std::min(best, seconds_writing(fd, kTotal, 4096, capture));
            ::close(fd);
            return best;
        };
        double without = run(nullptr);
        auto capture = agent::BpfCapture::open((*fs)->dev());
        ASSERT_TRUE(capture.has_value()) << capture.error().message;
        double with = run(capture->get());
        std::printf("%s: 256 MiB in 4 KiB pwrites: %.3f s without, %.3f s with capture (x%.3f), dropped %llu\n",
                    fs_name(type).c_str(), without, with, with / without,
                    static_cast<unsigned long long>((*capture)->stats().dropped));
    }
}

}  // namespace
}  // namespace iz::test
