#pragma once
// The shipper runs inside the agent (izwatch): one cursor per server, it
// reads the journal, reads the bytes the records name through their file
// handles, and sends them to izreplicate. It keeps going while servers are
// away (reconnect with backoff) and resumes from the LSN each server says it
// has applied.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "replicator/wire/endpoint.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

// A server found a file changed on its side behind the replicator's back.
// It kept its own version as `conflict_copy` and applied the source's.
// When the operation carried only part of the file (a range write), the
// replica now mixes both versions until the source's whole content is sent
// again: journaling an Op::conflict record for `path` does that (the
// shipper answers such a record by re-sending the file's whole content,
// only the blocks that differ).
struct ConflictEvent {
    std::string server;         // endpoint, as in ServerStatus
    uint64_t lsn = 0;           // the record whose application found it
    std::string path;           // relative to the watched root
    std::string conflict_copy;  // relative to the replica root, on the server
    std::string server_host;
    std::string message;        // what changed
};

enum class Compression { adaptive, always, never };

// Shared filesets, send-receive mode: what the agent does with the records
// a server forwards (PROTOCOL.md, "Shared filesets: forwarding"). The
// shipper subscribes on every connection to the first server with
// cursor(), and hands over each forward as it arrives.
class ForwardSink {
public:
    virtual ~ForwardSink() = default;
    // The server LSN after which forwarding resumes: the last one applied
    // durably. Called on the shipper's network thread at each connection.
    virtual uint64_t cursor() = 0;
    // A new connection begins: a record received in part before is void
    // (it comes again whole). Called before cursor().
    virtual void on_connected() = 0;
    // Network thread: queue it, do not apply it here (acks wait meanwhile).
    virtual void on_forward(proto::Forward f) = 0;
    // Whether writes may come as ranges (SubscribeRanges, a server of
    // version 6): then the LSN through which every write must come whole
    // (0: none). nullopt: whole content only (a plain Subscribe). Called
    // after cursor().
    virtual std::optional<uint64_t> ranges_whole_through() { return std::nullopt; }
};

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
    // This agent's identity (node.key, node.crt): shown to the servers
    // pinned by node ID (ServerEndpoint::fingerprint), which need no key.
    std::filesystem::path identity_dir;
    // The agent's state directory: what each server reported it can never
    // apply is kept beneath it (rejected/), so that it outlives a restart
    // or a crash of the agent. Empty: kept in memory only.
    std::filesystem::path state_dir;

    // Called on the shipper's network thread for every conflict a server
    // reports. Keep it short (e.g. append an Op::conflict record); it must
    // not call back into the Shipper.
    std::function<void(const ConflictEvent&)> on_conflict;

    // Called on the shipper's network thread whenever a server's acknowledged
    // LSN may have moved (an Ack, or a connection's Welcome), so that a
    // caller waiting for acks (izwatch's pending syncs) wakes at once instead
    // of polling status(). Keep it short (e.g. signal an eventfd); it must
    // not call back into the Shipper.
    std::function<void()> on_acked;

    // Called on a shipper thread, which it may block for a while: journals
    // every change the capture has been told of so far (whatever it still
    // holds back included) and returns the journal's head LSN then. A link
    // whose first name no longer names the linked object is explained by a
    // record that takes that name away, which the capture may not have
    // journaled yet however long the shipper waits: after this, it has.
    // Empty (a shipper without a capture beside it): the journal is
    // watched for a moment instead.
    std::function<Result<uint64_t>()> settle_capture;

    // Send-receive: null for send-only (nothing is received).
    std::shared_ptr<ForwardSink> receiver;
    // Receive-only: false, and nothing of the journal is sent; the links
    // only connect and subscribe.
    bool send = true;

    // Reconnect delay: starts at 100 ms, doubles, capped here.
    std::chrono::milliseconds max_backoff{2000};
    // A connection with requests outstanding and nothing heard for this
    // long is considered dead and replaced.
    std::chrono::milliseconds response_timeout{10'000};
    // zstd for data extents: `adaptive` compresses only while the socket to
    // that server is the bottleneck (data backs up waiting for it), so a
    // fast link does not pay CPU to save bytes it had room for, and never
    // for a server on the same machine (its backlog is a lack of CPU).
    Compression compression = Compression::adaptive;
    // Bytes sent but not yet acknowledged, per server, before sending pauses.
    uint64_t max_inflight_bytes = 64ull << 20;
    // Register each server as a journal consumer (<journal>/consumers/), so
    // retention keeps what a server has not acknowledged yet.
    bool register_consumers = true;
};

// An operation a server can never apply as it stands, as the server
// reported it: the replica lacks it.
using RejectedRecord = proto::RejectedMsg;

struct ServerStatus {
    std::string endpoint;
    bool connected = false;
    // Why the link last failed, kept until the server acknowledges or
    // answers a ping again (a server that welcomes the agent and then fails
    // to apply stays "connected" between retries); "" when none.
    std::string last_error;
    uint64_t acked_lsn = 0;  // durably applied on that server
    // Journal records after acked_lsn (as far as the journal is known).
    uint64_t records_behind = 0;
    // Bytes sent but not yet acknowledged, plus data read and not yet sent.
    uint64_t bytes_behind = 0;
    uint64_t conflicts = 0;  // reported by that server since start
    // Operations it reported it can never apply (the latest
    // kMaxRejectedKept, oldest first), each once however often a replay
    // reports it again. They stay until a verification finds the replica
    // equal (forget_rejected()): the replica lacks them whatever follows,
    // and every sync that covers one fails naming it. With
    // ShipperOptions::state_dir they outlive the agent: those reported
    // before a restart are listed from the start.
    std::vector<RejectedRecord> rejected;
    static constexpr size_t kMaxRejectedKept = 100;
    // Since start: file data shipped (before compression), and every byte
    // of every frame sent (after it).
    uint64_t data_bytes_sent = 0;
    uint64_t wire_bytes_sent = 0;
    // Since start: connections that passed the handshake after the first
    // one did; operations the server reported it can never apply (all of
    // them, where `rejected` keeps the latest); connections the server ended
    // with a reason after the handshake (it could not apply, or refused,
    // what was sent: it is sent again).
    uint64_t reconnects = 0;
    uint64_t rejected_total = 0;
    uint64_t server_errors = 0;
    // How long ago the oldest record the server has not acknowledged was
    // journaled (0 when it has everything), as far as the journal is known.
    double unacked_age_s = 0;
    // While connected: how the server proved itself ("shared key '…'" or
    // "server certificate NODE-ID"), and the TLS version and cipher.
    std::string peer;
    std::string tls;
    // While connected: the protocol version the server chose (0 when not
    // connected); during an upgrade, which servers still speak the older.
    uint16_t protocol = 0;
    // Shared filesets, on the server forwards come from (filled by the
    // agent; absent from the JSON for the others and in send-only mode):
    // the server LSN applied here durably (the cursor), the server's
    // fileset-journal head when it last answered, the records between the
    // two still to receive, the last failure to apply a forward ("" when
    // none), and the forwards this agent passed over for good.
    std::optional<uint64_t> received_lsn;
    std::optional<uint64_t> server_head;
    std::optional<uint64_t> records_to_receive;
    std::optional<std::string> receive_error;
    std::optional<std::vector<RejectedRecord>> not_applied;
    // Send-receive: why the server refused to forward anything on the
    // current connection ("" when it did not); shown as receive_error.
    std::string subscribe_refused;
    bool operator==(const ServerStatus&) const = default;
};

// The journal consumer name under which a server's progress is registered.
std::string consumer_name(const ServerEndpoint& ep);

class Shipper {
public:
    // Fails only on bad options (unreadable key file, watched root missing,
    // invalid fileset or agent id, no servers). Servers that cannot be
    // reached are retried in the background and show in status().
    static Result<std::unique_ptr<Shipper>> start(ShipperOptions options);
    virtual ~Shipper() = default;

    // The journal is durable through `durable_lsn` (any thread). Nothing
    // past the last LSN given here is sent: a record not yet durable could
    // vanish with the machine and its LSN be given to another record.
    virtual void notify(uint64_t durable_lsn) = 0;
    virtual std::vector<ServerStatus> status() const = 0;
    // The LSN every server has durably applied: the least acked_lsn of
    // status(), without the journal reading status() does.
    virtual uint64_t acked_by_all() const = 0;
    // Blocks until every server has durably applied everything up to `lsn`,
    // or fails with the reason (which server, what error) at the timeout.
    virtual Status wait_acked(uint64_t lsn, std::chrono::milliseconds timeout) = 0;
    // The same for the one server at index `server` (of ShipperOptions::servers).
    virtual Status wait_acked_by(size_t server, uint64_t lsn, std::chrono::milliseconds timeout) = 0;
    // Verification: the hash tree of that server's replica (TreeRequest in
    // protocol.hpp). Fails when it is not connected, the connection drops
    // or no answer comes within `timeout`; `wire_bytes` (if given) grows by
    // the bytes of both frames.
    virtual Result<proto::TreeReply> ask_tree(size_t server, proto::TreeRequest req, std::chrono::milliseconds timeout,
                                              uint64_t* wire_bytes = nullptr) = 0;
    // The replica on the server at index `server` was verified equal to the
    // source once everything through `lsn` was applied there, except
    // perhaps at the `changing` paths (changed on the source meanwhile):
    // what that server reported it could not apply through `lsn` is on the
    // replica now (or no longer on the source), so it leaves status() and
    // no sync fails for it any more; a rejection at, above or beneath a
    // changing path stays. Returns how many went.
    virtual size_t forget_rejected(size_t server, uint64_t lsn, const std::vector<std::string>& changing) = 0;

    // Shared filesets: the last LSN of the fileset's journal on the first
    // server (HeadRequest), asked now; fails when not connected or with no
    // answer within `timeout`.
    virtual Result<uint64_t> ask_head(std::chrono::milliseconds timeout) = 0;
    // Shared filesets: ends the connection forwards come on (the first
    // server's), so that the next one subscribes again from the sink's
    // cursor(): a receiver that could not apply a forward has it sent
    // again this way. `why` becomes that server's last error.
    virtual void resubscribe(const std::string& why) = 0;
    // Stops all connections; idempotent, called by the destructor.
    virtual void stop() = 0;
};

}  // namespace iz::replicator
