#pragma once
// What the replicator last did to each regular file of a fileset, so a
// change made on the server behind its back can be told apart from its own.
//
// A path maps to the inode the replicator left there, and an inode to the
// size and mtime it left it with. A file whose inode, size or mtime differ
// from that record was changed by someone else: a conflict. Paths and
// inodes the memory has no record of are adopted silently.
//
// Persistence: an append-only log (written at each change, fdatasync'd at
// commit), compacted into a snapshot now and then. What may be lost in a
// process crash without harm is written a batch at a time (see log()).
// Before modifying an inode the replicator logs doubt() about it, so a
// crash between the change and remember() leaves "unknown" (adopted), never
// a false conflict.
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace iz::replicator {

class FileMemory {
public:
    static Result<std::unique_ptr<FileMemory>> open(const std::filesystem::path& dir);

    // Why `path` (currently `st`) counts as changed behind our back; nullopt
    // when it does not (or nothing is known about it).
    std::optional<std::string> changed(const std::string& path, const struct stat& st) const;

    // Whether `path` (currently `st`) is exactly what the replicator left
    // there: a recorded inode with the recorded size and mtime. Stricter
    // than !changed(), which also holds for files nothing is known about.
    bool ours(const std::string& path, const struct stat& st) const;

    // Before modifying inode `ino`.
    void doubt(uint64_t ino);
    // After leaving the regular file `st` at `path`.
    void remember(const std::string& path, const struct stat& st);
    // `path` is now another name (hard link) of inode `ino`.
    void alias(const std::string& path, uint64_t ino);
    // `path` and everything beneath it are gone. Idempotent: the replay of
    // a removal that finds nothing to remove forgets again.
    void forget(const std::string& path);
    // `from` (and everything beneath) is now at `to`; what was at `to` is gone.
    void move(const std::string& from, const std::string& to);
    // What was at (and beneath) `a` is now at `b`, and the reverse. Not
    // idempotent, like the exchange it follows: logged once per exchange.
    void exchange(const std::string& a, const std::string& b);

    // Writes what waits to the log (no fsync): before the applier records
    // progress past the operations that logged it.
    void flush() {
        if (!holding_) write_waiting();
    }

    // Makes the log durable; compacts it when it has grown large.
    Status sync();

    // For a sync made on another thread (see Applier commits): writes what
    // waits and returns a descriptor of the log to fdatasync there, then
    // holds every later entry back until release(), so that what that
    // fdatasync makes durable describes only changes made before the sync
    // began. nullopt when the log must be compacted instead (sync()).
    std::optional<UniqueFd> begin_sync();
    void release();

    size_t paths() const { return paths_.size(); }

private:
    struct Seen {
        uint64_t size = 0;
        int64_t mtime_ns = 0;
    };
    enum class Kind : uint8_t { remember = 1, doubt = 2, forget = 3, move = 4, alias = 5, exchange = 6 };

    void replay(Kind kind, const std::string& a, const std::string& b, uint64_t ino, uint64_t size, int64_t mtime);
    void log(Kind kind, const std::string& a, const std::string& b, uint64_t ino, uint64_t size, int64_t mtime);
    Status compact();
    Status open_log(bool fresh);
    void write_waiting();

    std::filesystem::path dir_;
    UniqueFd log_fd_;
    uint64_t generation_ = 0;
    uint64_t log_bytes_ = 0;
    bool log_failed_ = false;
    bool holding_ = false;  // between begin_sync() and release()
    // Log entries whose loss in a crash is harmless, not written yet (see log()).
    std::string waiting_;
    std::map<std::string, uint64_t> paths_;
    std::unordered_map<uint64_t, Seen> inodes_;
};

}  // namespace iz::replicator
