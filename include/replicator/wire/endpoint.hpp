#pragma once
// Where a server listens, as both ends write it: "HOST:PORT" or "[v6]:PORT";
// an agent may pin the server's certificate: "HOST:PORT@NODE-ID".
#include <cstdint>
#include <string>

#include "common/error.hpp"

namespace iz::replicator {

struct ServerEndpoint {
    std::string host;
    uint16_t port = 0;
    // The server's node ID, as 32 raw bytes ("" none: the shared key).
    std::string fingerprint;
    // HOST:PORT (without the node ID).
    std::string to_string() const;
};

// Parses "HOST:PORT" or "[v6]:PORT", each optionally followed by "@NODE-ID".
Result<ServerEndpoint> parse_endpoint(const std::string& text);

}  // namespace iz::replicator
