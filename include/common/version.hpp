#pragma once
// What a program says to --version: the release (CMake's project()
// version) and the source it was built from (`git describe --always
// --dirty` when the build was configured, "unknown" outside a git checkout).
#include <string>
#include <string_view>

namespace iz {

std::string_view release_version();  // "0.1.0"
std::string_view source_revision();  // "5d3d6b2", "5d3d6b2-dirty" or "unknown"

// "izwatch 0.1.0 (git 5d3d6b2)"
std::string version_line(std::string_view program);

}  // namespace iz
