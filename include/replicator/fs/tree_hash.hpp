#pragma once
// A hash tree of a directory tree, for checking that a replica is what its
// source is: every entry's full manifest (type, mode, owner, mtime, size,
// content, symlink target, link count, xattrs and POSIX ACLs, rdev) is
// hashed with XXH3-128, and a directory's hash covers its own manifest and
// the names and hashes of everything beneath it. Two trees with equal root
// hashes are equal by the manifest; where they are not, only the
// directories whose hashes differ need to be looked into.
//
// Promises:
//  - The walk goes by directory descriptors (openat of one name at a time,
//    never following a symlink), so depth is bounded by nothing but the
//    tree, and nothing outside the starting directory is read.
//  - An entry that vanishes during the walk is left out; one that cannot be
//    read is kept, its manifest saying why (so it differs, never matches
//    by accident).
//  - Left out on both sides alike: paths matching the agent's exclude globs,
//    the server's reserved top-level name, and the server's conflict copies
//    (NAME.conflict-HOST-YYYYMMDDTHHMMSSZ[-N]), which it keeps on purpose
//    (WalkOptions::conflict_copies walks them too).
//  - What is compared for a directory does not include its size (it depends
//    on the filesystem's history) or its link count (it follows from the
//    subdirectories, which are compared).
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/error.hpp"

namespace iz::replicator::tree {

// One entry's manifest.
struct EntryMeta {
    char type = '?';  // d f l p c b s, or '!' when it could not be read
    uint32_t mode = 0;  // permission bits (07777)
    uint32_t uid = 0, gid = 0;
    int64_t mtime_ns = 0;
    uint64_t size = 0;      // regular files
    std::string content;    // regular files: XXH3-128 of the bytes (16 bytes)
    std::string target;     // symlinks: their text; '!': why it could not be read
    uint32_t nlink = 0;     // everything but directories
    uint64_t rdev = 0;      // devices
    std::map<std::string, std::string> xattrs;  // user.* and system.posix_acl_*
    // A file with several links: the path of its first name met in the walk
    // (in walk order: parents before children, names sorted; see
    // walk_order_less), so that two trees grouping the same names alike
    // agree. "" for that first name itself, and for every other file.
    std::string link_group;
    friend bool operator==(const EntryMeta&, const EntryMeta&) = default;
};

// A stable byte encoding (what is hashed, and what travels).
std::string encode(const EntryMeta& m);
Result<EntryMeta> decode(std::string_view bytes);

// How `replica` differs from `source`, one phrase per property a person
// reads ("mode 0644 on the source, 0600 on the replica"); empty when equal.
std::vector<std::string> describe_differences(const EntryMeta& source, const EntryMeta& replica);

struct Node {
    std::string name;
    EntryMeta meta;
    std::string hash;  // 16 bytes; for a directory, of everything beneath too
    std::vector<Node> children;  // directories: sorted by name
    uint64_t dev = 0, ino = 0;   // files with several links, on this machine
};

// The order a walk meets paths in: component by component ("a/x" before "a-b").
bool walk_order_less(const std::string& a, const std::string& b);

// Remembers content hashes by (device, inode, size, mtime, ctime), so a file
// unchanged since the last walk is not read again. Thread-safe.
class HashCache {
public:
    // Loads `file` when it exists (a damaged one is ignored: it is a cache).
    explicit HashCache(std::string file = {});
    std::optional<std::string> find(const struct stat& st) const;
    void put(const struct stat& st, const std::string& hash);
    // Writes the entries, replacing the file atomically; no-op without a
    // file. `prune`: only those used or added since it was loaded (after a
    // walk of the whole tree, the others are of files gone or changed).
    Status save(bool prune);

private:
    struct Key {
        uint64_t dev, ino, size;
        int64_t mtime, ctime;
        friend bool operator<(const Key& a, const Key& b) {
            return std::tie(a.dev, a.ino, a.size, a.mtime, a.ctime) < std::tie(b.dev, b.ino, b.size, b.mtime, b.ctime);
        }
    };
    static Key key_of(const struct stat& st);
    std::string file_;
    mutable std::mutex mu_;
    std::map<Key, std::string> loaded_;
    mutable std::map<Key, std::string> used_;
};

struct WalkOptions {
    std::vector<std::string> excludes;  // globs, as izwatch --exclude
    std::string reserved_top;           // a first component left out
    // Content read per second, 0 for no bound (the scrub reads at idle pace).
    uint64_t max_bytes_per_s = 0;
    HashCache* cache = nullptr;
    const std::atomic<bool>* cancel = nullptr;
    // false: regular files' content is not read (EntryMeta::content stays
    // empty, their hashes cover the rest), for a walk that describes a
    // tree rather than compares it.
    bool content = true;
    // Walk the server's conflict copies too, rather than leaving them out.
    bool conflict_copies = false;
};

struct WalkStats {
    uint64_t entries = 0;
    uint64_t bytes_hashed = 0;  // content read (not found in the cache)
};

// Hashes the entry `rel` ("" for the root itself) beneath `root_fd`, and
// everything beneath it. nullopt when it does not exist. A path that leaves
// the root is an Error with is_refusal(), one through a symlink an Error
// with is_rejection().
Result<std::optional<Node>> hash_path(int root_fd, const std::string& rel, const WalkOptions& options,
                                      WalkStats* stats = nullptr);

// Whether `rel` is excluded by `globs` (as izwatch --exclude: the whole
// path, its last component, or any directory above it).
bool path_excluded(const std::vector<std::string>& globs, const std::string& rel);
// Whether `name` is one the server gives a conflict copy.
bool is_conflict_copy(std::string_view name);

// The node at `rel` beneath `root` (whose own path is `root_rel`), or null.
const Node* find_node(const Node& root, const std::string& root_rel, const std::string& rel);

}  // namespace iz::replicator::tree
