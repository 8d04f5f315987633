#pragma once
// The shipper runs inside the agent (izwatch): one cursor per server, it
// reads the journal, reads the bytes the records name through their file
// handles, and sends them to izreplicate. It keeps going while servers are
// away (reconnect with backoff) and resumes from the LSN each server says it
// has applied.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace iz::replicator {

struct ServerEndpoint {
    std::string host;
    uint16_t port = 0;
    std::string to_string() const;
};

// Parses "HOST:PORT" or "[v6]:PORT".
Result<ServerEndpoint> parse_endpoint(const std::string& text);

struct ShipperOptions {
    std::filesystem::path journal_dir;
    // The watched directory: paths in records are relative to it, and file
    // handles are opened through it.
    std::filesystem::path watched_root;
    // Name of the fileset on the servers; stable across restarts.
    std::string fileset;
    // Stable identity of this agent (e.g. hostname), for the server's
    // per-agent applied LSN.
    std::string agent_id;
    std::vector<ServerEndpoint> servers;
    std::filesystem::path key_file;
};

struct ServerStatus {
    std::string endpoint;
    bool connected = false;
    std::string last_error;  // "" when none
    uint64_t acked_lsn = 0;  // durably applied on that server
    uint64_t records_behind = 0;
    uint64_t bytes_behind = 0;
};

class Shipper {
public:
    static Result<std::unique_ptr<Shipper>> start(ShipperOptions options);
    virtual ~Shipper() = default;

    // Hint that the journal's durable head moved; the shipper also follows
    // the journal by itself, so this only shortens latency.
    virtual void notify(uint64_t durable_lsn) = 0;
    virtual std::vector<ServerStatus> status() const = 0;
    // Blocks until every server has durably applied everything up to `lsn`,
    // or fails with the reason (which server, what error) at the timeout.
    virtual Status wait_acked(uint64_t lsn, std::chrono::milliseconds timeout) = 0;
    // Stops all connections; idempotent, called by the destructor.
    virtual void stop() = 0;
};

}  // namespace iz::replicator
