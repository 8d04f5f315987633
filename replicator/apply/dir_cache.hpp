#pragma once
// Directories the applier opened beneath the root, kept open for the
// operations that follow. A tree copy or a delete works through one
// directory at a time: resolving the parent again for every entry
// (openat2 walks each component) and setting the parent's mtime after
// every entry cost a delete three system calls per file besides unlinkat.
//
// Promises:
//  - A parent is resolved exactly as open_parent() resolves it (openat2,
//    RESOLVE_BENEATH, no symlinks); the cache only saves doing it again.
//  - The cache lives for one batch. The applier flushes it when a batch of
//    received frames is applied, before any operation that may move or
//    remove a directory, and before it records progress or commits. Within a batch, a directory moved by
//    someone else on the server is still reached through the descriptor
//    resolved before: the race any openat2 has between resolving a path
//    and using it, made a batch long.
//  - A directory mtime set through set_mtime() on a cached directory is
//    applied when the directory leaves the cache, once, with the last
//    value: after every entry made in it during the batch.
//  - A directory whose own flags forbid setting its mtime (immutable or
//    append-only, EPERM/EACCES) does not fail anything: its entries are
//    applied, and only an administrator lifts those flags, so the stream
//    sent again would meet them for ever. The failure is kept as a
//    RejectionNote naming the directory and the operation that set the
//    mtime (take_rejections()). Any other failure is returned as before.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "replicator/apply/apply.hpp"
#include "replicator/fs/beneath.hpp"
#include "common/error.hpp"

namespace iz::replicator {

class DirCache {
public:
    explicit DirCache(int root_fd) : root_fd_(root_fd) {}
    DirCache(const DirCache&) = delete;
    DirCache& operator=(const DirCache&) = delete;

    // open_parent(root, rel), from the cache when the parent is in it.
    // May evict another directory, setting its deferred mtime: an error
    // there is returned, naming that directory.
    Result<Parent> parent_of(std::string_view rel);

    // `dir` (opened O_RDONLY | O_DIRECTORY beneath the root) is the directory
    // at `rel`: the next entries made in it find it here.
    void adopt(std::string_view rel, SharedFd dir);

    // Sets the mtime of `p.dir` (the parent of `path`, changed by the
    // operation at `lsn`): deferred while the directory is cached, at once
    // otherwise. Nothing when mtime_ns is unset.
    Status set_mtime(const Parent& p, std::optional<int64_t> mtime_ns, const std::string& path, uint64_t lsn);

    // Sets the deferred mtime of the directory at `rel`, if it is kept open.
    Status settle(std::string_view rel);

    // Sets every deferred mtime and closes every directory kept open. The
    // first failure is returned; the rest are still set.
    Status flush();

    size_t size() const { return entries_.size(); }

    // The mtimes that could not be set for the directory's own flags, since
    // the last call.
    std::vector<RejectionNote> take_rejections() { return std::exchange(rejected_, {}); }

private:
    struct Entry {
        std::string path;  // of the directory, relative to the root
        SharedFd dir;
        std::optional<int64_t> mtime_ns;
        std::string mtime_for;  // the entry whose change set it, for messages
        uint64_t lsn = 0;       // the operation that set it
    };
    static constexpr size_t kCapacity = 8;

    Entry* find(const SharedFd& dir);
    // Adds `e` as the most recently used, evicting the least recently used
    // when full (and setting its deferred mtime).
    Status insert(Entry e);
    Status apply_mtime(const Entry& e);

    int root_fd_;
    // Most recently used last; a handful, searched linearly.
    std::vector<Entry> entries_;
    std::vector<RejectionNote> rejected_;
};

}  // namespace iz::replicator
