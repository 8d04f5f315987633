#pragma once
// Writing a secret (a shared key, an identity's private key and its
// certificate) to a new file only its owner can read, durably: the file
// and its directory are fsynced before this returns, so a name handed to
// the other end survives a crash. An existing file is never replaced (the
// caller refuses to overwrite a key); on any failure the new file is
// removed, so the command can be run again.
#include <filesystem>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace iz::replicator {

// `what` names the file in messages ("key file", "identity key").
Status write_private_file(const std::filesystem::path& path, const std::string& text, std::string_view what);

}  // namespace iz::replicator
