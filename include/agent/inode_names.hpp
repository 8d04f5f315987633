#pragma once
// Another name the tree knows for a regular file, found by inode.
//
// A new name of a file that already has one is journaled as a link to that
// name. Walking the whole tree for every such name cost a pass over every
// entry per hard link (a third of the agent's CPU for a few thousand links
// in a large tree). This remembers one name per inode; a remembered name is
// checked against the tree before it is used, and only when the check fails
// is the tree walked, remembering a name of every regular file on the way.
//
// Promises: find() answers exactly as a walk of the tree in path order
// would, except that of several valid names it may return another one.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "agent/tree_state.hpp"

namespace iz::agent {

class InodeNames {
public:
    // `path` names the regular file `ino` (just created or linked) in a
    // tree of `tree_size` entries. Names of files deleted since are not
    // tracked: once the remembered names outnumber twice the tree, they are
    // dropped (the next find() walks once), so they never grow without bound.
    void remember(uint64_t ino, const std::string& path, size_t tree_size) {
        if (names_.size() > 2 * tree_size + 1024) names_.clear();
        names_[ino] = path;
    }

    // Names remembered (for tests).
    size_t remembered() const { return names_.size(); }

    // A path other than `path` whose entry is a regular file with inode
    // `ino` and satisfies `accept`; nullopt if the tree has none.
    std::optional<std::string> find(const Tree& tree, uint64_t ino, const std::string& path,
                                    const std::function<bool(const Entry&)>& accept);

    // Full walks so far (for tests).
    uint64_t walks() const { return walks_; }

private:
    std::unordered_map<uint64_t, std::string> names_;
    uint64_t walks_ = 0;
};

}  // namespace iz::agent
