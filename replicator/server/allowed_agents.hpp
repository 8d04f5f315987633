#pragma once
// The agents a server accepts by certificate: a text file, one agent a line,
// "NODE-ID [AGENT-ID]". A line naming an agent id binds the certificate to
// it: that agent may use no other name (so it cannot take over another
// agent's filesets). Blank lines and lines starting with '#' are ignored.
#include <filesystem>
#include <map>
#include <string>

#include "common/error.hpp"

namespace iz::replicator {

// Fingerprint (32 raw bytes) -> agent id ("" any). Fails naming the line
// and what is wrong with it.
Result<std::map<std::string, std::string>> read_allowed_agents(const std::filesystem::path& path);

}  // namespace iz::replicator
