#pragma once
// What the conflict resolver (conflict_resolver.hpp) knows of a fileset
// journal's past: per path its latest change, per renamed path where it
// went, per directory its latest rmdir and the latest removal or move of an
// entry in it. Every rule compares an entry with what an agent had seen
// (`seen`): an entry at or below it never decides anything for it.
//
// Promises:
//  - note() keeps the latest entry per key; prune(floor) drops the entries
//    at or below `floor`, so that what is kept equals the whole journal's
//    history restricted to the records after `floor`: a decision for an
//    operation whose `seen` is at least `floor` is the same with it.
//  - overlay() lays a later history (every entry after this one's) over
//    this one: a history of records (from, floor] overlaid with what is
//    kept after `floor` is the history after `from`.
//  - Pure bookkeeping (no I/O, not thread-safe).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

struct ConflictHistory {
    struct Change {
        uint64_t lsn = 0;
        std::string origin;
        bool removed = false;
    };
    struct Moved {
        uint64_t lsn = 0;
        std::string origin;
        std::string to;
    };
    struct Removed {
        uint64_t lsn = 0;
        std::string origin;
    };
    // Looked up by every placed operation's path prefixes, without copies.
    std::map<std::string, Change, std::less<>> last;      // path -> its latest change
    std::map<std::string, Moved, std::less<>> moved;      // renamed path -> where it went (latest)
    std::map<std::string, Removed, std::less<>> removed;  // directory -> its latest rmdir
    // directory -> the latest removal or move of an entry in it.
    std::map<std::string, Removed, std::less<>> emptied;

    void note(uint64_t lsn, const std::string& origin, proto::OpKind kind, const std::string& path,
              const std::string& target);
    void prune(uint64_t floor);
    void overlay(const ConflictHistory& later);
    // Entries held, all maps together.
    size_t size() const { return last.size() + moved.size() + removed.size() + emptied.size(); }
};

}  // namespace iz::replicator
