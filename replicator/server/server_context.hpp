#pragma once
// What every connection of one server shares: options, and the registry of
// filesets with the applier and the connection that currently owns each.
// Boost 1.74 uses std::exchange without including <utility> (C++23 no
// longer pulls it in transitively).
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <deque>
#include <set>
#include <vector>

#include "replicator/apply/apply.hpp"
#include "replicator/wire/frame_reader.hpp"
#include "replicator/wire/tls.hpp"
#include "replicator/fs/replica_trees.hpp"
#include "access.hpp"
#include "agents_file.hpp"
#include "fileset_journal.hpp"
#include "kept_rejections.hpp"
#include "server.hpp"

namespace iz::replicator {

class Session;

// What the metrics show of one (agent, fileset), counted as its operations
// are applied: atomics, so that a scrape never waits for FilesetSlot::mu
// (held while applying, and while a commit waits for the one before it).
struct SlotCounters {
    std::atomic<uint64_t> applied_lsn{0};  // the Applier's resume_lsn()
    std::atomic<uint64_t> durable_lsn{0};
    std::atomic<uint64_t> records{0};      // LSNs whose operations were applied
    std::atomic<uint64_t> data_bytes{0};   // file data written (after decompression)
    // Shared filesets: forward frames sent to this agent (header and body)
    // and the records they carried.
    std::atomic<uint64_t> forwarded_bytes{0};
    std::atomic<uint64_t> forwarded_records{0};
    static constexpr size_t kOutcomes = 8;  // room for Outcome's values
    std::array<std::atomic<uint64_t>, kOutcomes> operations{};  // by Outcome
    uint64_t last_counted_lsn = 0;  // under FilesetSlot::mu

    // After `op` was applied with result `r` (FilesetSlot::mu held).
    void count(const proto::OpMsg& op, const ApplyResult& r, const Applier& applier);
};

struct FilesetSlot {
    // Held while applying: serialises the connections of one (agent, fileset).
    std::mutex mu;
    std::unique_ptr<Applier> applier;
    uint64_t owner = 0;  // id of the session allowed to apply
    std::weak_ptr<Session> owner_session;
    // Verification walks of the replica (not under `mu`: they only read).
    std::unique_ptr<ReplicaTrees> trees;
    SlotCounters counters;
    // Per commit begun and not yet finished, oldest first: its LSN and the
    // fileset journal's head when it began, which its Ack waits to be
    // durable (not the head when the Ack goes, which would sync the
    // records noted meanwhile once more on their own).
    std::deque<std::pair<uint64_t, uint64_t>> journal_marks;
    // What this agent was told it cannot apply and has not confirmed it
    // stored (version 5 agents only); locks itself.
    std::unique_ptr<KeptRejections> rejections;
};

struct ServerContext {
    ServerOptions options;
    // Every connection's TLS settings and the keys it accepts.
    std::shared_ptr<boost::asio::ssl::context> tls;
    std::filesystem::path state_root;
    std::string reserved_top;  // first path component refused on the wire

    // The agents and their access rules (never null once started);
    // replaced on reload.
    std::shared_ptr<const AgentsFile> agents = std::make_shared<const AgentsFile>();
    std::mutex access_mu;
    // For an agent known by its certificate's `fingerprint` or by the
    // `psk_identity` of its key (the other "").
    Access access_of(const std::string& fingerprint, const std::string& psk_identity, const std::string& fileset) {
        std::lock_guard lock(access_mu);
        std::string name;
        if (!fingerprint.empty()) {
            if (auto it = agents->certificates.find(fingerprint); it != agents->certificates.end()) name = it->second;
        } else if (!psk_identity.empty()) {
            auto n = agents->key_name(psk_identity);
            if (!n) return Access::none;
            name = *n;
        }
        return agents->access ? agents->access->of(fingerprint, psk_identity, fileset, name) : Access::read_write;
    }
    // Whether agents on this shared key may connect at all.
    bool key_admitted(const std::string& psk_identity) {
        std::lock_guard lock(access_mu);
        return agents->key_name(psk_identity).has_value();
    }

    std::mutex mu;
    std::map<std::pair<std::string, std::string>, std::shared_ptr<FilesetSlot>> slots;
    std::set<std::shared_ptr<Session>> sessions;
    uint64_t next_session_id = 1;
    // For the metrics: connections accepted, and those dropped before
    // their handshake was done (wrong key, not the protocol, too slow).
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> handshake_failures{0};

    // Per fileset: the journal of everything applied for any of its agents.
    std::map<std::string, std::shared_ptr<FilesetJournal>> journals;
    Result<std::shared_ptr<FilesetJournal>> fileset_journal(const std::string& fileset);

    // The slot of (agent, fileset), opening its applier on first use.
    Result<std::shared_ptr<FilesetSlot>> slot(const std::string& agent, const std::string& fileset);
    void forget(const std::shared_ptr<Session>& s);
};

// The page for /metrics (Server::metrics()): per (agent, fileset) labels,
// only of agents that authenticated; never a path.
std::string server_metrics(ServerContext& ctx);

// What a subscribed connection's forwarding thread shares with it.
struct ForwardState {
    std::atomic<bool> stop{false};
    // Bytes of forward frames queued on the connection and not yet written:
    // the thread waits while there are many (a slow subscriber holds the
    // server's memory to this, not to its whole replica).
    std::atomic<uint64_t> queued{0};
    static constexpr uint64_t kMaxQueued = 8ull << 20;
};

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(boost::asio::ip::tcp::socket socket, ServerContext& ctx, uint64_t id);
    void start();
    // Thread-safe: closes the connection (with a log line naming `reason`).
    void shutdown(std::string reason);
    // Thread-safe: drops the connection if the certificate it came with is
    // no longer allowed, or no longer under the agent id it uses.
    void recheck();

private:
    // tls: nothing but a TLS handshake is taken yet.
    enum class State { tls, hello, auth, ready, closed };

    // The first bytes decide: a TLS handshake, or a plaintext peer (an
    // agent of a version before TLS) told so in its own framing.
    void await_first_bytes();
    void refuse_plaintext();
    void tls_handshake();
    // Receives what the socket holds, then handles every complete frame.
    void read_more();
    void handle_buffered();
    void handle(std::string_view body);
    void on_hello(const proto::Hello& m);
    void on_auth(const proto::Auth& m);
    void on_op(const proto::OpMsg& m);
    // Shared filesets: where `m` lands once the moves and directory
    // removals its agent had not seen are counted (conflict_resolver.hpp):
    // `m` itself, or `placed` (another path, or a noop for a rename
    // skipped as a cycle, whose records it journals). Makes the removed
    // directories on its way again. `echo`: journal it with the server as
    // origin. Under the slot's lock and the fileset's order lock.
    const proto::OpMsg& place(const proto::OpMsg& m, proto::OpMsg& placed, bool& echo);
    // After the frames of one receive: see Applier::finish_batch().
    void finish_batch();
    void on_commit(const proto::Commit& m);
    // After a background commit of `slot`: reports what is durable to the
    // connection that owns the slot now (any thread).
    static void finish_commits(const std::weak_ptr<FilesetSlot>& slot);
    // `journal_lsn`: the fileset journal's LSN those commits cover (none:
    // all of it), durable before any Ack goes.
    void acknowledge(const std::vector<CommitOutcome>& done, std::optional<uint64_t> journal_lsn);
    // Logs each part the applier left out and tells the agent (RejectedMsg),
    // as for an operation rejected whole.
    void report(const std::vector<RejectionNote>& notes);
    // Tells the agent it cannot apply (lsn, path): kept first (a version 5
    // agent), durably, so that the Ack that follows never covers a
    // rejection only this connection knew of.
    void tell_rejected(uint64_t lsn, const std::string& path, const std::string& message);
    // Version 5: sends again every rejection the agent has not confirmed.
    void on_rejected_replay(const proto::RejectedReplay& m);
    // Version 5: the agent stored it; the server forgets it.
    void on_rejected_kept(const proto::RejectedKept& m);
    void on_hash(const proto::HashRequest& m);
    // Shared filesets (PROTOCOL.md "forwarding"): starts the thread that
    // sends this agent every record of the fileset journal after `cursor`
    // made by others.
    // `ranges` (SubscribeRanges, version 6): writes go as the ranges their
    // records name, except those at or below its whole_through.
    struct RangeForwards {
        uint64_t whole_through = 0;
    };
    void on_subscribe(const proto::Subscribe& m, std::optional<RangeForwards> ranges = std::nullopt);
    // Records the forwarding thread reads before it sends them.
    static constexpr size_t kForwardBatch = 1024;
    // A reload lifted the refusal of this connection's subscribe (`access`
    // is what the agent has now): a peer of version 6 is told so.
    void allow_subscribe_again(Access access);
    // From the forwarding thread (any thread): queues an encoded forward.
    void post_forward(const std::shared_ptr<ForwardState>& from, std::shared_ptr<std::string> frame);
    // Walked on another thread of the server, so that this connection goes
    // on answering pings (and applying) while the replica is hashed.
    void on_tree(const proto::TreeRequest& m);
    void send(const proto::Message& m);
    void write_next();
    void arm_timer();
    // Logs one line, tells the peer why (best effort), closes.
    void drop(const std::string& reason);
    // The same for work this server could not do (a full disk, an I/O
    // error), logged as an error: the agent shows the reason in its status
    // and sends the same operations again.
    void give_up(const std::string& reason);
    void tell_and_close(const std::string& reason);
    void say_farewell();
    void discard_input();
    // Closes at once (the peer is gone or the stream is broken).
    void close();
    // No longer an owner of its fileset, nor listed among the sessions.
    void release();
    void close_socket();
    std::string who() const;
    // The key TLS authenticated this peer with; it keys the proofs too.
    const SharedKey& session_key() const;

    boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream_;
    TlsPeer tls_peer_;
    std::string tls_summary_;  // version and cipher, once established
    std::string peer_identity_;  // the key or certificate it proved itself with
    std::optional<SharedKey> exported_key_;  // keys the proofs when no shared key was used
    Access access_ = Access::read_write;  // to its fileset, from the access rules
    uint16_t version_ = proto::kMinVersion;  // chosen at hello
    // The access rules for this agent and `fileset` (recheck: fileset_).
    Access current_access(const std::string& fileset);
    // Whether TLS authenticated the peer by a shared key (else a certificate).
    bool by_key();
    // What an operation of a receive-only agent gets instead of applying.
    void refuse_receive_only(const proto::OpMsg& m);
    uint64_t last_refused_lsn_ = 0;  // told to the agent already
    bool told_receive_only_ = false;  // logged once a connection
    boost::asio::strand<boost::asio::any_io_executor> strand_;
    boost::asio::steady_timer timer_;
    ServerContext& ctx_;
    uint64_t id_;
    std::string remote_;
    State state_ = State::tls;
    FrameReader frames_;
    proto::FrameHeader frame_{};
    std::deque<std::shared_ptr<std::string>> outbox_;
    bool writing_ = false;
    bool reading_ = false;
    // Closed to frames, but still telling the peer why (see tell_and_close).
    bool lingering_ = false;
    std::shared_ptr<std::string> farewell_;
    std::vector<char> discard_;
    std::chrono::steady_clock::time_point started_, last_rx_;
    std::string agent_, fileset_, client_nonce_, server_nonce_;
    std::shared_ptr<FilesetSlot> slot_;
    std::shared_ptr<FilesetJournal> journal_;
    std::shared_ptr<ForwardState> forward_;
    bool subscribe_refused_ = false;  // answered with subscribe_refused (and no subscribe_allowed since)
};

}  // namespace iz::replicator
