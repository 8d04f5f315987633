#include "segment_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "segment_format.hpp"

namespace iz::journal {

SegmentWriter::~SegmentWriter() {
    close_file();
    if (ring_ready_) io_uring_queue_exit(&ring_);
}

Status SegmentWriter::init_ring() {
    int rc = io_uring_queue_init(8, &ring_, 0);
    if (rc < 0) return fail(sys_error("io_uring_queue_init for the journal writer", -rc));
    ring_ready_ = true;
    return {};
}

void SegmentWriter::close_file() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

Status SegmentWriter::create(const std::filesystem::path& dir, int dir_fd, uint64_t base_lsn, int64_t first_time_ns,
                             uint64_t reserve_bytes, bool preallocate) {
    close_file();
    auto name = format::segment_file_name(base_lsn);
    // Built under a temporary name and renamed into place, so a reader never
    // sees a segment without its header.
    auto tmp_name = ".new-" + name;
    path_ = dir / name;
    int fd = ::openat(dir_fd, tmp_name.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0640);
    if (fd < 0) return fail(sys_error("create journal segment", (dir / tmp_name).string(), errno));
    auto cleanup = [&](Error e) {
        ::close(fd);
        ::unlinkat(dir_fd, tmp_name.c_str(), 0);
        return fail(std::move(e));
    };
    std::string header(format::kSegmentHeaderBytes, '\0');
    auto h = format::make_segment_header(base_lsn, first_time_ns);
    std::memcpy(header.data(), &h, sizeof h);
    if (preallocate && ::fallocate(fd, 0, 0, static_cast<off_t>(reserve_bytes)) != 0 && errno != EOPNOTSUPP)
        return cleanup(sys_error("reserve space for journal segment", path_.string(), errno));
    if (::pwrite(fd, header.data(), header.size(), 0) != static_cast<ssize_t>(header.size()))
        return cleanup(sys_error("write journal segment header", path_.string(), errno ? errno : EIO));
    if (::fsync(fd) != 0) return cleanup(sys_error("fsync journal segment", path_.string(), errno));
    if (::renameat(dir_fd, tmp_name.c_str(), dir_fd, name.c_str()) != 0)
        return cleanup(sys_error("rename new journal segment into place", path_.string(), errno));
    if (::fsync(dir_fd) != 0) {
        ::close(fd);
        return fail(sys_error("fsync journal directory", dir.string(), errno));
    }
    fd_ = fd;
    offset_ = format::kSegmentHeaderBytes;
    return {};
}

Status SegmentWriter::adopt(const std::filesystem::path& path, uint64_t offset) {
    close_file();
    fd_ = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0) return fail(sys_error("open journal segment for append", path.string(), errno));
    path_ = path;
    offset_ = offset;
    return {};
}

Result<int> SegmentWriter::submit_and_reap(unsigned expected, int* first_result) {
    int rc = io_uring_submit_and_wait(&ring_, expected);
    if (rc < 0) return fail(sys_error("io_uring submit for journal segment", path_.string(), -rc));
    int worst = 0;
    for (unsigned i = 0; i < expected; ++i) {
        io_uring_cqe* cqe = nullptr;
        rc = io_uring_wait_cqe(&ring_, &cqe);
        if (rc < 0) return fail(sys_error("io_uring wait for journal segment", path_.string(), -rc));
        int res = cqe->res;
        uint64_t tag = cqe->user_data;
        io_uring_cqe_seen(&ring_, cqe);
        if (tag == 1) *first_result = res;
        else if (res < 0 && res != -ECANCELED) worst = res;
    }
    return worst;
}

Status SegmentWriter::write_durably(std::string_view bytes, bool sync) {
    while (!bytes.empty()) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        io_uring_prep_write(sqe, fd_, bytes.data(), static_cast<unsigned>(bytes.size()), offset_);
        sqe->user_data = 1;
        unsigned expected = 1;
        if (sync) {
            // Linked: the sync starts only after the write completed in full;
            // a short write cancels it and we go round again.
            io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
            io_uring_sqe* s = io_uring_get_sqe(&ring_);
            io_uring_prep_fsync(s, fd_, IORING_FSYNC_DATASYNC);
            s->user_data = 2;
            expected = 2;
        }
        int written = 0;
        auto sync_result = submit_and_reap(expected, &written);
        if (!sync_result) return fail(sync_result.error());
        if (written < 0) return fail(sys_error("write journal segment", path_.string(), -written));
        if (written == 0) return fail(sys_error("write journal segment", path_.string(), ENOSPC));
        offset_ += static_cast<uint64_t>(written);
        bytes.remove_prefix(static_cast<size_t>(written));
        if (*sync_result < 0) return fail(sys_error("fdatasync journal segment", path_.string(), -*sync_result));
        if (bytes.empty()) break;
    }
    return {};
}

Status SegmentWriter::sync_now() {
    if (fd_ >= 0 && ::fdatasync(fd_) != 0) return fail(sys_error("fdatasync journal segment", path_.string(), errno));
    return {};
}

}  // namespace iz::journal
