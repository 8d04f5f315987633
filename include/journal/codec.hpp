#pragma once
// Record <-> bytes: the payload of a journal frame. The replication wire
// does not carry these bytes: the shipper sends each record as a protocol
// message of its own (the protocol's OpMsg), whose fields and encoding are
// the protocol's.
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "journal/record.hpp"

namespace iz::journal {

// Serialises every field of `rec` (lsn, time and op included), appending to
// `out`, in the bytes of cereal's PortableBinary archive on a little-endian
// machine (written by common/binary_archive.hpp, which makes the same bytes
// faster).
void encode_record(const Record& rec, std::string& out);
std::string encode_record(const Record& rec);

// Inverse of encode_record. Never throws: malformed input is an Error (also
// a boolean byte other than 0 or 1, and an unknown op).
Result<Record> decode_record(std::string_view bytes);

}  // namespace iz::journal
