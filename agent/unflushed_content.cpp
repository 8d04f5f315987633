#include "agent/unflushed_content.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "common/at_path.hpp"
#include "common/file_handle.hpp"
#include "common/unique_fd.hpp"

namespace iz::agent {

namespace {

#ifndef SYS_cachestat
#define SYS_cachestat 451  // the same number on every architecture
#endif

// linux/mman.h's, which the C library's headers here do not carry yet.
struct CachestatRange {
    uint64_t off = 0;
    uint64_t len = 0;  // 0: to the end of the file
};
struct Cachestat {
    uint64_t nr_cache = 0;
    uint64_t nr_dirty = 0;
    uint64_t nr_writeback = 0;
    uint64_t nr_evicted = 0;
    uint64_t nr_recently_evicted = 0;
};

// The file an entry names: by its handle, wherever it is now (a rename
// while no agent ran, of it or of a directory above it, leaves the saved
// path naming nothing or another file), else by its path. O_NONBLOCK: a
// regular file never blocks an open, but what the name holds now may be a
// fifo the walk has not seen yet.
UniqueFd open_entry(int root_fd, const std::string& rel, const Entry& e) {
    constexpr int flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
    if (!e.handle.empty()) {
        if (int fd = open_by_handle(root_fd, e.handle, flags); fd >= 0) return UniqueFd(fd);
    }
    AtPath at(root_fd, rel);
    if (!at.ok()) return UniqueFd();
    return UniqueFd(::openat(at.dir(), at.name(), flags | O_NOFOLLOW));
}

// True when pages of the file are dirty or being written back. A file
// whose mtime in the tree is older than `since_ns` is looked at only when
// its ctime says the last run changed it: no program sets a ctime back,
// and a utimensat after a store takes the mtime back before the run.
bool unflushed(int root_fd, const std::string& rel, const Entry& e, int64_t since_ns) {
    UniqueFd fd = open_entry(root_fd, rel, e);
    if (!fd.valid()) return false;
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
    int64_t ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
    if (e.mtime_ns < since_ns && ctime_ns < since_ns) return false;
    CachestatRange range;
    Cachestat stat;
    if (::syscall(SYS_cachestat, fd.get(), &range, &stat, 0) != 0) return false;
    return stat.nr_dirty > 0 || stat.nr_writeback > 0;
}

}  // namespace

size_t mark_unflushed_content(int root_fd, Tree& tree, int64_t since_ns) {
    size_t marked = 0;
    for (auto& [path, e] : tree) {
        if (!e.is_reg() || e.mtime_ns == kUnknownMtime) continue;
        if (!unflushed(root_fd, path, e, since_ns)) continue;
        e.mtime_ns = kUnknownMtime;
        ++marked;
    }
    return marked;
}

}  // namespace iz::agent
