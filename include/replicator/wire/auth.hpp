#pragma once
// Shared-key authentication for the replication protocol.
//
// Both sides hold the same 32-byte key (a key file with 64 hex digits, mode
// 0600). The key never crosses the wire: each side proves knowledge of it
// with HMAC-SHA256 over both nonces and the session's identity, with a
// different label per direction so a proof cannot be reflected.
#include <filesystem>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace iz::replicator {

inline constexpr size_t kKeyBytes = 32;

struct SharedKey {
    std::string bytes;  // kKeyBytes raw bytes
};

// Reads a key file. Refuses (with what to do about it) a file that is not a
// regular file, is readable or writable by group or others, or does not
// hold exactly 64 hex digits (surrounding whitespace allowed).
Result<SharedKey> load_key_file(const std::filesystem::path& path);

// Writes 32 fresh random bytes as hex, mode 0600. Refuses to overwrite an
// existing file.
Status write_key_file(const std::filesystem::path& path);

// Cryptographically random bytes (RAND_bytes).
Result<std::string> random_bytes(size_t n);

enum class ProofRole { server, client };

// HMAC-SHA256(key, label(role) | client_nonce | server_nonce | agent_id | fileset),
// each field length-prefixed.
std::string auth_proof(const SharedKey& key, ProofRole role, std::string_view client_nonce,
                       std::string_view server_nonce, std::string_view agent_id, std::string_view fileset);

// Constant-time comparison.
bool proofs_equal(std::string_view a, std::string_view b);

}  // namespace iz::replicator
