#include "dir_cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "apply_impl.hpp"

namespace iz::replicator {

Result<Parent> DirCache::parent_of(std::string_view rel) {
    if (rel.empty()) return open_parent(root_fd_, rel);  // the root itself: rare, not kept
    auto [dir, name] = split_parent(rel);
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
        if (it->path != dir) continue;
        Parent p{it->dir, std::string(name)};
        // Most recently used last: a hit near the end moves little.
        std::rotate(it.base() - 1, it.base(), entries_.end());
        return p;
    }
    auto p = open_parent(root_fd_, rel);
    if (!p) return p;
    if (auto ok = insert(Entry{std::string(dir), p->dir, std::nullopt, {}}); !ok) return fail(ok.error());
    return p;
}

void DirCache::adopt(std::string_view rel, SharedFd dir) {
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->path != rel) continue;
        // Kept open before under this name: another directory now (made
        // anew by a replayed mkdir). Its deferred mtime still applies to it.
        (void)apply_mtime(*it);
        entries_.erase(it);
        break;
    }
    (void)insert(Entry{std::string(rel), std::move(dir), std::nullopt, {}});
}

Status DirCache::set_mtime(const Parent& p, std::optional<int64_t> mtime_ns, const std::string& path, uint64_t lsn) {
    if (!mtime_ns) return {};
    if (Entry* e = find(p.dir)) {
        e->mtime_ns = mtime_ns;
        e->mtime_for = path;
        e->lsn = lsn;
        return {};
    }
    return apply_mtime(Entry{{}, p.dir, mtime_ns, path, lsn});
}

Status DirCache::settle(std::string_view rel) {
    for (auto& e : entries_) {
        if (e.path != rel) continue;
        auto ok = apply_mtime(e);
        e.mtime_ns.reset();
        return ok;
    }
    return {};
}

Status DirCache::flush() {
    Status first;
    for (auto& e : entries_) {
        auto ok = apply_mtime(e);
        if (!ok && first) first = std::move(ok);
    }
    entries_.clear();
    return first;
}

DirCache::Entry* DirCache::find(const SharedFd& dir) {
    for (auto& e : entries_)
        if (e.dir.same(dir)) return &e;
    return nullptr;
}

Status DirCache::insert(Entry e) {
    Status evicted;
    if (entries_.size() >= kCapacity) {
        evicted = apply_mtime(entries_.front());
        entries_.erase(entries_.begin());
    }
    entries_.push_back(std::move(e));
    return evicted;
}

Status DirCache::apply_mtime(const Entry& e) {
    if (!e.mtime_ns) return {};
    struct timespec ts[2] = {{0, UTIME_OMIT}, to_timespec(*e.mtime_ns)};
    if (::futimens(e.dir.get(), ts) == 0) return {};
    int err = errno;
    // Immutable or append-only (chattr +i / +a on the replica): what an
    // administrator set there stays until one lifts it, and every entry
    // beneath was applied. Failed, the batch was dropped and the agent sent
    // it again, meeting the same flag for ever and nothing after it
    // arriving. So the mtime is left out and the operation that set it
    // reported; the next one that changes the directory sets it again.
    if (err == EPERM || err == EACCES) {
        std::string dir(split_parent(e.mtime_for).first);
        rejected_.push_back(RejectionNote{
            e.lsn, dir,
            fmt::format("set mtime of the directory '{}' (after a change of '{}'): {}; its own flags forbid it "
                        "(immutable or append-only on the replica), so its entries are applied but its mtime is not",
                        dir, e.mtime_for, std::strerror(err))});
        return {};
    }
    return fail(sys_error("set mtime of the directory of", e.mtime_for, err));
}

}  // namespace iz::replicator
