#pragma once
// Consumers (servers, tools) record how far they are done; a segment may be
// dropped only once every consumer has passed it and the history window is
// over. Cursors live in <journal>/consumers/<name>, one decimal LSN each,
// replaced atomically.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "common/error.hpp"

namespace iz::journal {

Status save_consumer_lsn(const std::filesystem::path& dir, const std::string& consumer, uint64_t lsn);
Result<std::map<std::string, uint64_t>> load_consumer_lsns(const std::filesystem::path& dir);

struct RetentionPolicy {
    // Keep segments whose first record is younger than this, even if passed.
    std::chrono::seconds history{0};
};

// The LSN below which segments may go: the minimum over consumers (exclusive
// of records not yet passed). nullopt when no consumer is registered, in
// which case nothing may be dropped.
Result<std::optional<uint64_t>> retention_horizon(const std::filesystem::path& dir);

}  // namespace iz::journal
