#pragma once
// The connection to one server, as the shipper sees it. The network side
// runs on the shipper's io_context thread (connect, handshake, reading acks,
// conflicts and hash replies, keepalive, reconnect with backoff); the
// shipping worker of that server talks to it through the methods below,
// which are thread-safe.
//
// Every connection has a generation number. A worker holds the generation
// it started shipping on; as soon as that connection is gone, every call
// with it returns false / an error, and the worker starts over from what the
// next connection's Welcome says.
// Boost 1.74 uses std::exchange without including <utility> (C++23 no
// longer pulls it in transitively).
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "replicator/wire/auth.hpp"
#include "replicator/wire/protocol.hpp"
#include "replicator/wire/tls.hpp"
#include "replicator/ship/shipper.hpp"

namespace iz::replicator {

// A connection that passed the handshake: its generation, and where the
// server's Welcome said to resume.
struct LinkSession {
    uint64_t generation = 0;
    proto::Welcome welcome;
};

class ServerLink : public std::enable_shared_from_this<ServerLink> {
public:
    // `tls`: the client context every connection is made with (it holds
    // the key for TLS; `key` keys the proofs inside it).
    ServerLink(boost::asio::io_context& io, const ShipperOptions& options, SharedKey key,
               std::shared_ptr<boost::asio::ssl::context> tls, ServerEndpoint endpoint, std::function<void()> on_ack);

    // Starts connecting (network thread). stop() closes for good.
    void start();
    void stop();

    // ---- for the worker ------------------------------------------------
    // Blocks until a connection is ready (or stop). nullopt when stopping.
    std::optional<LinkSession> wait_connected();
    bool alive(uint64_t generation) const;
    // Queues an encoded frame. `commit_lsn`: this frame is a Commit.
    bool send(uint64_t generation, std::string frame, std::optional<uint64_t> commit_lsn = std::nullopt);
    // Between hold() and release(), queued frames go to the network thread
    // a few at a time (kHandoverFrames or kHandoverBytes) rather than each
    // as it comes: a burst of small files was a network-thread wake-up per
    // file. Every call below that waits for the server hands over first.
    void hold();
    void release();
    // Blocks while more than `limit` bytes are unacknowledged.
    bool wait_window(uint64_t generation, uint64_t limit);
    // True while a Commit sent on this connection awaits its Ack.
    bool commit_in_flight() const;
    // Whether less than `limit` bytes are sent and not yet acknowledged.
    bool window_open(uint64_t limit) const;
    // Whether the socket is the bottleneck: at least `bytes` handed to
    // send() wait for the kernel to take them (the wire or the server
    // cannot keep up).
    bool backlogged(uint64_t bytes) const;
    // Whether the server of the current connection runs on this machine
    // (loopback, or our own address): compressing for it only moves CPU
    // time from one process to another on the same cores.
    bool same_host() const { return same_host_.load(std::memory_order_relaxed); }
    // Blocks until no Commit awaits its Ack, or `timeout`. False when the
    // connection is gone.
    bool wait_commits_acked(uint64_t generation, std::chrono::milliseconds timeout);
    // Asks for block hashes of `path` and waits for the answer.
    Result<proto::HashReply> request_hashes(uint64_t generation, const std::string& path);
    // Verification: asks the current connection for the replica's hash tree
    // and waits up to `timeout` for the answer. `wire_bytes` (if given)
    // grows by the size of both frames.
    Result<proto::TreeReply> request_tree(proto::TreeRequest req, std::chrono::milliseconds timeout, uint64_t* wire_bytes);
    // Shared filesets: asks for the fileset journal's head (HeadRequest).
    Result<uint64_t> request_head(std::chrono::milliseconds timeout);
    // This link subscribes (send-receive) and hands forwards to `sink`.
    void receive_into(std::shared_ptr<ForwardSink> sink) { sink_ = std::move(sink); }
    // The worker gave up on this connection (e.g. it could not encode).
    void fail(uint64_t generation, const std::string& why);
    // Ends the current connection, whichever it is (Shipper::resubscribe).
    void reconnect(const std::string& why);

    // ---- for status --------------------------------------------------
    uint64_t acked_lsn() const;
    ServerStatus status() const;
    // Shipper::forget_rejected for this server; returns how many went.
    size_t forget_rejected(uint64_t through, const std::vector<std::string>& changing);
    // Reads what this server rejected before the agent (re)started, kept
    // beneath ShipperOptions::state_dir; before start().
    Status restore_rejected();
    const ServerEndpoint& endpoint() const { return endpoint_; }
    // Counts file data put into frames (before compression), for status.
    void count_data(uint64_t raw_bytes);
    // Sets the data bytes read but not yet sent (for bytes_behind).
    void set_pending_bytes(uint64_t n);

private:
    // Keeps a RejectedMsg in rejected_; false (nothing kept or counted) when
    // the same rejection is kept already (see server_link.cpp).
    bool note_rejected(const proto::RejectedMsg& m);
    // Writes rejected_ to its file (rejection_store.hpp), if there is one;
    // false when that failed (logged).
    bool persist_rejected();
    // Version 5: tells the server the agent keeps (lsn, path) itself now.
    void confirm_rejected(const proto::RejectedMsg& m);
    enum class Phase { idle, connecting, handshake, ready };

    void connect();
    void on_connected();
    void on_tls_up();
    void read_frame(std::function<void(proto::Message)> then);
    void handle(proto::Message m);
    // Subscribes from the sink's cursor (at a connection, or when the
    // server allows it again); false if the connection was lost.
    bool subscribe();
    void write_next();
    void tick();
    void lost(const std::string& why);  // network thread
    void served_well();
    void schedule_reconnect();
    void push_frame(uint64_t generation, std::shared_ptr<std::string> frame);
    // Posts the hand-over of staged frames unless one is posted; mu_ held.
    // True when the caller must post it (after unlocking).
    bool handover_due_locked(bool force);
    void post_handover();
    void hand_over();    // worker: whatever is staged goes now
    void take_staged();  // network thread

    boost::asio::io_context& io_;
    const ShipperOptions& options_;
    SharedKey key_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    ServerEndpoint endpoint_;
    std::string name_;
    std::function<void()> on_ack_;

    // Network-thread state.
    boost::asio::ip::tcp::resolver resolver_;
    // Shared with every operation begun on it: lost() drops this pointer
    // while a composed write may still be about to send its next part, and a
    // new socket at the old address must never pass for the old one.
    using Stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;
    std::shared_ptr<Stream> socket_;
    boost::asio::steady_timer timer_;        // reconnect backoff and keepalive ticks
    boost::asio::steady_timer deadline_;     // connect + handshake
    Phase phase_ = Phase::idle;
    std::chrono::milliseconds backoff_{100};
    std::string client_nonce_;
    SharedKey proof_key_;       // keys the proofs of the current connection
    std::string peer_identity_;  // how the current server proved itself (mu_)
    std::string tls_summary_;    // TLS version and cipher of the current connection (mu_)
    char header_[proto::kHeaderBytes];
    std::string body_;
    std::deque<std::shared_ptr<std::string>> outbox_;
    bool writing_ = false;
    std::chrono::steady_clock::time_point last_rx_, last_tx_;
    bool ping_outstanding_ = false;
    uint64_t ping_id_ = 0;

    // Shared with the worker.
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool connected_ = false;
    uint64_t generation_ = 0;
    LinkSession session_;
    std::string last_error_;
    // Why this server is not shipped to as it stands (see
    // refusal_for_resume); it stays the last error, and reconnects come
    // every kRefusedRetry, until a connection passes.
    std::string refusal_;
    uint64_t acked_lsn_ = 0;
    // The protocol version the current server chose (network thread).
    uint16_t server_version_ = proto::kMinVersion;
    // server_version_ as the last handshake ended, for status() (under mu_).
    uint16_t connected_version_ = 0;
    // Version 5: welcome's durable_lsn, held back from acked_lsn_ until the
    // server has sent again every rejection it kept for this agent
    // (RejectedReplayed), so that no sync is answered before they are here
    // (mu_); the id of that replay.
    std::optional<uint64_t> replay_durable_;
    uint64_t replay_id_ = 0;
    uint64_t sent_bytes_ = 0;
    uint64_t acked_bytes_ = 0;
    uint64_t written_bytes_ = 0;  // taken by the kernel (includes pings: a few bytes each)
    uint64_t total_wire_bytes_ = 0;  // since start, across connections
    // Counted per extent by the worker: an atomic, not a lock per extent.
    std::atomic<uint64_t> total_data_bytes_{0};
    std::atomic<bool> same_host_{false};
    std::deque<std::pair<uint64_t, uint64_t>> commits_;  // (lsn, sent_bytes when sent)
    uint64_t pending_bytes_ = 0;
    uint64_t conflicts_ = 0;
    std::deque<RejectedRecord> rejected_;
    // Where rejected_ is kept ("" for nowhere); persist_mu_ orders the
    // writes (taken before mu_, never inside it).
    std::filesystem::path rejections_file_;
    std::mutex persist_mu_;
    uint64_t connections_ = 0;  // that passed the handshake
    uint64_t rejected_total_ = 0;
    uint64_t server_errors_ = 0;
    // Why the server refused this connection's subscribe ("" when it did
    // not); the last one logged, so that each reconnection does not log it again.
    std::string subscribe_refused_, refusal_logged_;
    // A request answered by one reply with its id (tree, head): the current
    // connection and the id the request takes, with `slot` emptied; fails
    // when not connected.
    template <class Reply>
    Result<std::pair<uint64_t, uint64_t>> begin_request(uint64_t& next_id, std::optional<Reply>& slot);
    // Sends the request `frame` on connection `generation` and waits up to
    // `timeout` for `slot` to hold the reply numbered `id`, which it takes.
    template <class Reply>
    Result<Reply> await_reply(uint64_t generation, uint64_t id, Result<std::string> frame, std::optional<Reply>& slot,
                              std::chrono::milliseconds timeout);

    uint64_t next_hash_id_ = 1;
    std::optional<proto::HashReply> hash_reply_;
    uint64_t next_tree_id_ = 1;
    std::optional<proto::TreeReply> tree_reply_;
    uint64_t tree_reply_bytes_ = 0;
    std::shared_ptr<ForwardSink> sink_;  // set before start()
    uint64_t next_head_id_ = 1;
    std::optional<proto::HeadReply> head_reply_;
    // Frames the worker has queued for the network thread (all of the
    // current generation: lost() drops them), and whether a hand-over is
    // posted already: one post moves every frame queued by then.
    std::deque<std::shared_ptr<std::string>> staged_;
    size_t staged_bytes_ = 0;
    bool handover_posted_ = false;
    bool holding_ = false;
};

}  // namespace iz::replicator
