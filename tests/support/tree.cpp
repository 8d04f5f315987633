#include "support/tree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace iz::test {

namespace fs = std::filesystem;

TempDir::TempDir(const std::string& tag) {
    std::string pattern = (fs::temp_directory_path() / fmt::format("iz-{}-XXXXXX", tag)).string();
    if (!::mkdtemp(pattern.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path_ = pattern;
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);  // never follows symlinks
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error(fmt::format("cannot read '{}'", p.string()));
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const fs::path& p, const std::string& content, unsigned mode) {
    {
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        if (!out) throw std::runtime_error(fmt::format("cannot write '{}'", p.string()));
        out << content;
    }
    fs::permissions(p, static_cast<fs::perms>(mode));
}

int64_t mtime_ns(const fs::path& p) {
    struct stat st{};
    if (::lstat(p.c_str(), &st) != 0) return -1;
    return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

std::string xattr(const fs::path& p, const std::string& name) {
    char buf[65536];
    ssize_t n = ::lgetxattr(p.c_str(), name.c_str(), buf, sizeof buf);
    return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

namespace {

// A file descriptor closed when it goes out of scope.
struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

[[noreturn]] void fail(const std::string& what, const std::string& rel) {
    throw std::system_error(errno, std::generic_category(), fmt::format("{} '{}'", what, rel));
}

// user.* and POSIX ACLs: what a source's owner sets (security.* labels
// follow each host's policy; XFS's trusted.SGI_ACL_* are its private copy
// of the ACLs). Only regular files and directories can carry them, and
// those are read through an open descriptor.
std::string user_xattrs(int fd) {
    std::vector<char> names(65536);
    ssize_t n = ::flistxattr(fd, names.data(), names.size());
    if (n <= 0) return {};
    std::map<std::string, std::string> found;
    std::vector<char> value(65536);
    for (ssize_t off = 0; off < n;) {
        std::string name(names.data() + off);
        off += static_cast<ssize_t>(name.size()) + 1;
        if (!name.starts_with("user.") && !name.starts_with("system.posix_acl_")) continue;
        ssize_t v = ::fgetxattr(fd, name.c_str(), value.data(), value.size());
        found[name] = v < 0 ? std::string("<unreadable>") : std::string(value.data(), static_cast<size_t>(v));
    }
    std::string out;
    for (auto& [k, v] : found) out += fmt::format(" {}={:?}", k, v);
    return out;
}

uint64_t data_extents(int fd, off_t size) {
    uint64_t n = 0;
    for (off_t at = 0; at < size;) {
        off_t data = ::lseek(fd, at, SEEK_DATA);
        if (data < 0 || data >= size) break;  // ENXIO: nothing but a hole up to the end
        off_t hole = ::lseek(fd, data, SEEK_HOLE);
        if (hole < 0) hole = size;
        ++n;
        at = hole;
    }
    return n;
}

// The first extents of a file, with the flags that explain room taken
// beyond its data (unwritten: fallocated; past EOF: preallocated).
std::string extent_map(int fd, off_t size) {
    constexpr unsigned kMax = 8;
    std::vector<char> buf(sizeof(struct fiemap) + kMax * sizeof(struct fiemap_extent));
    auto* fm = reinterpret_cast<struct fiemap*>(buf.data());
    fm->fm_start = 0;
    fm->fm_length = FIEMAP_MAX_OFFSET;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = kMax;
    if (::ioctl(fd, FS_IOC_FIEMAP, fm) != 0) return fmt::format("(FIEMAP: {})", std::strerror(errno));
    std::string out = fmt::format("size {}:", size);
    for (unsigned i = 0; i < fm->fm_mapped_extents; ++i) {
        const auto& e = fm->fm_extents[i];
        out += fmt::format(" [{}+{}{}{}]", e.fe_logical, e.fe_length, e.fe_flags & FIEMAP_EXTENT_UNWRITTEN ? " unwritten" : "",
                           e.fe_logical >= static_cast<uint64_t>(size) ? " past-EOF" : "");
    }
    if (fm->fm_mapped_extents == kMax) out += " ...";
    return out;
}

std::string content_hash(int fd, const std::string& rel, uint64_t* size) {
    XXH3_state_t* state = XXH3_createState();
    XXH3_64bits_reset(state);
    std::vector<char> buf(1 << 20);
    *size = 0;
    for (;;) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            XXH3_freeState(state);
            fail("read", rel);
        }
        if (n == 0) break;
        XXH3_64bits_update(state, buf.data(), static_cast<size_t>(n));
        *size += static_cast<uint64_t>(n);
    }
    auto h = XXH3_64bits_digest(state);
    XXH3_freeState(state);
    return fmt::format("{:016x}", h);
}

char type_of(mode_t m) {
    return S_ISDIR(m) ? 'd' : S_ISREG(m) ? 'f' : S_ISLNK(m) ? 'l' : S_ISFIFO(m) ? 'p' : S_ISSOCK(m) ? 's' : S_ISCHR(m) ? 'c'
         : S_ISBLK(m) ? 'b' : '?';
}

// Visits every entry beneath a directory descriptor, depth first, with
// its path relative to the root; `dirfd` stays owned by the caller.
struct Walker {
    std::string skip_top;
    // (dirfd holding it, its name there, its relative path, its stat, an fd of it when a file or directory)
    std::function<void(int, const char*, const std::string&, const struct stat&, int)> visit;

    void entry(int dirfd, const char* name, const std::string& rel, bool top) {
        struct stat st{};
        if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) return;  // gone meanwhile
            fail("fstatat", rel);
        }
        if (top && !skip_top.empty() && rel == skip_top) return;
        if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
            int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0);
            Fd fd(::openat(dirfd, name, flags));
            if (fd.fd < 0) fail("openat", rel);
            visit(dirfd, name, rel, st, fd.fd);
            if (S_ISDIR(st.st_mode)) children(fd.fd, rel);
        } else {
            visit(dirfd, name, rel, st, -1);
        }
    }

    void children(int dirfd, const std::string& rel) {
        int copy = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
        if (copy < 0) fail("dup", rel);
        DIR* d = ::fdopendir(copy);
        if (!d) {
            ::close(copy);
            fail("fdopendir", rel);
        }
        ::rewinddir(d);
        std::vector<std::string> names;
        while (auto* e = ::readdir(d)) {
            if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
            names.emplace_back(e->d_name);
        }
        ::closedir(d);
        for (auto& n : names) entry(dirfd, n.c_str(), rel == "." ? n : rel + "/" + n, rel == ".");
    }

    void run(const fs::path& root) {
        Fd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (fd.fd < 0) fail("open", root.string());
        struct stat st{};
        if (::fstat(fd.fd, &st) != 0) fail("fstat", root.string());
        visit(AT_FDCWD, root.c_str(), ".", st, fd.fd);
        children(fd.fd, ".");
    }
};

std::string describe(int dirfd, const char* name, const std::string& rel, const struct stat& st, int fd) {
    int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    std::string line = fmt::format("{} {} mode={:04o} uid={} gid={} mtime={} nlink={}", rel, type_of(st.st_mode),
                                   st.st_mode & 07777, st.st_uid, st.st_gid, mtime, st.st_nlink);
    if (S_ISREG(st.st_mode)) {
        uint64_t size = 0;
        auto hash = content_hash(fd, rel, &size);
        line += fmt::format(" size={} xxh={}", size, hash);
    } else if (S_ISLNK(st.st_mode)) {
        std::vector<char> target(static_cast<size_t>(st.st_size) + 4097);
        ssize_t n = ::readlinkat(dirfd, name, target.data(), target.size());
        if (n < 0) fail("readlinkat", rel);
        line += fmt::format(" -> {}", std::string_view(target.data(), static_cast<size_t>(n)));
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        line += fmt::format(" rdev={}:{}", major(st.st_rdev), minor(st.st_rdev));
    }
    if (fd >= 0) line += user_xattrs(fd);
    return line;
}

}  // namespace

std::string manifest(const fs::path& root, const std::string& skip_top) {
    std::vector<std::string> lines;
    Walker w{skip_top, [&](int dirfd, const char* name, const std::string& rel, const struct stat& st, int fd) {
                 lines.push_back(describe(dirfd, name, rel, st, fd));
             }};
    w.run(root);
    std::sort(lines.begin(), lines.end());
    std::string out;
    for (auto& l : lines) out += l + "\n";
    return out;
}

std::map<std::string, Allocation> allocations(const fs::path& root, const std::string& skip_top) {
    std::map<std::string, Allocation> out;
    Walker w{skip_top, [&](int, const char*, const std::string& rel, const struct stat& st, int fd) {
                 if (!S_ISREG(st.st_mode)) return;
                 out[rel] = Allocation{static_cast<uint64_t>(st.st_blocks), static_cast<uint64_t>(st.st_blksize),
                                       data_extents(fd, st.st_size), extent_map(fd, st.st_size)};
             }};
    w.run(root);
    return out;
}

std::string allocation_excess(const fs::path& source, const fs::path& replica, const std::string& skip_top) {
    auto src = allocations(source, skip_top);
    auto dst = allocations(replica, skip_top);
    std::string out;
    for (auto& [rel, d] : dst) {
        auto s = src.find(rel);
        if (s == src.end()) continue;
        uint64_t block = std::max(s->second.block_size, d.block_size) / 512;
        uint64_t allowed = s->second.blocks + s->second.data_extents * block;
        if (d.blocks > allowed)
            out += fmt::format(
                "{}: replica takes {} KiB, source {} KiB in {} data extent(s) (at most {} KiB allowed); "
                "replica {}; source {}\n",
                rel, d.blocks / 2, s->second.blocks / 2, s->second.data_extents, allowed / 2, d.extent_map,
                s->second.extent_map);
    }
    return out;
}

std::string listing(const fs::path& root) {
    std::vector<std::string> names;
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it)
        names.push_back(it->path().lexically_relative(root).string());
    std::sort(names.begin(), names.end());
    std::string out;
    for (auto& n : names) out += n + "\n";
    return out;
}

}  // namespace iz::test
