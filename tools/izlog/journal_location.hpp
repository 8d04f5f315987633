#pragma once
// Which journal izlog reads when -D is not given: the only one under the
// agent's state directory, or a clear error asking for -D.
#include <filesystem>

#include "common/error.hpp"

namespace iz::izlog {

inline constexpr const char* kStateRoot = "/var/lib/intermezzo";

Result<std::filesystem::path> default_journal_dir(const std::filesystem::path& state_root = kStateRoot);

}  // namespace iz::izlog
