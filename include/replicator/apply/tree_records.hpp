#pragma once
// The journal records that make an entry of a hash tree (tree_hash.hpp)
// anew on a replica, with everything beneath it: what an agent's repair
// journals for an entry the replica lacks (agent/repair_records.hpp), and
// what a server journals again for a directory kept against a removal
// (replicator/server/fileset_journal.hpp). One description of a tree as
// records, so that both send every entry type and property alike.
//
// Promises:
//  - A directory is a mkdir with its mode, owner and mtime, then its
//    xattrs, then its entries, then a setattr of its attributes again
//    (making its entries moved its times).
//  - A regular file is one `write` record carrying its path only: how its
//    whole content (and the attributes read with it) is found is the
//    caller's (the agent's shipper reads the file when it meets a
//    close_write; the server's forward reads it by the record's handle).
//  - A symlink is a symlink with its text; a FIFO, socket or device is a
//    mknod with its type bits and rdev; each carries mode, owner and mtime.
//  - Every entry but a symlink then has its xattrs set (user.* and POSIX
//    ACLs, system.posix_acl_*, as the hash tree holds them).
//  - A file whose EntryMeta::link_group names another path (a name met
//    earlier in walk order, or one the caller set: a name outside the
//    tree described) is a `link` from that name, nothing else: one object,
//    several names, never a copy.
#include <map>
#include <string>
#include <vector>

#include "journal/record.hpp"

namespace iz::replicator {

namespace tree {
struct EntryMeta;
struct Node;
}  // namespace tree

// The records making `n` at `path` (relative to the root), appended to `out`.
void records_to_make(const tree::Node& n, const std::string& path, std::vector<journal::Record>& out);

// The setxattr and removexattr records that turn the xattrs `have` of
// `path` into `want`'s, appended to `out`.
void xattr_records(const std::string& path, const tree::EntryMeta& want, const std::map<std::string, std::string>& have,
                   std::vector<journal::Record>& out);

// Sets `r`'s mode (with the type bits of `m`), owner and mtime from `m`.
void set_meta(journal::Record& r, const tree::EntryMeta& m);

}  // namespace iz::replicator
