#pragma once
// What a server reported it can never apply, kept in the agent's state
// directory (one file per server) so that it outlives the agent: a server
// reports a rejection once, when it applies the record (again only when it
// replays a record it had not made durable), so after a restart of the
// agent nobody would know the replica lacks it, and `izwatch sync` would
// say done with the replica different. (A server of protocol version 5
// also keeps each one until the agent confirms it is stored here, and says
// it again after every handshake: a report the agent died before reading
// is not lost either.)
//
// Why a file in the state directory and not a record in the journal: a
// journal segment goes once every server has acknowledged it and the
// history window has passed, while a rejection stays outstanding until it
// is outgrown, however old; a journal record would also travel to every
// server, and its clearing would need records of its own that every reader
// replays. The list is short (ServerStatus::kMaxRejectedKept a server) and
// changes only when a server rejects something or a verification clears
// it, so the whole file is replaced durably (write_file_durably) each time.
#include <filesystem>
#include <vector>

#include "common/error.hpp"
#include "replicator/ship/shipper.hpp"

namespace iz::replicator {

// The file that keeps what server `ep` rejected, beneath the agent's state directory.
std::filesystem::path rejections_file(const std::filesystem::path& state_dir, const ServerEndpoint& ep);

// What the file holds, oldest first; empty when there is no file. Fails
// naming the file when it cannot be read or is damaged.
Result<std::vector<RejectedRecord>> load_rejections(const std::filesystem::path& file);

// Replaces the file with `kept` (making its directory), durably; an empty
// list removes it.
Status save_rejections(const std::filesystem::path& file, const std::vector<RejectedRecord>& kept);

}  // namespace iz::replicator
