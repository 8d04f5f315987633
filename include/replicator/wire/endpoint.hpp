#pragma once
// Where a server listens, as both ends write it: "HOST:PORT" or "[v6]:PORT".
#include <cstdint>
#include <string>

#include "common/error.hpp"

namespace iz::replicator {

struct ServerEndpoint {
    std::string host;
    uint16_t port = 0;
    std::string to_string() const;
};

// Parses "HOST:PORT" or "[v6]:PORT".
Result<ServerEndpoint> parse_endpoint(const std::string& text);

}  // namespace iz::replicator
