#pragma once
// Verification of the replicas of a watched directory: after a sync, the
// source's hash tree is compared with each server's (tree_hash.hpp,
// verify_compare.hpp), and with `repair` the differences are journaled
// away (repair_records.hpp) and the replica checked again.
//
// Promises:
//  - The comparison starts once the server has durably applied everything
//    journaled when it was asked for; a difference is checked again after
//    another sync, and one on a path the journal shows changing meanwhile
//    is listed apart ("changing"), never as a divergence.
//  - Only what differs travels: for an identical replica one question and
//    one answer, whatever the tree's size.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "journal/record.hpp"
#include "replicator/ship/shipper.hpp"
#include "replicator/fs/verify_compare.hpp"

namespace iz::agent {

// What a verification needs of the agent that runs it.
class VerifyHost {
public:
    virtual ~VerifyHost() = default;
    // Everything changed so far is journaled; returns the journal's head LSN.
    virtual Result<uint64_t> settle() = 0;
    // Appends `records` in order; returns the LSN of the last.
    virtual Result<uint64_t> journal(std::vector<journal::Record> records) = 0;
};

struct VerifyOptions {
    bool repair = false;
    std::vector<std::string> excludes;
    // How long to wait for the server to apply what is journaled, and for
    // each of its answers.
    std::chrono::milliseconds timeout{std::chrono::minutes(10)};
    uint64_t max_bytes_per_s = 0;  // the source's content read per second (0: no bound)
    replicator::tree::HashCache* cache = nullptr;
    const std::atomic<bool>* cancel = nullptr;
};

struct ServerVerdict {
    std::string server;
    std::string error;  // the verification could not be made
    std::vector<replicator::Difference> differences;
    // Paths that differed but changed on the source during the verification.
    std::vector<std::string> changing;
    size_t repair_records = 0;
    // After the repair: what still differs (empty when the replica is now equal).
    std::vector<replicator::Difference> remaining;
    bool repaired = false;  // a repair was made and the replica is now equal
    uint64_t wire_bytes = 0;
    uint64_t entries = 0;       // of the source, walked
    uint64_t bytes_hashed = 0;  // of the source's content, read
    double seconds = 0;

    bool equal() const { return error.empty() && differences.empty(); }
    nlohmann::json to_json() const;
};

ServerVerdict verify_server(int root_fd, const std::filesystem::path& journal_dir, replicator::Shipper& shipper,
                            size_t server, const std::string& endpoint, VerifyHost& host, const VerifyOptions& options);

}  // namespace iz::agent
