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

enum class Kept { copied, nothing };  // nothing: no file or symlink at the path

// Copies the regular file or symlink at `path` (beneath `root`, resolved
// without leaving it or following a symlink) to `copy` in the same
// directory, which must not exist yet. Content, mode and mtime are kept;
// the copy is durable before it returns.
Result<Kept> keep_local_copy(const std::filesystem::path& root, const std::string& path, const std::string& copy);

}  // namespace iz::agent
