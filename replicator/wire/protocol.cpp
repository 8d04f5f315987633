#include "replicator/wire/protocol.hpp"

#include <zstd.h>

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "common/archive_fields.hpp"
#include "common/binary_archive.hpp"
#include "zstd_contexts.hpp"

namespace iz::replicator::proto {

namespace {

// ---- streams ------------------------------------------------------------

thread_local const ViewInputArchive* current_source = nullptr;

void check_length(uint64_t n, uint64_t unit = 1) {
    size_t left = current_source ? current_source->remaining() : 0;
    if (unit == 0 || n > left / unit)
        throw std::length_error(fmt::format("length prefix {} exceeds the {} bytes left", n, left));
}

// ---- field helpers shared by save and load --------------------------------

template <class Archive>
void str(Archive& ar, std::string& s) {
    archive_fields::str(ar, s, check_length);
}

template <class Archive, class... F>
void all(Archive& ar, F&... f) {
    archive_fields::all(ar, check_length, f...);
}

// The fields of a message, in their order on the wire.
auto members(Hello& m) { return std::tie(m.min_version, m.max_version, m.agent_id, m.fileset, m.client_nonce); }
auto members(Challenge& m) { return std::tie(m.version, m.server_nonce, m.server_proof); }
auto members(Auth& m) { return std::tie(m.client_proof); }
auto members(Welcome& m) { return std::tie(m.durable_lsn, m.resume_lsn, m.server_host); }
auto members(ErrorMsg& m) { return std::tie(m.message); }
auto members(Extent& e) { return std::tie(e.offset, e.raw_length, e.zstd, e.bytes); }
auto members(Hole& h) { return std::tie(h.offset, h.length); }
auto members(TreeEntry& e) { return std::tie(e.name, e.meta, e.hash); }
template <MsgType T>
auto members(LsnMsg<T>& m) { return std::tie(m.lsn); }
template <MsgType T>
auto members(IdMsg<T>& m) { return std::tie(m.id); }
auto members(HashRequest& m) { return std::tie(m.id, m.path); }
auto members(HashReply& m) { return std::tie(m.id, m.exists, m.size, m.block_size, m.hashes, m.hole_blocks); }
auto members(ConflictMsg& m) { return std::tie(m.lsn, m.path, m.conflict_copy, m.server_host, m.message); }
auto members(RejectedMsg& m) { return std::tie(m.lsn, m.path, m.message); }
auto members(Subscribe& m) { return std::tie(m.cursor); }
auto members(HeadRequest& m) { return std::tie(m.id); }
auto members(HeadReply& m) { return std::tie(m.id, m.lsn); }
auto members(SubscribeRefused& m) { return std::tie(m.fileset, m.message); }
auto members(RejectedReplayed& m) { return std::tie(m.id, m.count); }
auto members(RejectedKept& m) { return std::tie(m.lsn, m.path); }
auto members(SubscribeRanges& m) { return std::tie(m.cursor, m.whole_through); }
auto members(SubscribeAllowed& m) { return std::tie(m.fileset, m.message); }

template <class Archive, class M>
    requires requires(M& m) { members(m); }
void fields(Archive& ar, M& m) {
    std::apply([&](auto&... f) { all(ar, f...); }, members(m));
}

// A vector of `T`, each at least `min_bytes` when encoded.
template <class Archive, class T>
void vec(Archive& ar, std::vector<T>& v, uint64_t min_bytes) {
    archive_fields::seq(ar, v, min_bytes, check_length, [](Archive& a, T& e) { fields(a, e); });
}
template <class Archive>
void fields(Archive& ar, OpMsg& m) {
    all(ar, m.lsn, m.kind, m.path, m.target, m.mode, m.uid, m.gid, m.atime_ns, m.mtime_ns, m.size, m.rdev,
        m.replaced, m.xattr_name, m.xattr_value);
    vec(ar, m.extents, 14);  // the smallest encoded extent
    all(ar, m.base, m.parent_mtime_ns, m.target_parent_mtime_ns, m.more);
    vec(ar, m.holes, 16);
    all(ar, m.seen, m.time_ns, m.note);
}
template <class Archive>
void fields(Archive& ar, Forward& m) {
    all(ar, m.origin, m.origin_lsn);
    fields(ar, m.op);
}
template <class Archive>
void fields(Archive& ar, TreeRequest& m) {
    all(ar, m.id, m.path, m.fresh, m.list, m.start);
    // 8: the smallest encoded string
    archive_fields::seq(ar, m.excludes, 8, check_length, [](Archive& a, std::string& s) { str(a, s); });
}
template <class Archive>
void fields(Archive& ar, TreeReply& m) {
    all(ar, m.id, m.error, m.found);
    fields(ar, m.self);
    vec(ar, m.children, 24);  // the smallest encoded entry
    all(ar, m.more);
}

// Semantic checks a well-formed body must also pass.
Status validate(const Message& m) {
    if (auto* t = std::get_if<TreeRequest>(&m)) {
        // Every one is matched against every path walked.
        if (t->excludes.size() > kMaxTreeExcludes)
            return fail(make_error(fmt::format("{} exclude globs exceed the limit of {}", t->excludes.size(), kMaxTreeExcludes)));
        for (auto& g : t->excludes)
            if (g.size() > 4096) return fail(make_error("an exclude glob over 4096 bytes"));
    }
    const OpMsg* op = std::get_if<OpMsg>(&m);
    if (auto* f = std::get_if<Forward>(&m)) op = &f->op;
    if (op) {
        if (static_cast<uint8_t>(op->kind) > static_cast<uint8_t>(kLastOpKind))
            return fail(make_error(fmt::format("unknown op kind {}", static_cast<int>(op->kind))));
        if (static_cast<uint8_t>(op->base) > static_cast<uint8_t>(ContentBase::existing))
            return fail(make_error(fmt::format("unknown content base {}", static_cast<int>(op->base))));
        return check_data(*op);
    }
    if (auto* h = std::get_if<HashReply>(&m)) {
        if (!h->hole_blocks.empty() && h->hole_blocks.size() != (h->hashes.size() / 16 + 7) / 8)
            return fail(make_error(fmt::format("a hole map of {} bytes for {} block hashes", h->hole_blocks.size(),
                                               h->hashes.size() / 16)));
    }
    return {};
}

}  // namespace

Status check_data(const OpMsg& op) {
    // [offset, end) of every extent and hole, to find overlaps.
    std::vector<std::pair<uint64_t, uint64_t>> spans;
    spans.reserve(op.extents.size() + op.holes.size());
    for (auto& e : op.extents) {
        if (e.raw_length > kMaxExtentBytes)
            return fail(make_error(fmt::format("extent of {} bytes exceeds the {} byte limit", e.raw_length, kMaxExtentBytes)));
        if (!e.zstd && e.bytes.size() != e.raw_length)
            return fail(make_error("extent length does not match its data"));
        if (e.offset > kMaxFileBytes || e.raw_length > kMaxFileBytes - e.offset)
            return fail(make_error(fmt::format("extent at offset {} reaches past {} bytes", e.offset, kMaxFileBytes)));
        if (e.raw_length) spans.emplace_back(e.offset, e.offset + e.raw_length);
    }
    if (!op.holes.empty()) {
        using K = OpKind;
        if (op.kind != K::write && op.kind != K::content_begin && op.kind != K::content_data)
            return fail(make_error(fmt::format("holes in a {} op", op_kind_name(op.kind))));
    }
    for (auto& h : op.holes) {
        if (h.length == 0) return fail(make_error(fmt::format("empty hole at offset {}", h.offset)));
        if (h.offset > kMaxFileBytes || h.length > kMaxFileBytes - h.offset)
            return fail(make_error(fmt::format("hole of {} bytes at offset {} reaches past {} bytes", h.length, h.offset,
                                               kMaxFileBytes)));
        spans.emplace_back(h.offset, h.offset + h.length);
    }
    if (spans.size() < 2) return {};
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i) {
        if (spans[i].first < spans[i - 1].second)
            return fail(make_error(fmt::format("extents or holes overlap: [{}, {}) and [{}, {})", spans[i - 1].first,
                                               spans[i - 1].second, spans[i].first, spans[i].second)));
    }
    return {};
}

std::string_view msg_type_name(MsgType t) {
    switch (t) {
        case MsgType::hello: return "hello";
        case MsgType::challenge: return "challenge";
        case MsgType::auth: return "auth";
        case MsgType::welcome: return "welcome";
        case MsgType::error: return "error";
        case MsgType::op: return "op";
        case MsgType::commit: return "commit";
        case MsgType::ack: return "ack";
        case MsgType::hash_request: return "hash_request";
        case MsgType::hash_reply: return "hash_reply";
        case MsgType::conflict: return "conflict";
        case MsgType::ping: return "ping";
        case MsgType::pong: return "pong";
        case MsgType::rejected: return "rejected";
        case MsgType::tree_request: return "tree_request";
        case MsgType::tree_reply: return "tree_reply";
        case MsgType::subscribe: return "subscribe";
        case MsgType::forward: return "forward";
        case MsgType::head_request: return "head_request";
        case MsgType::head_reply: return "head_reply";
        case MsgType::subscribe_refused: return "subscribe_refused";
        case MsgType::rejected_replay: return "rejected_replay";
        case MsgType::rejected_replayed: return "rejected_replayed";
        case MsgType::rejected_kept: return "rejected_kept";
        case MsgType::subscribe_ranges: return "subscribe_ranges";
        case MsgType::subscribe_allowed: return "subscribe_allowed";
    }
    return "unknown";
}

std::string_view op_kind_name(OpKind k) {
    switch (k) {
        case OpKind::noop: return "noop";
        case OpKind::create: return "create";
        case OpKind::mkdir: return "mkdir";
        case OpKind::mknod: return "mknod";
        case OpKind::symlink: return "symlink";
        case OpKind::link: return "link";
        case OpKind::unlink: return "unlink";
        case OpKind::rmdir: return "rmdir";
        case OpKind::rename: return "rename";
        case OpKind::setattr: return "setattr";
        case OpKind::write: return "write";
        case OpKind::truncate: return "truncate";
        case OpKind::setxattr: return "setxattr";
        case OpKind::removexattr: return "removexattr";
        case OpKind::content_begin: return "content_begin";
        case OpKind::content_data: return "content_data";
        case OpKind::content_end: return "content_end";
        case OpKind::repair: return "repair";
        case OpKind::exchange: return "exchange";
        case OpKind::conflict: return "conflict";
    }
    return "unknown";
}

Result<FrameHeader> parse_header(std::string_view b) {
    if (b.size() != kHeaderBytes) return fail(make_error("truncated frame header"));
    auto u8 = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(b[i])); };
    FrameHeader h;
    h.magic = u8(0) << 24 | u8(1) << 16 | u8(2) << 8 | u8(3);
    uint16_t type = static_cast<uint16_t>(u8(4) << 8 | u8(5));
    h.flags = static_cast<uint16_t>(u8(6) << 8 | u8(7));
    h.length = u8(8) << 24 | u8(9) << 16 | u8(10) << 8 | u8(11);
    if (h.magic != kMagic) return fail(make_error(fmt::format("bad frame magic 0x{:08x}", h.magic)));
    if (type < static_cast<uint16_t>(MsgType::hello) || type > static_cast<uint16_t>(MsgType::subscribe_allowed))
        return fail(make_error(fmt::format("unknown frame type {}", type)));
    h.type = static_cast<MsgType>(type);
    if (h.flags != 0) return fail(make_error(fmt::format("unsupported frame flags 0x{:04x}", h.flags)));
    if (h.length > kMaxFrameBody)
        return fail(make_error(fmt::format("frame of {} bytes exceeds the {} byte limit", h.length, kMaxFrameBody)));
    return h;
}

void put_header(const FrameHeader& h, std::string& out) {
    auto put32 = [&](uint32_t v) {
        for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
    };
    put32(h.magic);
    out.push_back(static_cast<char>(static_cast<uint16_t>(h.type) >> 8));
    out.push_back(static_cast<char>(static_cast<uint16_t>(h.type) & 0xff));
    out.push_back(static_cast<char>(h.flags >> 8));
    out.push_back(static_cast<char>(h.flags & 0xff));
    put32(h.length);
}

MsgType type_of(const Message& m) {
    return static_cast<MsgType>(m.index() + 1);  // variant order follows MsgType
}

Result<std::string> encode_frame(const Message& m) {
    // Sized for the data it carries up front: grown by doubling, a 1 MiB
    // message was copied over and over on its way into the frame.
    size_t hint = kHeaderBytes + 256;
    const OpMsg* op = std::get_if<OpMsg>(&m);
    if (auto* f = std::get_if<Forward>(&m)) op = &f->op;
    if (op) {
        hint += op->path.size() + op->target.size() + op->xattr_name.size() + op->xattr_value.size();
        for (auto& e : op->extents) hint += e.bytes.size() + 32;
        hint += op->holes.size() * 16;
    }
    std::string out;
    out.reserve(hint);
    out.resize(kHeaderBytes);
    {
        StringOutputArchive ar(out);
        std::visit([&](auto& msg) { fields(ar, const_cast<std::decay_t<decltype(msg)>&>(msg)); }, m);
    }
    size_t body = out.size() - kHeaderBytes;
    if (body > kMaxFrameBody)
        return fail(make_error(fmt::format("{} frame of {} bytes exceeds the {} byte limit", msg_type_name(type_of(m)),
                                           body, kMaxFrameBody)));
    std::string header;
    put_header(FrameHeader{kMagic, type_of(m), 0, static_cast<uint32_t>(body)}, header);
    out.replace(0, kHeaderBytes, header);
    return out;
}

namespace {
template <class T>
Result<Message> decode_as(std::string_view body) {
    T msg;
    size_t trailing = 0;
    try {
        ViewInputArchive ar(body);
        current_source = &ar;
        fields(ar, msg);
        current_source = nullptr;
        trailing = ar.remaining();
    } catch (const std::exception& e) {
        current_source = nullptr;
        return fail(make_error(fmt::format("malformed body: {}", e.what())));
    }
    // A body is exactly one message: anything after it is malformed.
    if (trailing != 0) return fail(make_error(fmt::format("{} trailing bytes after the body", trailing)));
    Message m(std::move(msg));
    if (auto ok = validate(m); !ok) return fail(ok.error());
    return m;
}
}  // namespace

Result<Message> decode_body(MsgType type, std::string_view body) {
    Result<Message> r = fail(make_error("unknown frame type"));
    switch (type) {
        case MsgType::hello: r = decode_as<Hello>(body); break;
        case MsgType::challenge: r = decode_as<Challenge>(body); break;
        case MsgType::auth: r = decode_as<Auth>(body); break;
        case MsgType::welcome: r = decode_as<Welcome>(body); break;
        case MsgType::error: r = decode_as<ErrorMsg>(body); break;
        case MsgType::op: r = decode_as<OpMsg>(body); break;
        case MsgType::commit: r = decode_as<Commit>(body); break;
        case MsgType::ack: r = decode_as<Ack>(body); break;
        case MsgType::hash_request: r = decode_as<HashRequest>(body); break;
        case MsgType::hash_reply: r = decode_as<HashReply>(body); break;
        case MsgType::conflict: r = decode_as<ConflictMsg>(body); break;
        case MsgType::ping: r = decode_as<Ping>(body); break;
        case MsgType::pong: r = decode_as<Pong>(body); break;
        case MsgType::rejected: r = decode_as<RejectedMsg>(body); break;
        case MsgType::tree_request: r = decode_as<TreeRequest>(body); break;
        case MsgType::tree_reply: r = decode_as<TreeReply>(body); break;
        case MsgType::subscribe: r = decode_as<Subscribe>(body); break;
        case MsgType::forward: r = decode_as<Forward>(body); break;
        case MsgType::head_request: r = decode_as<HeadRequest>(body); break;
        case MsgType::head_reply: r = decode_as<HeadReply>(body); break;
        case MsgType::subscribe_refused: r = decode_as<SubscribeRefused>(body); break;
        case MsgType::rejected_replay: r = decode_as<RejectedReplay>(body); break;
        case MsgType::rejected_replayed: r = decode_as<RejectedReplayed>(body); break;
        case MsgType::rejected_kept: r = decode_as<RejectedKept>(body); break;
        case MsgType::subscribe_ranges: r = decode_as<SubscribeRanges>(body); break;
        case MsgType::subscribe_allowed: r = decode_as<SubscribeAllowed>(body); break;
    }
    if (!r) return fail(make_error(fmt::format("{} frame: {}", msg_type_name(type), r.error().message)));
    return r;
}

Result<Message> decode_frame(std::string_view frame) {
    if (frame.size() < kHeaderBytes) return fail(make_error("truncated frame header"));
    auto h = parse_header(frame.substr(0, kHeaderBytes));
    if (!h) return fail(h.error());
    if (frame.size() - kHeaderBytes != h->length)
        return fail(make_error(fmt::format("frame says {} body bytes but {} are present", h->length,
                                           frame.size() - kHeaderBytes)));
    return decode_body(h->type, frame.substr(kHeaderBytes));
}

bool valid_identity(std::string_view name) {
    if (name.empty() || name.size() > 128 || name.front() == '.') return false;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

namespace {

// Fills `e` with `raw` compressed, when that saves at least an eighth.
bool compress_into(Extent& e, std::string_view raw) {
    if (raw.size() < 512) return false;
    // The thread's context and scratch buffer: no context setup and no
    // zero-filled bound-sized buffer per extent.
    ZSTD_CCtx* cctx = thread_cctx();
    if (!cctx) return false;
    size_t bound = ZSTD_compressBound(raw.size());
    char* packed = thread_scratch(bound);
    size_t n = ZSTD_compressCCtx(cctx, packed, bound, raw.data(), raw.size(), 1);
    if (ZSTD_isError(n) || n >= raw.size() - raw.size() / 8) return false;
    e.zstd = true;
    e.bytes.assign(packed, n);
    return true;
}

}  // namespace

Extent make_extent(uint64_t offset, std::string_view raw, bool try_compress) {
    Extent e;
    e.offset = offset;
    e.raw_length = static_cast<uint32_t>(raw.size());
    if (!(try_compress && compress_into(e, raw))) e.bytes.assign(raw);
    return e;
}

Extent make_extent_taking(uint64_t offset, std::string&& raw, bool try_compress) {
    Extent e;
    e.offset = offset;
    e.raw_length = static_cast<uint32_t>(raw.size());
    if (!(try_compress && compress_into(e, raw))) e.bytes = std::move(raw);
    return e;
}

Status extent_data(const Extent& e, std::string& out) {
    auto bytes = extent_bytes(e, out);
    if (!bytes) return fail(bytes.error());
    if (bytes->data() != out.data()) out.assign(*bytes);
    return {};
}

Result<std::string_view> extent_bytes(const Extent& e, std::string& out) {
    if (e.raw_length > kMaxExtentBytes) return fail(make_error("extent exceeds the size limit"));
    if (!e.zstd) {
        if (e.bytes.size() != e.raw_length) return fail(make_error("extent length does not match its data"));
        return std::string_view(e.bytes);
    }
    unsigned long long declared = ZSTD_getFrameContentSize(e.bytes.data(), e.bytes.size());
    if (declared != e.raw_length)
        return fail(make_error(fmt::format("compressed extent declares {} bytes, expected {}", declared, e.raw_length)));
    out.resize(e.raw_length);
    ZSTD_DCtx* dctx = thread_dctx();
    if (!dctx) return fail(make_error("cannot allocate a zstd decompression context (out of memory)"));
    size_t n = ZSTD_decompressDCtx(dctx, out.data(), out.size(), e.bytes.data(), e.bytes.size());
    if (ZSTD_isError(n)) return fail(make_error(fmt::format("corrupt compressed extent: {}", ZSTD_getErrorName(n))));
    if (n != e.raw_length) return fail(make_error("compressed extent decompressed to the wrong length"));
    return std::string_view(out);
}

}  // namespace iz::replicator::proto
