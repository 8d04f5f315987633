#pragma once
// The tree a journal describes: replays its records into path -> (type,
// size, symlink target), to compare with the tree as it is on disk. A
// replica applying the journal would end up with what the replay has.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "watch.hpp"

namespace iz::test::agent {

enum class Kind { file, dir, symlink, other };

struct Node {
    Kind kind = Kind::file;
    // Files: the size the records say. nullopt after a whole-file write
    // that names no size: the content is read from the file when shipped.
    std::optional<uint64_t> size;
    std::string target;  // symlinks
};

using Listing = std::map<std::string, Node>;

// Replays `records` in order. Records that do not fit the tree replayed so
// far (removing or renaming a path it does not have...) go to `problems`.
// Sizes are tracked per name: a write through one name of a hard-linked
// file does not update the others.
Listing replay(const std::vector<json>& records, std::vector<std::string>& problems);

// Every entry beneath `root`, by relative path.
Listing list_tree(const fs::path& root);

// How `journaled` differs from `on_disk`, one line per path, at most `limit`.
std::vector<std::string> differences(const Listing& journaled, const Listing& on_disk, size_t limit = 20);

}  // namespace iz::test::agent
