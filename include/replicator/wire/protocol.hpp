#pragma once
// The replication wire protocol between a shipper (in the agent) and
// izreplicate.
//
// A connection is a sequence of frames. A frame is a fixed 12-byte header
// (magic, message type, flags, body length; big-endian) followed by a body
// serialised with cereal's portable binary archive.
//
// Promises:
//  - A header is checked (magic, known type, flags, length <= kMaxFrameBody)
//    before anything is allocated for its body.
//  - Decoding never throws and never trusts a length prefix beyond the bytes
//    actually present; malformed input is an Error, never a crash.
//  - The conversation is: Hello -> Challenge -> Auth -> Welcome (or Error),
//    then Op/Commit/HashRequest/TreeRequest/Ping from the client and
//    Ack/HashReply/TreeReply/Conflict/Pong/Error from the server. Messages on one
//    connection are processed strictly in order.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "common/error.hpp"
#include "common/mutation_ops.hpp"

namespace iz::replicator::proto {

inline constexpr uint32_t kMagic = 0x495A5250;  // "IZRP"
// 2: holes travel (OpMsg::holes, HashReply::hole_blocks); a version 1 peer
// is told so at the handshake instead of failing to decode its first op.
// 3: shared filesets (Subscribe, Forward, HeadRequest, HeadReply); a
// version 2 agent is refused at the handshake with both versions named.
// 4: conflicts in shared filesets (OpMsg::seen, time_ns and note,
// OpKind::conflict); a version 3 peer is refused at the handshake.
// SubscribeRefused came later without a new version: only a subscribe the
// server refuses brings it, and a version 4 agent that does not know it
// ends the connection at it, as the error it replaced did.
// 5: rejections the server keeps until the agent has stored them
// (RejectedReplay, RejectedReplayed, RejectedKept, all sent only to or by a
// peer that chose 5). A server of 5 still speaks 4: it picks the highest
// version both ends speak, and a version 4 agent never sees them. An agent
// of 5 offers 4..5 and sends them only to a server that chose 5.
// 6: forwards of writes as ranges (SubscribeRanges, sent only to a server
// that chose 6: the agent takes a write as the changed ranges and holes
// patched over its copy, and asks for whole content where its copy is not
// the one they patch). A server of 6 still forwards whole content to a
// plain Subscribe, so agents of 4 and 5 are served as before.
// Also 6: SubscribeAllowed, a refused subscriber may subscribe again on the live
// connection (sent only to a peer that chose 6: an agent of 5 would end the
// connection at its unknown type, and then reconnect, as it must anyway).
inline constexpr uint16_t kVersion = 6;
// The oldest version this build still speaks.
inline constexpr uint16_t kMinVersion = 4;
// From this version on, the server keeps rejections for the agent.
inline constexpr uint16_t kRejectionsKeptVersion = 5;
// From this version on, an agent may subscribe to forwards as ranges.
inline constexpr uint16_t kRangeForwardsVersion = 6;
// From this version on, the server tells a refused subscriber when it may
// subscribe again.
inline constexpr uint16_t kResubscribeVersion = 6;
inline constexpr size_t kHeaderBytes = 12;
// Hard ceiling on one frame's body: the shipper splits data to stay under it.
inline constexpr uint32_t kMaxFrameBody = 16u << 20;
// Largest uncompressed data extent a shipper sends (and a server accepts).
inline constexpr uint32_t kMaxExtentBytes = 4u << 20;
// No extent or hole of a frame reaches past this offset (4 EiB: beyond what
// ext4 or XFS hold, and far from overflowing off_t).
inline constexpr uint64_t kMaxFileBytes = 1ull << 62;
inline constexpr size_t kNonceBytes = 32;
inline constexpr size_t kProofBytes = 32;  // HMAC-SHA256

// Wire values: append only, never renumber.
enum class MsgType : uint16_t {
    hello = 1,
    challenge = 2,
    auth = 3,
    welcome = 4,
    error = 5,
    op = 6,
    commit = 7,
    ack = 8,
    hash_request = 9,
    hash_reply = 10,
    conflict = 11,
    ping = 12,
    pong = 13,
    rejected = 14,
    tree_request = 15,
    tree_reply = 16,
    subscribe = 17,
    forward = 18,
    head_request = 19,
    head_reply = 20,
    subscribe_refused = 21,
    rejected_replay = 22,
    rejected_replayed = 23,
    rejected_kept = 24,
    subscribe_ranges = 25,
    subscribe_allowed = 26,
};

std::string_view msg_type_name(MsgType t);

struct FrameHeader {
    uint32_t magic = kMagic;
    MsgType type = MsgType::ping;
    uint16_t flags = 0;  // reserved, must be 0
    uint32_t length = 0;
};

// Parses and validates a header (exactly kHeaderBytes bytes).
Result<FrameHeader> parse_header(std::string_view bytes);
void put_header(const FrameHeader& h, std::string& out);

// ---- handshake ----------------------------------------------------------

struct Hello {
    uint16_t min_version = kMinVersion;
    uint16_t max_version = kVersion;
    std::string agent_id;
    std::string fileset;
    std::string client_nonce;  // kNonceBytes
};

// The server proves it knows the key before the client reveals its proof.
struct Challenge {
    uint16_t version = kVersion;
    std::string server_nonce;  // kNonceBytes
    std::string server_proof;  // kProofBytes
};

struct Auth {
    std::string client_proof;  // kProofBytes
};

struct Welcome {
    // Last LSN whose effects are durable (fsynced) on the server.
    uint64_t durable_lsn = 0;
    // Last LSN applied (possibly not yet durable); the client resumes after it.
    uint64_t resume_lsn = 0;
    std::string server_host;
};

struct ErrorMsg {
    std::string message;
};

// ---- replication --------------------------------------------------------

// What one Op message asks the server to do. Most map 1:1 to journal ops;
// whole-file content is a sequence content_begin, content_data*, content_end
// sharing one LSN. content_begin may carry the file's mode (the new file is
// made with its permission bits); content_end carries the final attributes.
// create..removexattr are the mutations the journal names too, with the
// same numbers (common/mutation_ops.hpp); append only, never renumber.
enum class OpKind : uint8_t {
    noop = 0,
    // 1..13, journal::Op's numbers. A write: extents and holes in place,
    // then size, then mtime.
    IZ_MUTATION_OPS(IZ_MUTATION_ENUMERATOR)
    content_begin = 14,
    content_data = 15,
    content_end = 16,
    // What follows at this LSN repairs `path` (found different by a
    // verification): the server's own state of it and beneath it is not a
    // change behind the replicator's back, so no conflict copy is kept.
    repair = 17,
    // path and target swap names (renameat2 RENAME_EXCHANGE); both exist.
    exchange = 18,
    // Forwarded only (a shipper's is refused): the server found two
    // concurrent versions of `path` in a shared fileset; the one at `path`
    // stayed, the other is at `target` (made by the records that follow).
    // Changes nothing: a receiver journals and counts it.
    conflict = 19,
};
inline constexpr OpKind kLastOpKind = OpKind::conflict;

std::string_view op_kind_name(OpKind k);

struct Extent {
    uint64_t offset = 0;
    uint32_t raw_length = 0;  // bytes after decompression
    bool zstd = false;
    std::string bytes;
};

// A range that reads as zeros at the source and has no blocks there: the
// server makes it a hole (punches it where its copy has data), so holes
// cost nothing on the wire and no space on the replica.
struct Hole {
    uint64_t offset = 0;
    uint64_t length = 0;
};

// content_begin: what the new content starts from.
enum class ContentBase : uint8_t {
    empty = 0,     // only the extents that follow (a full copy)
    existing = 1,  // the server's current copy, patched by the extents (delta)
};

struct OpMsg {
    uint64_t lsn = 0;
    OpKind kind = OpKind::noop;
    std::string path;    // relative to the fileset root; "" is the root
    std::string target;  // rename/link destination, symlink text, exchange's other side
    std::optional<uint32_t> mode;  // link: only the type (S_IFMT) of the object linked, when known
    std::optional<uint32_t> uid;
    std::optional<uint32_t> gid;
    std::optional<int64_t> atime_ns;
    std::optional<int64_t> mtime_ns;
    std::optional<uint64_t> size;
    std::optional<uint64_t> rdev;
    bool replaced = false;
    std::string xattr_name;
    std::string xattr_value;
    std::vector<Extent> extents;
    ContentBase base = ContentBase::empty;
    // The source's directory mtimes after the operation (read at ship time),
    // so replica directories converge although entry changes bump them.
    std::optional<int64_t> parent_mtime_ns;
    std::optional<int64_t> target_parent_mtime_ns;
    // This LSN is not complete yet: the server must not resume after it.
    // On a write, more parts of the record follow. On any other operation
    // (the last part of a write, content_end included), the agent planned
    // it inside a span where an earlier record is carried by a later one
    // (a create by the content sent at close): resuming after it would lose
    // the earlier record. Applied all the same; only not noted as applied.
    bool more = false;
    // write, content_begin, content_data: ranges to make holes, beside the
    // extents to write (holes on any other kind are refused). No two
    // extents or holes overlap (a frame where they do is refused), so the
    // order they are applied in does not matter.
    std::vector<Hole> holes;
    // Shared filesets, on every part of a record an agent ships to the
    // server it receives from: the server LSN of the fileset journal the
    // agent had applied when it captured the change (Record::seen). Absent:
    // not known (a send-only agent), and the operation replaces whatever
    // the fileset holds, as before conflicts existed.
    std::optional<uint64_t> seen;
    // The record's time (ns since the epoch): names a conflict copy.
    std::optional<int64_t> time_ns;
    // conflict: what was kept where, with both origins, for people.
    std::string note;
};

// The messages that carry one number: an LSN, or the id a reply echoes.
// One type per message type (the variant tells them apart by type), one
// declaration per shape.
template <MsgType>
struct LsnMsg {
    uint64_t lsn = 0;
};
template <MsgType>
struct IdMsg {
    uint64_t id = 0;
};

// Everything up to `lsn` was sent: make it durable and acknowledge.
using Commit = LsnMsg<MsgType::commit>;
// Sent only after data and the applied LSN are fsynced.
using Ack = LsnMsg<MsgType::ack>;

struct HashRequest {
    uint64_t id = 0;
    std::string path;
};

struct HashReply {
    uint64_t id = 0;
    bool exists = false;  // a regular file is at the path
    uint64_t size = 0;
    uint32_t block_size = 0;
    std::string hashes;  // 16 bytes (XXH3-128, canonical) per block
    // One bit per block (bit k%8 of byte k/8), set when block k is all hole
    // on the server: it was hashed as zeros without reading, and the
    // shipper need not punch it. Empty, or exactly enough bytes for the
    // blocks.
    std::string hole_blocks;
    bool hole_block(uint64_t k) const {
        return k / 8 < hole_blocks.size() && (static_cast<unsigned char>(hole_blocks[k / 8]) >> (k % 8)) & 1;
    }
};

// The server kept its own version of a file it found changed behind the
// replicator's back.
struct ConflictMsg {
    uint64_t lsn = 0;
    std::string path;
    std::string conflict_copy;  // where the server's version was kept
    std::string server_host;
    std::string message;
};

using Ping = IdMsg<MsgType::ping>;
using Pong = IdMsg<MsgType::pong>;

// The server can never apply the operation at `lsn` as it stands (a name
// or path its filesystem or its own layout refuses): it applied nothing of
// it and went on with what follows. The replica lacks it until the source
// changes it.
struct RejectedMsg {
    uint64_t lsn = 0;
    std::string path;
    std::string message;
    bool operator==(const RejectedMsg&) const = default;
};

// Verification (tree_hash.hpp): the hash tree of the replica at `path`.
// A `fresh` request walks the subtree anew and the server keeps that walk;
// later requests beneath it are answered from it, so looking into the
// directories whose hashes differ costs no second walk.
inline constexpr size_t kMaxTreeExcludes = 1024;
struct TreeRequest {
    uint64_t id = 0;
    std::string path;
    bool fresh = false;
    bool list = false;     // include a directory's children
    uint64_t start = 0;    // the first child to include (long directories come in parts)
    std::vector<std::string> excludes;  // the agent's exclude globs (at most kMaxTreeExcludes)
};

struct TreeEntry {
    std::string name;
    std::string meta;  // tree::encode(EntryMeta)
    std::string hash;  // 16 bytes
};

struct TreeReply {
    uint64_t id = 0;
    std::string error;  // why the server could not walk it ("" when it did)
    bool found = false;
    TreeEntry self;
    std::vector<TreeEntry> children;
    bool more = false;  // children after these: ask again from start + children.size()
};

// ---- shared filesets ------------------------------------------------------

// A send-receive agent, after welcome: send me every record of the
// fileset's journal on this server after `cursor` (a server LSN) that I
// did not make myself. Sent at most once per connection.
struct Subscribe {
    uint64_t cursor = 0;
};

// One part of the server's fileset-journal record `op.lsn`, made by agent
// `origin` where it was `origin_lsn`. `op` is what to apply, as an op the
// server applies (whole content as content_begin, content_data...,
// content_end, read from the server's replica when it is sent; `op.more`
// on every part but the last). A noop with no origin moves the cursor past
// records the subscriber made itself.
struct Forward {
    std::string origin;
    uint64_t origin_lsn = 0;
    OpMsg op;
};

// What the server's fileset journal holds: HeadReply's lsn is its last
// LSN when the request was read. Every record up to it comes to a
// subscriber as a Forward (or is skipped by one) before any record after.
struct HeadRequest {
    uint64_t id = 0;
};
struct HeadReply {
    uint64_t id = 0;
    uint64_t lsn = 0;
};

// The server will forward nothing on this connection (the agent's
// identity may only send to `fileset`): the connection stays, and what
// the agent sends is applied as before. It answers a subscribe, or ends
// the forwards of one when a reload makes the agent send-only.
struct SubscribeRefused {
    std::string fileset;
    std::string message;
};

// Version 6, instead of Subscribe: the same, and a write may come as the
// ranges its record changed (content_begin with base `existing`, the data
// of those ranges as extents and their holes as holes, content_end with the
// final size and attributes), read from the server's copy when sent. The
// agent patches its copy with them only where that copy is exactly what
// forwards left there; where it is not (a local change, a file it never
// received), it connects anew and sends `whole_through` = that record's
// LSN: every write through it comes as whole content.
struct SubscribeRanges {
    uint64_t cursor = 0;
    uint64_t whole_through = 0;
};

// ---- rejections the server keeps (version 5) -----------------------------

// The server keeps every rejection it told a version 5 agent (per agent and
// fileset, durably, before the Ack that covers its record) until the agent
// says it has stored it: a report the agent never read (it died between
// the server's Ack and reading it) would otherwise be lost, the server
// having resumed past the record.
//
// Sent by the agent right after welcome: send again every rejection I have
// not confirmed, then RejectedReplayed with this id.
using RejectedReplay = IdMsg<MsgType::rejected_replay>;
// Every rejection kept for the agent was sent again (`count` of them, as
// rejected messages) before this.
struct RejectedReplayed {
    uint64_t id = 0;
    uint64_t count = 0;
};
// The agent keeps the rejection of (lsn, path) durably itself now: the
// server forgets it.
struct RejectedKept {
    uint64_t lsn = 0;
    std::string path;
};

// ---- subscribing again (version 6) ---------------------------------------

// A reload of the access rules lets an agent whose subscribe was refused on
// this connection (SubscribeRefused) receive the fileset again: it may send
// one Subscribe more, from its cursor. The server sends it at most once per
// refusal, and only to a peer that chose version 6.
struct SubscribeAllowed {
    std::string fileset;
    std::string message;
};

using Message = std::variant<Hello, Challenge, Auth, Welcome, ErrorMsg, OpMsg, Commit, Ack, HashRequest,
                             HashReply, ConflictMsg, Ping, Pong, RejectedMsg, TreeRequest, TreeReply, Subscribe,
                             Forward, HeadRequest, HeadReply, SubscribeRefused, RejectedReplay, RejectedReplayed,
                             RejectedKept, SubscribeRanges, SubscribeAllowed>;

MsgType type_of(const Message& m);
// type_of counts on it: the variant lists the messages in MsgType's order.
static_assert(std::is_same_v<std::variant_alternative_t<static_cast<size_t>(MsgType::commit) - 1, Message>, Commit>);
static_assert(std::is_same_v<std::variant_alternative_t<static_cast<size_t>(MsgType::ack) - 1, Message>, Ack>);
static_assert(std::is_same_v<std::variant_alternative_t<static_cast<size_t>(MsgType::ping) - 1, Message>, Ping>);
static_assert(std::is_same_v<std::variant_alternative_t<static_cast<size_t>(MsgType::pong) - 1, Message>, Pong>);
static_assert(std::is_same_v<std::variant_alternative_t<static_cast<size_t>(MsgType::subscribe_refused) - 1, Message>,
                             SubscribeRefused>);
static_assert(std::is_same_v<std::variant_alternative_t<static_cast<size_t>(MsgType::rejected_kept) - 1, Message>,
                             RejectedKept>);
static_assert(std::is_same_v<std::variant_alternative_t<static_cast<size_t>(MsgType::subscribe_ranges) - 1, Message>,
                             SubscribeRanges>);
static_assert(std::is_same_v<std::variant_alternative_t<static_cast<size_t>(MsgType::subscribe_allowed) - 1, Message>,
                             SubscribeAllowed>);

// Header + body, ready to send. Fails only if the body exceeds kMaxFrameBody.
Result<std::string> encode_frame(const Message& m);
// Decodes a body whose header was already validated.
Result<Message> decode_body(MsgType type, std::string_view body);
// Header + body in one buffer (tests, tools).
Result<Message> decode_frame(std::string_view frame);

// A name accepted for an agent or a fileset: 1 to 128 of [A-Za-z0-9._-],
// not starting with '.' (it becomes a directory name on the server).
bool valid_identity(std::string_view name);

// The checks a decoded OpMsg passes: extents within their size limits,
// holes not empty, nothing past kMaxFileBytes, holes only where data goes,
// and no two extents or holes overlapping. Applying checks again.
Status check_data(const OpMsg& op);

// Extents: compress with zstd when it saves at least an eighth.
Extent make_extent(uint64_t offset, std::string_view raw, bool try_compress = true);
// The same, taking the bytes: kept as they are (not worth compressing, or
// not tried), they move into the extent instead of being copied.
Extent make_extent_taking(uint64_t offset, std::string&& raw, bool try_compress = true);
// Decompresses (bounded by raw_length <= kMaxExtentBytes) into `out`.
Status extent_data(const Extent& e, std::string& out);
// The extent's raw bytes: its own when it is not compressed (no copy), else
// decompressed into `scratch`. Valid while both live and stay unchanged.
Result<std::string_view> extent_bytes(const Extent& e, std::string& scratch);

}  // namespace iz::replicator::proto
