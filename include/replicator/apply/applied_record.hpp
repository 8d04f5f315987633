#pragma once

// What an applied operation leaves in the journal of the node that applied
// it: a server's fileset journal (which it forwards from) and the journal
// of an agent receiving a shared fileset (which izlog reads there) hold the
// same record for the same operation, with where it came from.

#include <cstdint>
#include <optional>
#include <string>

#include "journal/record.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

// The record `op` becomes once applied, carrying `origin` (the agent that
// made the change) and `origin_lsn` (its LSN there). nullopt for an
// operation that makes none: a noop, a repair marker, content before its
// end. Whole content (content_end) becomes one `write`.
std::optional<journal::Record> journal_record_of(const proto::OpMsg& op, std::string origin, uint64_t origin_lsn);

}  // namespace iz::replicator
