// The random workload over every interface that changes a file or the
// namespace (see random_interface_operations in e2e_workload.hpp).
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>
#include <liburing.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "e2e_workload.hpp"
#include "support/posix_acl.hpp"

namespace fs = std::filesystem;

namespace iz::test::e2e {

namespace {

constexpr off_t kBlock = 4096;

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

// A buffer aligned for O_DIRECT.
struct Aligned {
    char* p = nullptr;
    explicit Aligned(size_t n) {
        if (::posix_memalign(reinterpret_cast<void**>(&p), kBlock, n) != 0) throw std::bad_alloc();
    }
    ~Aligned() { std::free(p); }
    Aligned(const Aligned&) = delete;
    Aligned& operator=(const Aligned&) = delete;
};

bool under(const fs::path& p, const fs::path& top) {
    const auto& s = p.native();
    const auto& t = top.native();
    return s == t || (s.size() > t.size() && s.starts_with(t) && s[t.size()] == '/');
}

class Workload {
public:
    Workload(const fs::path& dir, uint32_t seed, OpLog& log, OperationKinds kinds)
        : dir_(dir), rng_(seed), log_(log), kinds_(std::move(kinds)) {
        dirs_.push_back(dir);
        if (::io_uring_queue_init(8, &ring_, 0) != 0) throw std::runtime_error("io_uring_queue_init failed");
        if (::syscall(SYS_io_setup, 8, &aio_) != 0)
            throw std::runtime_error(fmt::format("io_setup: {}", std::strerror(errno)));
    }
    ~Workload() {
        ::io_uring_queue_exit(&ring_);
        ::syscall(SYS_io_destroy, aio_);
    }

    void run(int count, std::chrono::microseconds pace) {
        for (i_ = 0; i_ < count; ++i_) {
            step();
            if (pace.count() > 0) std::this_thread::sleep_for(pace);
        }
    }

private:
    // --- bookkeeping -------------------------------------------------------

    uint32_t below(uint32_t n) { return n ? rng_() % n : 0; }
    template <class V>
    fs::path& pick(V& v) {
        return v[below(static_cast<uint32_t>(v.size()))];
    }
    std::string bytes(size_t n) {
        std::string s(n, '\0');
        for (auto& c : s) c = static_cast<char>(rng_() & 0xff);
        return s;
    }
    fs::path fresh(const std::string& prefix) {
        // As in random_operations: a quarter of new names sort inside the
        // key range of a directory beside them ("d5.3", "d5-4").
        if (dirs_.size() > 1 && below(4) == 0) {
            const auto& d = dirs_[1 + below(static_cast<uint32_t>(dirs_.size() - 1))];
            static constexpr const char* joints[] = {".", "-", " ", "+"};
            return d.parent_path() / fmt::format("{}{}{}{}", d.filename().string(), joints[below(4)], prefix, n_++);
        }
        return pick(dirs_) / fmt::format("{}{}", prefix, n_++);
    }
    std::string rel(const fs::path& p) const {
        auto r = p.lexically_relative(dir_).string();
        // Paths beyond PATH_MAX are shortened in the log only.
        return r.size() > 300 ? fmt::format("{}...({} bytes)...{}", r.substr(0, 40), r.size(), r.substr(r.size() - 60)) : r;
    }
    std::vector<std::vector<fs::path>*> pools() { return {&files_, &links_, &dirs_, &specials_, &deep_}; }
    // rename(2) between two names of one file does nothing at all.
    static bool same_file(const fs::path& a, const fs::path& b) {
        struct stat sa{}, sb{};
        return ::lstat(a.c_str(), &sa) == 0 && ::lstat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
               sa.st_ino == sb.st_ino;
    }
    void drop(const fs::path& p) {
        for (auto* v : {&files_, &links_, &specials_}) std::erase(*v, p);
    }
    void moved(const fs::path& from, const fs::path& to) {
        for (auto* v : pools())
            for (auto& p : *v)
                if (under(p, from)) p = to.native() + p.native().substr(from.native().size());
    }
    void exchanged(const fs::path& a, const fs::path& b) {
        for (auto* v : pools())
            for (auto& p : *v) {
                if (under(p, a))
                    p = b.native() + p.native().substr(a.native().size());
                else if (under(p, b))
                    p = a.native() + p.native().substr(b.native().size());
            }
    }

    // Runs `call` (-1 and errno on failure, as syscalls do), logs it with its
    // outcome, and throws on a failure not in `expected`.
    bool attempt(const std::string& what, std::initializer_list<int> expected, const std::function<long()>& call) {
        errno = 0;
        long rc = call();
        int err = rc < 0 ? errno : 0;
        if (err == 0) {
            log_.add(fmt::format("{:5} {}", i_, what));
            return true;
        }
        bool fine = std::find(expected.begin(), expected.end(), err) != expected.end();
        log_.add(fmt::format("{:5} {} -> {} ({})", i_, what, strerrorname_np(err), fine ? "expected" : "UNEXPECTED"));
        if (!fine) throw std::runtime_error(fmt::format("operation {}: {}: {}", i_, what, std::strerror(err)));
        return false;
    }
    int open_file(const fs::path& p, int flags) {
        int fd = ::open(p.c_str(), flags | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) throw std::runtime_error(fmt::format("operation {}: open '{}': {}", i_, rel(p), std::strerror(errno)));
        return fd;
    }
    off_t size_of(int fd) {
        struct stat st{};
        ::fstat(fd, &st);
        return st.st_size;
    }
    off_t offset_in(off_t size) { return size > 0 ? static_cast<off_t>(rng_() % static_cast<uint64_t>(size)) : 0; }
    // A file to write into (made first when there is none).
    fs::path& target() {
        if (files_.empty()) create_plain();
        return pick(files_);
    }

    // --- the operations ----------------------------------------------------

    struct Kind {
        unsigned weight;  // per mille
        const char* name;
        void (Workload::*run)();
    };
    // A function, so that the table may name operations defined below.
    static const std::vector<Kind>& kinds_table() {
        static const std::vector<Kind> table = {
        {60, "create", &Workload::create_plain},      {30, "write", &Workload::append_or_pwrite},
        {20, "mkdir", &Workload::mkdir_},             {50, "rename", &Workload::rename_plain},
        {30, "rename-dir", &Workload::rename_dir},    {40, "exchange", &Workload::rename_exchange},
        {30, "noreplace", &Workload::rename_noreplace}, {25, "whiteout", &Workload::rename_whiteout},
        {45, "mmap", &Workload::mmap_write},          {20, "aio", &Workload::aio_buffered},
        {20, "aio-direct", &Workload::aio_direct},    {20, "uring", &Workload::uring_buffered},
        {20, "uring-direct", &Workload::uring_direct}, {30, "tmpfile", &Workload::tmpfile_link},
        {30, "copy-range", &Workload::copy_range},    {30, "clone", &Workload::clone_range},
        {60, "fallocate", &Workload::fallocate_},     {30, "fallocate-refused", &Workload::fallocate_refused},
        {35, "splice", &Workload::splice_write},
        {20, "sendfile", &Workload::sendfile_write},  {35, "truncate", &Workload::truncate_},
        {6, "sparse", &Workload::sparse},             {14, "deep", &Workload::deep},
        {40, "xattr", &Workload::xattr_},             {20, "acl", &Workload::acl},
        {25, "link", &Workload::hard_link},           {30, "special", &Workload::special},
        {55, "unlink", &Workload::unlink_},           {25, "chmod", &Workload::chmod_},
        {20, "chown", &Workload::chown_},             {25, "utimes", &Workload::utimes_},
        {25, "symlink", &Workload::symlink_},         {35, "rmdir", &Workload::rmdir_},
        };
        return table;
    }

    bool wanted(const Kind& k) const {
        auto in = [&](const std::vector<std::string>& v) { return std::find(v.begin(), v.end(), k.name) != v.end(); };
        if (in(kinds_.skip)) return false;
        return kinds_.only.empty() || in(kinds_.only) || std::string_view(k.name) == "create";
    }

    void step() {
        if (files_.empty()) return create_plain();
        unsigned total = 0;
        for (auto& k : kinds_table()) total += k.weight;
        for (;;) {
            unsigned draw = below(total);
            for (auto& k : kinds_table()) {
                if (draw < k.weight) {
                    if (!wanted(k)) break;  // draw again
                    return (this->*k.run)();
                }
                draw -= k.weight;
            }
        }
    }

    void create_plain() {
        auto p = fresh("f");
        auto data = bytes(below(3) == 0 ? below(200000) : below(2000));
        if (attempt(fmt::format("create {} ({} bytes)", rel(p), data.size()), {}, [&]() -> long {
                Fd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
                if (fd.fd < 0) return -1;
                return ::write(fd.fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) ? 0 : -1;
            }))
            files_.push_back(p);
    }

    void append_or_pwrite() {
        auto p = target();
        Fd fd(open_file(p, O_WRONLY));
        auto data = bytes(1 + below(5000));
        if (below(2)) {
            auto off = offset_in(size_of(fd.fd));
            attempt(fmt::format("pwrite {} at {} ({} bytes)", rel(p), off, data.size()), {},
                    [&] { return ::pwrite(fd.fd, data.data(), data.size(), off); });
        } else {
            // pwritev2 with RWF_APPEND: an append through a descriptor not opened O_APPEND.
            iovec iov{data.data(), data.size()};
            attempt(fmt::format("pwritev2 RWF_APPEND {} ({} bytes)", rel(p), data.size()), {},
                    [&] { return ::pwritev2(fd.fd, &iov, 1, -1, RWF_APPEND); });
        }
    }

    void mkdir_() {
        if (dirs_.size() >= 150) return;
        auto p = fresh("d");
        if (attempt(fmt::format("mkdir {}", rel(p)), {}, [&] { return ::mkdir(p.c_str(), 0755); })) dirs_.push_back(p);
    }

    void rename_plain() {
        bool link = !links_.empty() && below(5) == 0;
        auto from = link ? pick(links_) : pick(files_);
        auto to = below(4) == 0 ? pick(files_) : fresh("r");
        if (from == to || same_file(from, to)) return;
        if (attempt(fmt::format("rename {} -> {}", rel(from), rel(to)), {},
                    [&] { return ::rename(from.c_str(), to.c_str()); })) {
            drop(to);
            moved(from, to);
        }
    }

    void rename_dir() {
        if (dirs_.size() < 2) return;
        auto from = dirs_[1 + below(static_cast<uint32_t>(dirs_.size() - 1))];
        auto to = fresh("m");
        if (under(to.parent_path(), from)) return;
        if (attempt(fmt::format("rename-dir {} -> {}", rel(from), rel(to)), {},
                    [&] { return ::rename(from.c_str(), to.c_str()); }))
            moved(from, to);
    }

    // Any two entries but the root: files, links, specials and directories
    // trade places (a file with a directory too).
    fs::path any_entry() {
        auto total = files_.size() + links_.size() + specials_.size() + dirs_.size() - 1;
        auto k = below(static_cast<uint32_t>(total));
        for (auto* v : {&files_, &links_, &specials_}) {
            if (k < v->size()) return (*v)[k];
            k -= static_cast<uint32_t>(v->size());
        }
        return dirs_[1 + k];
    }

    void rename_exchange() {
        auto a = any_entry(), b = any_entry();
        if (a == b || under(a, b) || under(b, a)) return;
        if (attempt(fmt::format("renameat2 RENAME_EXCHANGE {} <-> {}", rel(a), rel(b)), {},
                    [&] { return ::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE); }))
            exchanged(a, b);
    }

    void rename_noreplace() {
        auto from = pick(files_);
        // Half onto an existing name (refused), half onto a new one.
        bool onto = below(2) == 0 && files_.size() > 1;
        auto to = onto ? pick(files_) : fresh("n");
        if (from == to) return;
        if (attempt(fmt::format("renameat2 RENAME_NOREPLACE {} -> {}", rel(from), rel(to)), {EEXIST},
                    [&] { return ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE); }))
            moved(from, to);
    }

    // The source name is left as a whiteout: a character device 0:0.
    void rename_whiteout() {
        auto from = pick(files_);
        auto to = below(3) == 0 ? pick(files_) : fresh("w");
        if (from == to || same_file(from, to)) return;
        if (attempt(fmt::format("renameat2 RENAME_WHITEOUT {} -> {}", rel(from), rel(to)), {},
                    [&] { return ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_WHITEOUT); })) {
            drop(to);
            moved(from, to);
            specials_.push_back(from);
        }
    }

    // Writes through a shared mapping, as databases and editors do: maybe
    // grown first with ftruncate, then msync(MS_SYNC), msync(MS_ASYNC) or
    // only munmap.
    void mmap_write() {
        auto p = target();
        Fd fd(open_file(p, O_RDWR));
        off_t size = size_of(fd.fd);
        std::string how = "mmap";
        if (size == 0 || below(3) == 0) {
            size += 1 + below(20000);
            if (!attempt(fmt::format("ftruncate {} to {} (for mmap)", rel(p), size), {},
                         [&] { return ::ftruncate(fd.fd, size); }))
                return;
        }
        void* map = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd.fd, 0);
        if (map == MAP_FAILED) throw std::runtime_error(fmt::format("mmap '{}': {}", rel(p), std::strerror(errno)));
        auto off = offset_in(size);
        auto data = bytes(std::min<size_t>(1 + below(8000), static_cast<size_t>(size - off)));
        std::memcpy(static_cast<char*>(map) + off, data.data(), data.size());
        unsigned sync = below(3);
        int flags = sync == 0 ? MS_SYNC : MS_ASYNC;
        attempt(fmt::format("mmap write {} at {} ({} bytes), {}", rel(p), off, data.size(),
                            sync == 0 ? "msync MS_SYNC" : sync == 1 ? "msync MS_ASYNC" : "munmap without msync"),
                {}, [&] { return sync == 2 ? 0 : ::msync(map, static_cast<size_t>(size), flags); });
        ::munmap(map, static_cast<size_t>(size));
    }

    void aio_buffered() { aio_write(false); }
    void aio_direct() { aio_write(true); }
    void aio_write(bool direct) {
        auto p = target();
        Fd fd(open_file(p, O_WRONLY | (direct ? O_DIRECT : 0)));
        auto submit = [&](const char* buf, size_t len, off_t off) -> long {
            iocb cb{};
            cb.aio_fildes = static_cast<uint32_t>(fd.fd);
            cb.aio_lio_opcode = IOCB_CMD_PWRITE;
            cb.aio_buf = reinterpret_cast<uint64_t>(buf);
            cb.aio_nbytes = len;
            cb.aio_offset = off;
            iocb* cbs[1] = {&cb};
            if (::syscall(SYS_io_submit, aio_, 1, cbs) != 1) return -1;
            io_event ev{};
            if (::syscall(SYS_io_getevents, aio_, 1, 1, &ev, nullptr) != 1) return -1;
            if (ev.res < 0) {
                errno = static_cast<int>(-ev.res);
                return -1;
            }
            return 0;
        };
        std::string what = "libaio io_submit pwrite " + rel(p);
        if (direct) {
            attempt_direct(what, fd.fd, submit);
        } else {
            auto off = offset_in(size_of(fd.fd) + 1000);
            auto data = bytes(1 + below(20000));
            attempt(fmt::format("{} buffered at {} ({} bytes)", what, off, data.size()), {},
                    [&] { return submit(data.data(), data.size(), off); });
        }
    }

    // An O_DIRECT write: aligned buffer, block-aligned offset and length;
    // one in ten deliberately unaligned (EINVAL, nothing written).
    void attempt_direct(std::string what, int fd, const std::function<long(const char*, size_t, off_t)>& submit) {
        // The description is complete only once the offsets are drawn.
        off_t size = size_of(fd);
        size_t len = static_cast<size_t>(kBlock) * (1 + below(4));
        off_t off = (offset_in(size + kBlock) / kBlock) * kBlock;
        bool unaligned = below(10) == 0;
        if (unaligned) off += 512 + below(3000);
        Aligned buf(len);
        auto data = bytes(len);
        std::memcpy(buf.p, data.data(), len);
        what += fmt::format(" O_DIRECT at {} ({} bytes{})", off, len, unaligned ? ", unaligned" : "");
        if (unaligned)
            attempt(what, {EINVAL}, [&] { return submit(buf.p, len, off); });
        else
            attempt(what, {}, [&] { return submit(buf.p, len, off); });
    }

    void uring_buffered() { uring_write(false); }
    void uring_direct() { uring_write(true); }
    void uring_write(bool direct) {
        auto p = target();
        bool vectored = below(2) == 0;
        Fd fd(open_file(p, O_WRONLY | (direct ? O_DIRECT : 0)));
        auto submit = [&](const char* buf, size_t len, off_t off) -> long {
            io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
            iovec iov{const_cast<char*>(buf), len};
            if (vectored)
                ::io_uring_prep_writev(sqe, fd.fd, &iov, 1, static_cast<uint64_t>(off));
            else
                ::io_uring_prep_write(sqe, fd.fd, buf, static_cast<unsigned>(len), static_cast<uint64_t>(off));
            int rc = ::io_uring_submit_and_wait(&ring_, 1);
            if (rc < 0) {
                errno = -rc;
                return -1;
            }
            io_uring_cqe* cqe = nullptr;
            rc = ::io_uring_wait_cqe(&ring_, &cqe);
            if (rc < 0) {
                errno = -rc;
                return -1;
            }
            int res = cqe->res;
            ::io_uring_cqe_seen(&ring_, cqe);
            if (res < 0) {
                errno = -res;
                return -1;
            }
            return 0;
        };
        std::string what = fmt::format("io_uring {} {}", vectored ? "writev" : "write", rel(p));
        if (direct) {
            attempt_direct(what, fd.fd, submit);
        } else {
            auto off = offset_in(size_of(fd.fd) + 1000);
            auto data = bytes(1 + below(20000));
            attempt(fmt::format("{} buffered at {} ({} bytes)", what, off, data.size()), {},
                    [&] { return submit(data.data(), data.size(), off); });
        }
    }

    // A file written while it has no name, then linked in (or, one time in
    // five, never linked: nothing may appear).
    void tmpfile_link() {
        auto p = fresh("t");
        Fd fd(::open(p.parent_path().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0640));
        if (fd.fd < 0)
            throw std::runtime_error(fmt::format("O_TMPFILE in '{}': {}", rel(p.parent_path()), std::strerror(errno)));
        auto data = bytes(below(30000));
        attempt(fmt::format("O_TMPFILE write in {} ({} bytes)", rel(p.parent_path()), data.size()), {},
                [&] { return ::write(fd.fd, data.data(), data.size()); });
        if (below(5) == 0) {
            log_.add(fmt::format("{:5} O_TMPFILE closed unlinked", i_));
            return;
        }
        // Half by AT_EMPTY_PATH, half through /proc/self/fd as unprivileged programs do.
        bool empty_path = below(2) == 0;
        if (attempt(fmt::format("linkat O_TMPFILE -> {} ({})", rel(p), empty_path ? "AT_EMPTY_PATH" : "/proc/self/fd"), {},
                    [&] {
                        if (empty_path) return ::linkat(fd.fd, "", AT_FDCWD, p.c_str(), AT_EMPTY_PATH);
                        auto proc = fmt::format("/proc/self/fd/{}", fd.fd);
                        return ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, p.c_str(), AT_SYMLINK_FOLLOW);
                    }))
            files_.push_back(p);
        if (below(2) == 0) {
            auto more = bytes(1 + below(3000));
            attempt(fmt::format("write after linkat {} ({} bytes)", rel(p), more.size()), {},
                    [&] { return ::write(fd.fd, more.data(), more.size()); });
        }
    }

    void copy_range() {
        auto from = pick(files_), to = pick(files_);
        Fd in(open_file(from, O_RDONLY));
        Fd out(open_file(to, O_WRONLY));
        loff_t off_in = offset_in(size_of(in.fd));
        loff_t off_out = offset_in(size_of(out.fd) + 5000);
        size_t len = 1 + below(256 << 10);
        // Within one file (by any of its names), overlapping ranges are refused.
        bool same = same_file(from, to);
        attempt(fmt::format("copy_file_range {} at {} -> {} at {} ({} bytes)", rel(from), off_in, rel(to), off_out, len),
                same ? std::initializer_list<int>{EINVAL} : std::initializer_list<int>{},
                [&] { return ::copy_file_range(in.fd, &off_in, out.fd, &off_out, len, 0); });
    }

    // Shares blocks: XFS does it, ext4 refuses (EOPNOTSUPP).
    void clone_range() {
        auto from = pick(files_), to = pick(files_);
        Fd in(open_file(from, O_RDONLY));
        Fd out(open_file(to, O_RDWR));
        if (below(4) == 0) {
            attempt(fmt::format("ioctl FICLONE {} -> {}", rel(from), rel(to)), {EOPNOTSUPP, EXDEV, EINVAL},
                    [&] { return ::ioctl(out.fd, FICLONE, in.fd); });
            return;
        }
        off_t src_size = size_of(in.fd);
        file_clone_range r{};
        r.src_fd = in.fd;
        r.src_offset = static_cast<uint64_t>(offset_in(src_size) / kBlock * kBlock);
        uint64_t blocks = static_cast<uint64_t>(src_size - static_cast<off_t>(r.src_offset)) / kBlock;
        // Whole blocks, or (length 0) up to the source's end.
        r.src_length = blocks > 0 && below(2) ? kBlock * (1 + below(static_cast<uint32_t>(blocks))) : 0;
        r.dest_offset = static_cast<uint64_t>(offset_in(size_of(out.fd) + kBlock) / kBlock * kBlock);
        attempt(fmt::format("ioctl FICLONERANGE {} at {} -> {} at {} ({} bytes)", rel(from), r.src_offset, rel(to),
                            r.dest_offset, r.src_length),
                {EOPNOTSUPP, EXDEV, EINVAL}, [&] { return ::ioctl(out.fd, FICLONERANGE, &r); });
    }

    void fallocate_() {
        auto p = target();
        Fd fd(open_file(p, O_RDWR));
        off_t size = size_of(fd.fd);
        struct Mode {
            const char* name;
            int mode;
        };
        static constexpr Mode modes[] = {
            {"plain", 0},
            {"KEEP_SIZE", FALLOC_FL_KEEP_SIZE},
            {"PUNCH_HOLE|KEEP_SIZE", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE},
            {"ZERO_RANGE", FALLOC_FL_ZERO_RANGE},
            {"ZERO_RANGE|KEEP_SIZE", FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE},
            {"COLLAPSE_RANGE", FALLOC_FL_COLLAPSE_RANGE},
            {"INSERT_RANGE", FALLOC_FL_INSERT_RANGE},
        };
        auto k = below(std::size(modes));
        const auto& m = modes[k];
        off_t off = 0, len = 0;
        auto too_small = [&] {
            log_.add(fmt::format("{:5} fallocate {} {}: too small for it (size {}), skipped", i_, m.name, rel(p), size));
        };
        switch (k) {
            case 0: case 1:  // may reach past the end
                off = offset_in(size + 300000);
                len = 1 + below(200000);
                break;
            case 2: case 3: case 4:
                off = offset_in(size + 10000);
                len = 1 + below(100000);
                break;
            case 5: {  // whole blocks, ending before the end of the file
                off_t blocks = size / kBlock;
                if (blocks < 2) return too_small();
                off = kBlock * below(static_cast<uint32_t>(blocks - 1));
                len = kBlock * (1 + below(static_cast<uint32_t>(blocks - 1 - off / kBlock)));
                if (off + len >= size) return too_small();
                break;
            }
            default:  // whole blocks, starting inside the file
                if (size < kBlock) return too_small();
                off = kBlock * below(static_cast<uint32_t>(size / kBlock));
                len = kBlock * (1 + below(16));
                break;
        }
        // A filesystem may refuse a mode altogether.
        attempt(fmt::format("fallocate {} {} at {} ({} bytes, size was {})", m.name, rel(p), off, len, size), {EOPNOTSUPP},
                [&] { return ::fallocate(fd.fd, m.mode, off, len); });
    }

    // The calls that must fail, and why. (A refused COLLAPSE_RANGE or
    // INSERT_RANGE still sets the file's mtime and ctime on ext4 and XFS.)
    void fallocate_refused() {
        auto p = target();
        Fd fd(open_file(p, O_RDWR));
        off_t size = size_of(fd.fd);
        off_t off = 0, len = 0;
        int mode = 0;
        const char* name = "";
        switch (below(4)) {
            case 0:
                mode = FALLOC_FL_PUNCH_HOLE, name = "PUNCH_HOLE without KEEP_SIZE";
                off = offset_in(size + 1), len = 1 + below(10000);
                break;
            case 1:
                mode = FALLOC_FL_COLLAPSE_RANGE, name = "COLLAPSE_RANGE unaligned";
                off = 1 + below(4000), len = kBlock;
                break;
            case 2:
                mode = FALLOC_FL_COLLAPSE_RANGE, name = "COLLAPSE_RANGE to the end";
                off = (size / kBlock) * kBlock, len = kBlock * (1 + below(4));
                break;
            default:
                mode = FALLOC_FL_INSERT_RANGE, name = "INSERT_RANGE past the end";
                off = ((size + kBlock - 1) / kBlock + below(4)) * kBlock, len = kBlock;
                break;
        }
        attempt(fmt::format("fallocate {} {} at {} ({} bytes, size was {})", name, rel(p), off, len, size),
                {EOPNOTSUPP, EINVAL}, [&] { return ::fallocate(fd.fd, mode, off, len); });
    }

    // Data that reaches the file from a pipe: written into it, or gifted
    // with vmsplice, then spliced to an offset.
    void splice_write() {
        auto p = target();
        Fd fd(open_file(p, O_WRONLY));
        int pipes[2];
        if (::pipe2(pipes, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
        Fd r(pipes[0]), w(pipes[1]);
        auto data = bytes(1 + below(60000));
        bool gift = below(2) == 0;
        if (gift) {
            iovec iov{data.data(), data.size()};
            if (::vmsplice(w.fd, &iov, 1, 0) != static_cast<ssize_t>(data.size()))
                throw std::runtime_error(fmt::format("vmsplice: {}", std::strerror(errno)));
        } else if (::write(w.fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
            throw std::runtime_error(fmt::format("write to a pipe: {}", std::strerror(errno)));
        }
        loff_t off = offset_in(size_of(fd.fd) + 2000);
        attempt(fmt::format("splice {}into {} at {} ({} bytes)", gift ? "from vmsplice " : "", rel(p), off, data.size()),
                {}, [&]() -> long {
                    size_t done = 0;
                    while (done < data.size()) {
                        auto n = ::splice(r.fd, nullptr, fd.fd, &off, data.size() - done, 0);
                        if (n <= 0) return -1;
                        done += static_cast<size_t>(n);
                    }
                    return 0;
                });
    }

    void sendfile_write() {
        auto from = pick(files_), to = pick(files_);
        if (same_file(from, to)) return;
        Fd in(open_file(from, O_RDONLY));
        Fd out(open_file(to, O_WRONLY));
        off_t at = offset_in(size_of(out.fd) + 1000);
        ::lseek(out.fd, at, SEEK_SET);
        off_t off_in = offset_in(size_of(in.fd));
        size_t len = 1 + below(100000);
        attempt(fmt::format("sendfile {} at {} -> {} at {} ({} bytes)", rel(from), off_in, rel(to), at, len), {},
                [&] { return ::sendfile(out.fd, in.fd, &off_in, len); });
    }

    void truncate_() {
        auto p = target();
        struct stat st{};
        ::stat(p.c_str(), &st);
        bool up = below(2) == 0;
        off_t to = up ? st.st_size + 1 + below(300000) : offset_in(st.st_size + 1);
        if (below(2))
            attempt(fmt::format("truncate {} {} to {}", up ? "up" : "down", rel(p), to), {},
                    [&] { return ::truncate(p.c_str(), to); });
        else {
            Fd fd(open_file(p, O_WRONLY));
            attempt(fmt::format("ftruncate {} {} to {}", up ? "up" : "down", rel(p), to), {},
                    [&] { return ::ftruncate(fd.fd, to); });
        }
    }

    // A hole of 8 to 32 MiB: data written far past the end, or a file made
    // by seeking (a replica that fills the hole runs out of room first).
    void sparse() {
        bool fresh_file = below(2) == 0;
        auto p = fresh_file ? fresh("sp") : target();
        Fd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
        if (fd.fd < 0) throw std::runtime_error(fmt::format("open '{}': {}", rel(p), std::strerror(errno)));
        off_t at = size_of(fd.fd) + (static_cast<off_t>(8 + below(25)) << 20) + below(5000);
        auto data = bytes(1 + below(10000));
        if (attempt(fmt::format("sparse write {} at {} ({} bytes)", rel(p), at, data.size()), {},
                    [&] { return ::pwrite(fd.fd, data.data(), data.size(), at); }) &&
            fresh_file)
            files_.push_back(p);
    }

    // Directories of 200-byte names, deeper than PATH_MAX all told, made and
    // written through directory descriptors; or a file down there renamed
    // or written again.
    void deep() {
        if (!deep_.empty() && below(2) == 0) return deep_again();
        auto top = fresh("deep");
        if (!attempt(fmt::format("mkdir {} (top of a deep chain)", rel(top)), {},
                     [&] { return ::mkdir(top.c_str(), 0755); }))
            return;
        dirs_.push_back(top);
        Fd at(::open(top.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        fs::path path = top;
        int levels = 21 + static_cast<int>(below(4));
        for (int l = 0; l < levels; ++l) {
            std::string name = fmt::format("level{:02}-", l);
            name.resize(200, 'x');
            if (::mkdirat(at.fd, name.c_str(), 0755) != 0)
                throw std::runtime_error(fmt::format("mkdirat '{}': {}", rel(path / name), std::strerror(errno)));
            int next = ::openat(at.fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            ::close(at.fd);
            at.fd = next;
            path /= name;
        }
        auto file = path / fmt::format("bottom{}", n_++);
        auto data = bytes(below(20000));
        if (attempt(fmt::format("create {} ({} bytes, path {} bytes)", rel(file), data.size(), file.native().size()), {},
                    [&]() -> long {
                        Fd fd(::openat(at.fd, file.filename().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
                        if (fd.fd < 0) return -1;
                        return ::write(fd.fd, data.data(), data.size());
                    }))
            deep_.push_back(file);
    }

    // Opens the directory holding a deep path, component by component.
    int open_deep_parent(const fs::path& p) {
        int at = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        for (auto& part : p.parent_path().relative_path()) {
            int next = ::openat(at, part.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
            ::close(at);
            if (next < 0) throw std::runtime_error(fmt::format("openat on the way to '{}': {}", rel(p), std::strerror(errno)));
            at = next;
        }
        return at;
    }

    void deep_again() {
        auto& p = pick(deep_);
        Fd at(open_deep_parent(p));
        if (below(2) == 0) {
            auto to = p.parent_path() / fmt::format("renamed{}", n_++);
            if (attempt(fmt::format("renameat {} -> {}", rel(p), to.filename().string()), {},
                        [&] { return ::renameat(at.fd, p.filename().c_str(), at.fd, to.filename().c_str()); }))
                p = to;
        } else {
            auto data = bytes(1 + below(5000));
            attempt(fmt::format("write {} ({} bytes)", rel(p), data.size()), {}, [&]() -> long {
                Fd fd(::openat(at.fd, p.filename().c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
                if (fd.fd < 0) return -1;
                return ::write(fd.fd, data.data(), data.size());
            });
        }
    }

    fs::path file_or_dir() {
        if (dirs_.size() > 1 && below(3) == 0) return dirs_[1 + below(static_cast<uint32_t>(dirs_.size() - 1))];
        return pick(files_);
    }

    void xattr_() {
        auto p = file_or_dir();
        static constexpr const char* names[] = {"user.tag", "user.colour", "user.big"};
        std::string name = names[below(3)];
        unsigned how = below(4);
        if (how == 0) {
            attempt(fmt::format("removexattr {} {}", rel(p), name), {ENODATA},
                    [&] { return ::lremovexattr(p.c_str(), name.c_str()); });
            return;
        }
        auto v = name == "user.big" ? bytes(1000 + below(3000)) : fmt::format("v{}", below(1000));
        // XATTR_CREATE onto a present name and XATTR_REPLACE of an absent one fail.
        int flags = how == 1 ? XATTR_CREATE : how == 2 ? XATTR_REPLACE : 0;
        attempt(fmt::format("setxattr{} {} {} ({} bytes)", how == 1 ? " XATTR_CREATE" : how == 2 ? " XATTR_REPLACE" : "",
                            rel(p), name, v.size()),
                {EEXIST, ENODATA}, [&] { return ::lsetxattr(p.c_str(), name.c_str(), v.data(), v.size(), flags); });
    }

    void acl() {
        bool dir = dirs_.size() > 1 && below(3) == 0;
        auto p = dir ? dirs_[1 + below(static_cast<uint32_t>(dirs_.size() - 1))] : pick(files_);
        const char* name = dir && below(2) ? "system.posix_acl_default" : "system.posix_acl_access";
        if (below(4) == 0) {
            attempt(fmt::format("remove ACL {} {}", rel(p), name), {ENODATA},
                    [&] { return ::removexattr(p.c_str(), name); });
            return;
        }
        auto uid = 4000 + below(100);
        auto v = acl_granting_user(uid);
        attempt(fmt::format("set ACL {} {} (user {} rwx)", rel(p), name, uid), {},
                [&] { return ::setxattr(p.c_str(), name, v.data(), v.size(), 0); });
    }

    void hard_link() {
        auto from = pick(files_);
        auto p = fresh("h");
        if (attempt(fmt::format("link {} -> {}", rel(from), rel(p)), {}, [&] { return ::link(from.c_str(), p.c_str()); }))
            files_.push_back(p);
    }

    void special() {
        unsigned kind = below(4);
        auto p = fresh(kind == 0 ? "fifo" : kind == 1 ? "chr" : kind == 2 ? "blk" : "sock");
        bool made = false;
        if (kind == 0) {
            made = attempt(fmt::format("mkfifo {}", rel(p)), {}, [&] { return ::mkfifo(p.c_str(), 0640); });
        } else if (kind == 1) {
            made = attempt(fmt::format("mknod {} char 1:3", rel(p)), {},
                           [&] { return ::mknod(p.c_str(), S_IFCHR | 0600, makedev(1, 3)); });
        } else if (kind == 2) {
            made = attempt(fmt::format("mknod {} block 7:{}", rel(p), 200 + (i_ % 50)), {},
                           [&] { return ::mknod(p.c_str(), S_IFBLK | 0600, makedev(7, 200 + (i_ % 50))); });
        } else {
            sockaddr_un addr{};
            addr.sun_family = AF_UNIX;
            if (p.native().size() >= sizeof addr.sun_path) {
                log_.add(fmt::format("{:5} bind unix socket {}: path too long for sun_path, skipped", i_, rel(p)));
                return;
            }
            std::memcpy(addr.sun_path, p.c_str(), p.native().size() + 1);
            Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
            made = attempt(fmt::format("bind unix socket {}", rel(p)), {},
                           [&] { return ::bind(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr); });
        }
        if (made) specials_.push_back(p);
    }

    void unlink_() {
        unsigned which = below(6);
        auto& pool = which == 0 && !links_.empty() ? links_ : which == 1 && !specials_.empty() ? specials_ : files_;
        auto p = pick(pool);
        if (attempt(fmt::format("unlink {}", rel(p)), {}, [&] { return ::unlink(p.c_str()); })) drop(p);
    }

    void chmod_() {
        bool special = !specials_.empty() && below(4) == 0;
        auto p = special ? pick(specials_) : file_or_dir();
        mode_t mode = 0600 | below(0200) | (below(8) == 0 ? S_ISGID : 0);
        attempt(fmt::format("chmod {} {:04o}", rel(p), mode), {}, [&] { return ::chmod(p.c_str(), mode); });
    }

    void chown_() {
        unsigned which = below(4);
        auto p = which == 0 && !links_.empty() ? pick(links_) : which == 1 && !specials_.empty() ? pick(specials_) : file_or_dir();
        uid_t uid = below(3) == 0 ? 0 : 1000 + below(3);
        gid_t gid = below(3) == 0 ? 0 : 2000 + below(3);
        attempt(fmt::format("lchown {} {}:{}", rel(p), uid, gid), {}, [&] { return ::lchown(p.c_str(), uid, gid); });
    }

    void utimes_() {
        unsigned which = below(4);
        auto p = which == 0 && !links_.empty() ? pick(links_) : which == 1 && !specials_.empty() ? pick(specials_) : file_or_dir();
        timespec ts[2] = {{static_cast<time_t>(1'500'000'000 + below(100'000'000)), 0},
                          {static_cast<time_t>(1'500'000'000 + below(100'000'000)), static_cast<long>(below(1'000'000'000))}};
        attempt(fmt::format("utimensat {} mtime {}.{:09}", rel(p), ts[1].tv_sec, ts[1].tv_nsec), {},
                [&] { return ::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW); });
    }

    void symlink_() {
        auto p = fresh("s");
        auto target = pick(files_).filename().string();
        if (attempt(fmt::format("symlink {} -> {}", rel(p), target), {}, [&] { return ::symlink(target.c_str(), p.c_str()); }))
            links_.push_back(p);
    }

    void rmdir_() {
        if (dirs_.size() < 2) return;
        auto p = dirs_[1 + below(static_cast<uint32_t>(dirs_.size() - 1))];
        std::error_code ec;
        if (!fs::is_empty(p, ec) || ec) return;
        if (attempt(fmt::format("rmdir {}", rel(p)), {}, [&] { return ::rmdir(p.c_str()); })) std::erase(dirs_, p);
    }

    fs::path dir_;
    std::mt19937 rng_;
    OpLog& log_;
    OperationKinds kinds_;
    int i_ = 0;
    int n_ = 0;
    std::vector<fs::path> files_, links_, dirs_, specials_, deep_;
    io_uring ring_{};
    aio_context_t aio_ = 0;
};

}  // namespace

OperationKinds OperationKinds::from_environment() {
    auto split = [](const char* var) {
        std::vector<std::string> out;
        const char* v = std::getenv(var);
        std::string s = v ? v : "";
        for (size_t at = 0; at < s.size();) {
            auto comma = s.find(',', at);
            if (comma == std::string::npos) comma = s.size();
            if (comma > at) out.push_back(s.substr(at, comma - at));
            at = comma + 1;
        }
        return out;
    };
    return {split("IZ_E2E_ONLY_OPS"), split("IZ_E2E_SKIP_OPS")};
}

void random_interface_operations(const fs::path& dir, uint32_t seed, int count, OpLog& log, OperationKinds kinds,
                                 std::chrono::microseconds pace) {
    Workload(dir, seed, log, std::move(kinds)).run(count, pace);
}

}  // namespace iz::test::e2e
