#include "agent/unflushed_content.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "common/at_path.hpp"
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

// Whether the file at `rel` changed at or after `since_ns` by its ctime,
// which no program sets back: a utimensat after a store takes the mtime
// back to before the run, and the ctime forward.
bool changed_since(const AtPath& at, int64_t since_ns) {
    struct stat st{};
    if (::fstatat(at.dir(), at.name(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
    return static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec >= since_ns;
}

// True when pages of the file at `rel` are dirty or being written back.
// A file whose mtime in the tree is older than `since_ns` is looked at
// only when its ctime says the last run changed it.
bool unflushed(int root_fd, const std::string& rel, bool check_ctime, int64_t since_ns) {
    AtPath at(root_fd, rel);
    if (!at.ok()) return false;
    if (check_ctime && !changed_since(at, since_ns)) return false;
    // O_NONBLOCK: a regular file never blocks an open, but what the name
    // holds now may be a fifo the walk has not seen yet.
    UniqueFd fd(::openat(at.dir(), at.name(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (!fd.valid()) return false;
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
        if (!unflushed(root_fd, path, e.mtime_ns < since_ns, since_ns)) continue;
        e.mtime_ns = kUnknownMtime;
        ++marked;
    }
    return marked;
}

}  // namespace iz::agent
