#pragma once
// Replacing a small file so that after a crash it holds either the old or
// the new content, and the new one survives: write a temporary, fsync it,
// rename it over, fsync the directory.
#include <filesystem>
#include <string_view>

#include "common/error.hpp"

namespace iz::replicator {

Status write_file_durably(const std::filesystem::path& path, std::string_view content, mode_t mode = 0600);

// fsync of a directory (after creating or renaming entries in it).
Status fsync_dir(const std::filesystem::path& dir);

}  // namespace iz::replicator
