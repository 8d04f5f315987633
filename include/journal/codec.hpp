#pragma once
// Record <-> bytes. The same encoding is used inside journal frames and by
// anyone who needs to move a record elsewhere (the replication wire).
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "journal/record.hpp"

namespace iz::journal {

// Serialises every field of `rec` (lsn, time and op included) with cereal's
// portable binary archive, appending to `out`.
void encode_record(const Record& rec, std::string& out);
std::string encode_record(const Record& rec);

// Inverse of encode_record. Never throws: malformed input is an Error.
Result<Record> decode_record(std::string_view bytes);

}  // namespace iz::journal
