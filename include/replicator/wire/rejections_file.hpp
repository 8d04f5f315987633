#pragma once
// A durable list of rejections, the format both ends keep theirs in (the
// server's until the agent confirms it stored one, the agent's until a
// verification clears it): a line naming what the file is, then each
// rejection as the wire frame it is sent in. The protocol's values never
// change meaning and its decoder checks every size, so the frames need no
// format of their own; the first line tells the two files apart.
//
// Promises: a missing file reads as empty; a damaged one (another first
// line, a frame cut short, of another kind or that does not decode) is the
// error `damaged` makes of why, never a crash or a silent loss; writing
// returns only once the file says so after a crash.
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

// Says what to do about a damaged file, given why it cannot be read.
using DamagedRejections = std::function<Error(const std::string& why)>;

// What `file` holds, oldest first; empty when there is no file.
Result<std::vector<proto::RejectedMsg>> read_rejections_file(const std::filesystem::path& file,
                                                             std::string_view first_line,
                                                             const DamagedRejections& damaged);

// Replaces `file` with `kept` (making its directory), durably; an empty list
// removes it.
Status write_rejections_file(const std::filesystem::path& file, std::string_view first_line,
                             const std::vector<proto::RejectedMsg>& kept);

}  // namespace iz::replicator
