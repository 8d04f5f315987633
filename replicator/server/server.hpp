#pragma once
// izreplicate's server: accepts agents over TCP, authenticates them, and
// applies what they ship beneath the replica root.
//
// Promises:
//  - Many agents and filesets at once; each (agent, fileset) is applied by
//    at most one connection at a time (a newer connection from the same
//    agent takes over from an older, possibly half-open one).
//  - A malformed or hostile frame, a refused path or a failed
//    authentication drops that connection with one log line; nothing of it
//    is applied and other connections carry on. No exception escapes.
//  - An Ack is sent only after the data and the applied LSN are durable.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "replicator/wire/auth.hpp"
#include "replicator/wire/protocol.hpp"
#include "replicator/wire/tls.hpp"

namespace iz::replicator {

enum class FilesetDirMode {
    per_fileset,  // each fileset in ROOT/<fileset>/
    root,         // every fileset directly in ROOT
};

struct ServerOptions {
    std::filesystem::path root;
    // Per (agent, fileset) applied LSNs and file memory; "" means ROOT/.intermezzo.
    std::filesystem::path state_dir;
    std::string listen_host = "0.0.0.0";
    uint16_t port = 0;  // 0: any free port (see Server::port())
    SharedKey key;
    // Accepted as well as `key`, so that agents can move to a new key one
    // by one.
    std::vector<SharedKey> other_keys;
    // Per-node identities: this server's certificate, and the agents'
    // certificates it accepts. An agent may then come with either a key
    // (if `key` is set) or an allowed certificate.
    std::optional<NodeIdentity> identity;
    // The certificates accepted, filled from the agents file (or the older
    // allowed agents file) at start and on SIGHUP; made when null.
    std::shared_ptr<PeerPins> allowed_agents;
    // Which identities may connect, under which name, and what each may do
    // with which fileset (agents_file.hpp), read at start and on SIGHUP.
    std::filesystem::path agents_file;
    // The two older files it replaces (deprecated), used when agents_file
    // is "": the certificates accepted, and the access rules (access.hpp;
    // "": every agent may read and write every fileset).
    std::filesystem::path allowed_agents_file;
    std::filesystem::path access_file;
    FilesetDirMode dir_mode = FilesetDirMode::per_fileset;
    std::string host_name;  // in conflict copy names; "" means gethostname()
    int threads = 2;
    std::chrono::milliseconds handshake_timeout{10'000};
    // A connection that sends nothing for this long is dropped (shippers
    // ping every second while idle).
    std::chrono::milliseconds idle_timeout{60'000};
    // The highest protocol version this server chooses (at least
    // proto::kMinVersion): lowered, it answers as a server of that version
    // would, which is how a fleet half upgraded is tested.
    uint16_t max_protocol_version = proto::kVersion;
};

class Server {
public:
    // Binds and listens; when this returns, connections are accepted.
    static Result<std::unique_ptr<Server>> start(ServerOptions options);
    virtual ~Server() = default;

    virtual uint16_t port() const = 0;
    // The Prometheus metrics page (any thread; never waits for applying).
    virtual std::string metrics() = 0;
    // Serves until stop() or SIGTERM/SIGINT (when handle_signals).
    // `serving` is called once those signals stop the server cleanly (a
    // service manager told the server is ready may stop it at once).
    virtual void run(bool handle_signals, const std::function<void()>& serving = {}) = 0;
    // Thread-safe; run() returns soon after.
    virtual void stop() = 0;
    // What SIGHUP does (when handle_signals): reads the agents file (or the
    // older two) again and drops the sessions it no longer allows; a file
    // with a mistake is logged and the rules stay as they were. Thread-safe.
    virtual void reload() = 0;
};

}  // namespace iz::replicator
