#pragma once
// Comparing the source's hash tree with a replica's (tree_hash.hpp), asking
// the replica only about the directories whose hashes differ: for an
// identical replica, one question and one answer of a few dozen bytes.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "replicator/wire/protocol.hpp"
#include "replicator/fs/tree_hash.hpp"

namespace iz::replicator {

// How a comparison asks a replica about its tree (the server's answers, or
// a local tree in tests).
using AskReplica = std::function<Result<proto::TreeReply>(const proto::TreeRequest&)>;

struct Difference {
    std::string path;                        // relative to the root; "" is the root
    std::optional<tree::EntryMeta> source;   // nullopt: not on the source (extra on the replica)
    std::optional<tree::EntryMeta> replica;  // nullopt: not on the replica (missing there)
    std::vector<std::string> what;           // one phrase per property
    // "path: phrase; phrase" for a person.
    std::string summary() const;
};

// Compares `local` (the source's entry at `path`, nullopt when it has none)
// with the replica's entry at `path`. `fresh`: the replica walks that
// subtree anew (else it answers from its last walk covering it).
Result<std::vector<Difference>> compare_path(const std::optional<tree::Node>& local, const std::string& path,
                                             const AskReplica& ask, bool fresh,
                                             const std::vector<std::string>& excludes);

// Every entry of the replica at and beneath `path`, parents before their
// children (from the replica's last walk covering it).
Result<std::vector<std::pair<std::string, tree::EntryMeta>>> replica_subtree(const std::string& path, const AskReplica& ask,
                                                                             const std::vector<std::string>& excludes);

// The fewest paths that cover all of `paths` (none beneath another).
std::vector<std::string> covering_paths(std::vector<std::string> paths);

// An AskReplica over a tree walked in this process (tests, tools).
AskReplica ask_local(int root_fd, std::string reserved_top = {});

}  // namespace iz::replicator
