#pragma once
// Receive-only mode: before a forward replaces or removes a path that holds
// a local change, the local version is copied beside it (the conflict-copy
// name, common/conflict_name.hpp), so that the user's edit is never
// destroyed silently. A copy, not a move: a forward that patches the file
// (a write, a truncate, content against the existing file) needs it there.
#include <filesystem>
#include <string>

#include "common/error.hpp"

namespace iz::agent {

struct Kept {
    bool copied = false;  // false: no file or symlink at the path
    std::string copy;     // the path of the copy made
};

// How many names a copy tries: `copy`, then `copy-2` .. `copy-<this>`.
inline constexpr int kMaxCopyNames = 100;

// Copies the regular file or symlink at `path` (beneath `root`, resolved
// without leaving it or following a symlink) to `copy` in the same
// directory. The copy's name is second-precise: a copy already there (kept
// of the same path in the same second) is never replaced; the next free of
// `copy-2`, `copy-3`, ... is taken instead (only this agent makes such
// copies, so no other node needs to compute the same name). Content, mode
// and mtime are kept; the copy is durable before it returns.
Result<Kept> keep_local_copy(const std::filesystem::path& root, const std::string& path, const std::string& copy);

}  // namespace iz::agent
