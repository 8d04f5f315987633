#include "e2e_content_workload.hpp"

#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <liburing.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace iz::test::e2e {

namespace {

struct Fd {
    int fd;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

// A buffer O_DIRECT accepts: aligned to 4096.
std::unique_ptr<char, decltype(&std::free)> aligned_buffer(size_t size, char fill) {
    void* p = nullptr;
    EXPECT_EQ(::posix_memalign(&p, 4096, size), 0);
    std::memset(p, fill, size);
    return {static_cast<char*>(p), &std::free};
}

}  // namespace

void put_file(const std::filesystem::path& p, size_t size, char fill) {
    Fd f(::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_GE(f.fd, 0) << p << ": " << std::strerror(errno);
    std::string data(size, fill);
    ASSERT_EQ(::write(f.fd, data.data(), data.size()), static_cast<ssize_t>(size)) << p;
}

void store_through_mapping(const std::filesystem::path& p, const std::vector<uint64_t>& offsets, size_t count,
                           char fill) {
    int fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << p << ": " << std::strerror(errno);
    struct stat st{};
    ASSERT_EQ(::fstat(fd, &st), 0);
    auto size = static_cast<size_t>(st.st_size);
    void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    ASSERT_NE(map, MAP_FAILED) << p << ": " << std::strerror(errno);
    for (auto off : offsets) {
        ASSERT_LE(off + count, size);
        std::memset(static_cast<char*>(map) + off, fill, count);
    }
    EXPECT_EQ(::msync(map, size, MS_SYNC), 0) << std::strerror(errno);
    ::munmap(map, size);
}

void write_with_libaio(const std::filesystem::path& p, size_t size, char fill, bool direct) {
    Fd f(::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644));
    ASSERT_GE(f.fd, 0) << p << ": " << std::strerror(errno);
    write_with_libaio_at(f.fd, 0, size, fill);
}

void write_with_libaio_at(int fd, uint64_t offset, size_t size, char fill) {
    aio_context_t ctx = 0;
    ASSERT_EQ(::syscall(SYS_io_setup, 8, &ctx), 0) << std::strerror(errno);
    auto buf = aligned_buffer(size, fill);
    iocb cb{};
    cb.aio_fildes = static_cast<uint32_t>(fd);
    cb.aio_lio_opcode = IOCB_CMD_PWRITE;
    cb.aio_buf = reinterpret_cast<uint64_t>(buf.get());
    cb.aio_nbytes = size;
    cb.aio_offset = static_cast<int64_t>(offset);
    iocb* cbs[1] = {&cb};
    EXPECT_EQ(::syscall(SYS_io_submit, ctx, 1, cbs), 1) << std::strerror(errno);
    io_event ev{};
    EXPECT_EQ(::syscall(SYS_io_getevents, ctx, 1, 1, &ev, nullptr), 1) << std::strerror(errno);
    EXPECT_EQ(ev.res, static_cast<int64_t>(size));
    ::syscall(SYS_io_destroy, ctx);
}

void write_with_io_uring(const std::filesystem::path& p, size_t size, char fill, bool direct) {
    Fd f(::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644));
    ASSERT_GE(f.fd, 0) << p << ": " << std::strerror(errno);
    io_uring ring;
    ASSERT_EQ(io_uring_queue_init(8, &ring, 0), 0);
    auto buf = aligned_buffer(size, fill);
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_write(sqe, f.fd, buf.get(), static_cast<unsigned>(size), 0);
    EXPECT_EQ(io_uring_submit(&ring), 1);
    io_uring_cqe* cqe = nullptr;
    EXPECT_EQ(io_uring_wait_cqe(&ring, &cqe), 0);
    if (cqe) {
        EXPECT_EQ(cqe->res, static_cast<int>(size));
        io_uring_cqe_seen(&ring, cqe);
    }
    io_uring_queue_exit(&ring);
}

void link_in_tmpfile(const std::filesystem::path& dir, const std::string& name, size_t size, char fill) {
    Fd f(::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644));
    ASSERT_GE(f.fd, 0) << dir << ": " << std::strerror(errno);
    std::string data(size, fill);
    ASSERT_EQ(::write(f.fd, data.data(), size), static_cast<ssize_t>(size));
    auto proc = "/proc/self/fd/" + std::to_string(f.fd);
    ASSERT_EQ(::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, (dir / name).c_str(), AT_SYMLINK_FOLLOW), 0)
        << std::strerror(errno);
}

bool write_then_copy_in_one_open(const std::filesystem::path& src, const std::filesystem::path& dst, uint64_t src_off,
                                 uint64_t len, uint64_t dst_off, char fill, bool clone) {
    Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
    Fd out(::open(dst.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    EXPECT_GE(in.fd, 0) << src;
    EXPECT_GE(out.fd, 0) << dst;
    std::string block(4096, fill);
    EXPECT_EQ(::pwrite(out.fd, block.data(), block.size(), 0), 4096);
    if (clone) {
        file_clone_range r{};
        r.src_fd = in.fd;
        r.src_offset = src_off;
        r.src_length = len;
        r.dest_offset = dst_off;
        if (::ioctl(out.fd, FICLONERANGE, &r) != 0) {
            EXPECT_TRUE(errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL) << std::strerror(errno);
            return false;
        }
        return true;
    }
    auto in_off = static_cast<loff_t>(src_off);
    auto out_off = static_cast<loff_t>(dst_off);
    auto left = len;
    while (left > 0) {
        ssize_t n = ::copy_file_range(in.fd, &in_off, out.fd, &out_off, left, 0);
        EXPECT_GT(n, 0) << std::strerror(errno);
        if (n <= 0) break;
        left -= static_cast<uint64_t>(n);
    }
    return true;
}

}  // namespace iz::test::e2e
