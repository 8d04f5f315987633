#pragma once
// Per-node identities: an EC P-256 key and a self-signed certificate, in a
// directory of their own, named by the certificate's SHA-256 fingerprint.
//
// A node ID is that fingerprint in base32 (RFC 4648, no padding), 52
// characters in 13 groups of 4 joined by '-', so that two people can read
// it out to each other and compare ("MFRG-GZDF-…"). Parsing takes upper or
// lower case, with or without the dashes.
//
// Promises:
//  - new_identity() writes DIR/node.key and DIR/node.crt with mode 0600
//    (DIR 0700), refusing to overwrite either.
//  - load_identity() refuses, saying how to fix it, a file that is not a
//    regular file or that group or others may read or write, and a key that
//    does not belong to the certificate.
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace iz::replicator {

inline constexpr std::string_view kIdentityKeyFile = "node.key";
inline constexpr std::string_view kIdentityCertFile = "node.crt";

struct NodeIdentity {
    std::string key_pem;
    std::string cert_pem;
    std::string fingerprint;  // 32 raw bytes: SHA-256 of the certificate's DER
};

struct IdentityValidity {
    // Relative to now. The defaults: from an hour ago (clocks a little
    // behind) for 20 years.
    std::chrono::seconds not_before{-3600};
    std::chrono::seconds not_after{20LL * 365 * 24 * 3600};
};

// Makes a key pair and a self-signed certificate (subject CN=`name`) in
// `dir` (created if missing). Returns the identity written.
Result<NodeIdentity> new_identity(const std::filesystem::path& dir, const std::string& name,
                                  IdentityValidity validity = {});
Result<NodeIdentity> load_identity(const std::filesystem::path& dir);

// 32 raw bytes -> "XXXX-XXXX-…" (13 groups).
std::string format_node_id(std::string_view fingerprint);
// The reverse; an error naming what is wrong with `text`.
Result<std::string> parse_node_id(std::string_view text);

}  // namespace iz::replicator
