// The wire protocol: every message survives encode/decode with every field
// intact, headers are validated field by field, identities and extents obey
// their limits.
#include <gtest/gtest.h>

#include <thread>
#include <tuple>
#include <vector>

#include "replicator/wire/protocol.hpp"
#include "unit_alloc_probe.hpp"
#include "unit_samples.hpp"

namespace iz::replicator::proto {
namespace {

// Field-by-field views, so a dropped or swapped field fails the comparison.
auto view(const Hello& m) { return std::tie(m.min_version, m.max_version, m.agent_id, m.fileset, m.client_nonce); }
auto view(const Challenge& m) { return std::tie(m.version, m.server_nonce, m.server_proof); }
auto view(const Auth& m) { return std::tie(m.client_proof); }
auto view(const Welcome& m) { return std::tie(m.durable_lsn, m.resume_lsn, m.server_host); }
auto view(const ErrorMsg& m) { return std::tie(m.message); }
auto view(const Commit& m) { return std::tie(m.lsn); }
auto view(const Ack& m) { return std::tie(m.lsn); }
auto view(const HashRequest& m) { return std::tie(m.id, m.path); }
auto view(const HashReply& m) { return std::tie(m.id, m.exists, m.size, m.block_size, m.hashes, m.hole_blocks); }
auto view(const ConflictMsg& m) { return std::tie(m.lsn, m.path, m.conflict_copy, m.server_host, m.message); }
auto view(const Ping& m) { return std::tie(m.id); }
auto view(const Pong& m) { return std::tie(m.id); }
auto view(const RejectedMsg& m) { return std::tie(m.lsn, m.path, m.message); }
auto view(const TreeRequest& m) { return std::tie(m.id, m.path, m.fresh, m.list, m.start, m.excludes); }
auto view(const TreeEntry& e) { return std::tie(e.name, e.meta, e.hash); }
auto view(const Extent& e) { return std::tie(e.offset, e.raw_length, e.zstd, e.bytes); }
auto view(const OpMsg& m) {
    return std::tie(m.lsn, m.kind, m.path, m.target, m.mode, m.uid, m.gid, m.atime_ns, m.mtime_ns, m.size, m.rdev,
                    m.replaced, m.xattr_name, m.xattr_value, m.base, m.parent_mtime_ns, m.target_parent_mtime_ns, m.more,
                    m.seen, m.time_ns, m.note);
}

bool same(const OpMsg& a, const OpMsg& b) {
    if (view(a) != view(b) || a.extents.size() != b.extents.size() || a.holes.size() != b.holes.size()) return false;
    for (size_t i = 0; i < a.extents.size(); ++i)
        if (view(a.extents[i]) != view(b.extents[i])) return false;
    for (size_t i = 0; i < a.holes.size(); ++i)
        if (a.holes[i].offset != b.holes[i].offset || a.holes[i].length != b.holes[i].length) return false;
    return true;
}
bool same(const TreeReply& a, const TreeReply& b) {
    if (std::tie(a.id, a.error, a.found, a.more) != std::tie(b.id, b.error, b.found, b.more)) return false;
    if (view(a.self) != view(b.self) || a.children.size() != b.children.size()) return false;
    for (size_t i = 0; i < a.children.size(); ++i)
        if (view(a.children[i]) != view(b.children[i])) return false;
    return true;
}
auto view(const Subscribe& m) { return std::tie(m.cursor); }
auto view(const HeadRequest& m) { return std::tie(m.id); }
auto view(const HeadReply& m) { return std::tie(m.id, m.lsn); }
auto view(const SubscribeRefused& m) { return std::tie(m.fileset, m.message); }
auto view(const RejectedReplay& m) { return std::tie(m.id); }
auto view(const RejectedReplayed& m) { return std::tie(m.id, m.count); }
auto view(const RejectedKept& m) { return std::tie(m.lsn, m.path); }
auto view(const SubscribeRanges& m) { return std::tie(m.cursor, m.whole_through); }
auto view(const SubscribeAllowed& m) { return std::tie(m.fileset, m.message); }
bool same(const Forward& a, const Forward& b) {
    return std::tie(a.origin, a.origin_lsn) == std::tie(b.origin, b.origin_lsn) && same(a.op, b.op);
}
template <class T>
bool same(const T& a, const T& b) {
    return view(a) == view(b);
}

TEST(Protocol, EveryMessageTypeRoundTrips) {
    auto samples = test::sample_messages();
    ASSERT_EQ(samples.size(), std::variant_size_v<Message>);
    for (auto& m : samples) {
        SCOPED_TRACE(std::string(msg_type_name(type_of(m))));
        auto frame = encode_frame(m);
        ASSERT_TRUE(frame) << frame.error().message;
        auto header = parse_header(std::string_view(*frame).substr(0, kHeaderBytes));
        ASSERT_TRUE(header);
        EXPECT_EQ(header->type, type_of(m));
        EXPECT_EQ(header->length, frame->size() - kHeaderBytes);
        auto back = decode_frame(*frame);
        ASSERT_TRUE(back) << back.error().message;
        ASSERT_EQ(back->index(), m.index());
        std::visit([&](auto& want) { EXPECT_TRUE(same(want, std::get<std::decay_t<decltype(want)>>(*back))); }, m);
        // Deterministic: encoding the decoded message gives the same bytes.
        EXPECT_EQ(*encode_frame(*back), *frame);
    }
}

TEST(Protocol, EveryOpKindRoundTrips) {
    for (int k = 0; k <= static_cast<int>(kLastOpKind); ++k) {
        OpMsg op{.lsn = static_cast<uint64_t>(k) + 1, .kind = static_cast<OpKind>(k), .path = "p"};
        auto back = decode_frame(*encode_frame(op));
        ASSERT_TRUE(back) << op_kind_name(op.kind);
        EXPECT_TRUE(same(op, std::get<OpMsg>(*back))) << op_kind_name(op.kind);
        EXPECT_NE(op_kind_name(op.kind), "unknown");
    }
}

TEST(Protocol, TreeRequestsWithTooManyExcludesAreMalformed) {
    TreeRequest req{.id = 1, .path = "", .excludes = std::vector<std::string>(kMaxTreeExcludes, "*.tmp")};
    EXPECT_TRUE(decode_frame(*encode_frame(req)));
    req.excludes.push_back("one more");
    auto r = decode_frame(*encode_frame(req));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("exclude globs exceed"), std::string::npos) << r.error().message;
    req.excludes = {std::string(5000, '*')};
    EXPECT_FALSE(decode_frame(*encode_frame(req)));
}

TEST(Protocol, EmptyOptionalsStayEmpty) {
    OpMsg op{.lsn = 3, .kind = OpKind::unlink, .path = "gone"};
    auto back = decode_frame(*encode_frame(op));
    ASSERT_TRUE(back);
    auto& got = std::get<OpMsg>(*back);
    EXPECT_FALSE(got.mode || got.uid || got.gid || got.atime_ns || got.mtime_ns || got.size || got.rdev ||
                 got.parent_mtime_ns || got.target_parent_mtime_ns);
}

std::string header_bytes(uint32_t magic, uint16_t type, uint16_t flags, uint32_t length) {
    std::string h;
    FrameHeader fh;
    fh.magic = magic;
    fh.type = static_cast<MsgType>(type);
    fh.flags = flags;
    fh.length = length;
    put_header(fh, h);
    return h;
}

TEST(ProtocolHeader, ValidHeaderParses) {
    auto h = parse_header(header_bytes(kMagic, 6, 0, 1234));
    ASSERT_TRUE(h);
    EXPECT_EQ(h->type, MsgType::op);
    EXPECT_EQ(h->length, 1234u);
    // Big-endian on the wire: "IZRP" spelled out.
    EXPECT_EQ(header_bytes(kMagic, 6, 0, 1).substr(0, 4), "IZRP");
}

TEST(ProtocolHeader, BadMagicRefused) {
    auto h = parse_header(header_bytes(0x495A5251, 6, 0, 10));
    ASSERT_FALSE(h);
    EXPECT_NE(h.error().message.find("magic"), std::string::npos) << h.error().message;
}

TEST(ProtocolHeader, UnknownTypesRefused) {
    constexpr auto last = static_cast<uint16_t>(MsgType::subscribe_allowed);
    for (uint16_t t : {uint16_t{0}, uint16_t(last + 1), uint16_t{0x0100}, uint16_t{0xffff}}) {
        auto h = parse_header(header_bytes(kMagic, t, 0, 10));
        ASSERT_FALSE(h) << t;
        EXPECT_NE(h.error().message.find("type"), std::string::npos) << h.error().message;
    }
    for (uint16_t t = 1; t <= last; ++t) EXPECT_TRUE(parse_header(header_bytes(kMagic, t, 0, 0))) << t;
}

TEST(ProtocolHeader, NonzeroFlagsRefused) {
    for (uint16_t f : {uint16_t{1}, uint16_t{0x8000}, uint16_t{0xffff}}) {
        auto h = parse_header(header_bytes(kMagic, 12, f, 8));
        ASSERT_FALSE(h) << f;
        EXPECT_NE(h.error().message.find("flags"), std::string::npos) << h.error().message;
    }
}

TEST(ProtocolHeader, LengthOverLimitRefusedBeforeAllocating) {
    EXPECT_TRUE(parse_header(header_bytes(kMagic, 6, 0, kMaxFrameBody)));
    for (uint32_t len : {kMaxFrameBody + 1, 0x7fffffffu, 0xffffffffu}) {
        test::AllocProbe probe;
        auto h = parse_header(header_bytes(kMagic, 6, 0, len));
        ASSERT_FALSE(h) << len;
        EXPECT_NE(h.error().message.find("limit"), std::string::npos) << h.error().message;
        // A frame claiming that length with nothing behind it.
        auto f = decode_frame(header_bytes(kMagic, 6, 0, len));
        EXPECT_FALSE(f);
        EXPECT_LT(probe.largest(), 64u * 1024) << "allocated for a refused length " << len;
    }
}

TEST(ProtocolHeader, WrongHeaderSizeRefused) {
    EXPECT_FALSE(parse_header(""));
    EXPECT_FALSE(parse_header(header_bytes(kMagic, 6, 0, 1).substr(0, 11)));
    EXPECT_FALSE(parse_header(header_bytes(kMagic, 6, 0, 1) + "x"));
    EXPECT_FALSE(decode_frame("IZR"));
}

TEST(ProtocolHeader, LengthMustMatchTheBodyPresent) {
    auto frame = *encode_frame(Ping{7});
    EXPECT_FALSE(decode_frame(frame + "x"));
    EXPECT_FALSE(decode_frame(frame.substr(0, frame.size() - 1)));
}

TEST(ProtocolHeader, OversizeBodyIsNotEncoded) {
    ErrorMsg huge{std::string(kMaxFrameBody + 1, 'x')};
    auto f = encode_frame(huge);
    ASSERT_FALSE(f);
    EXPECT_NE(f.error().message.find("limit"), std::string::npos);
}

TEST(ProtocolIdentity, AcceptsAndRefuses) {
    for (std::string_view ok : {"a", "agent-1", "host.example_org", "A.b-C_9", "x."})
        EXPECT_TRUE(valid_identity(ok)) << ok;
    EXPECT_TRUE(valid_identity(std::string(128, 'n')));
    for (std::string_view bad : {"", ".", "..", ".hidden", "a/b", "../x", "/abs", "sp ace", "tab\t", "é", "a:b"})
        EXPECT_FALSE(valid_identity(bad)) << bad;
    EXPECT_FALSE(valid_identity(std::string("nul\0x", 5)));
    EXPECT_FALSE(valid_identity(std::string(129, 'n')));
}

TEST(ProtocolExtent, SmallDataStaysRaw) {
    auto e = make_extent(10, "hello");
    EXPECT_FALSE(e.zstd);
    EXPECT_EQ(e.offset, 10u);
    EXPECT_EQ(e.raw_length, 5u);
    std::string out;
    ASSERT_TRUE(extent_data(e, out));
    EXPECT_EQ(out, "hello");
}

TEST(ProtocolExtent, CompressibleDataIsCompressedAndRestored) {
    std::string raw;
    for (int i = 0; i < 20000; ++i) raw += static_cast<char>('a' + i % 7);
    auto e = make_extent(1 << 20, raw);
    EXPECT_TRUE(e.zstd);
    EXPECT_LT(e.bytes.size(), raw.size() / 2);
    EXPECT_EQ(e.raw_length, raw.size());
    std::string out;
    ASSERT_TRUE(extent_data(e, out));
    EXPECT_EQ(out, raw);
    // Travels through a frame compressed and comes back whole.
    auto back = decode_frame(*encode_frame(OpMsg{.lsn = 1, .kind = OpKind::write, .path = "f", .extents = {e}}));
    ASSERT_TRUE(back);
    ASSERT_TRUE(extent_data(std::get<OpMsg>(*back).extents.at(0), out));
    EXPECT_EQ(out, raw);
}

TEST(ProtocolExtent, CompressionCanBeDeclinedOrUseless) {
    std::string raw(4096, 'q');
    EXPECT_FALSE(make_extent(0, raw, false).zstd);
    // Random bytes do not shrink by an eighth: they travel raw.
    std::string noise;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 8192; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        noise.push_back(static_cast<char>(x));
    }
    auto e = make_extent(0, noise);
    EXPECT_FALSE(e.zstd);
    std::string out;
    ASSERT_TRUE(extent_data(e, out));
    EXPECT_EQ(out, noise);
}

TEST(ProtocolExtent, OversizeRawLengthRefused) {
    Extent raw{.offset = 0, .raw_length = kMaxExtentBytes + 1, .zstd = false, .bytes = {}};
    std::string out;
    test::AllocProbe probe;
    EXPECT_FALSE(extent_data(raw, out));
    // A compressed extent that claims more than the limit: refused without
    // decompressing (no buffer of the claimed size).
    auto packed = make_extent(0, std::string(100000, 'z'));
    ASSERT_TRUE(packed.zstd);
    packed.raw_length = 0xffffffffu;
    EXPECT_FALSE(extent_data(packed, out));
    EXPECT_LT(probe.largest(), size_t{kMaxExtentBytes});
    // Nor is such an extent accepted off the wire.
    auto frame = encode_frame(OpMsg{.lsn = 1, .kind = OpKind::write, .path = "f", .extents = {packed}});
    ASSERT_TRUE(frame);
    EXPECT_FALSE(decode_frame(*frame));
}

TEST(ProtocolExtent, LyingCompressedExtentsRefused) {
    std::string raw(10000, 'k');
    auto e = make_extent(0, raw);
    ASSERT_TRUE(e.zstd);
    std::string out;
    // Claims fewer bytes than the frame holds.
    auto shorter = e;
    shorter.raw_length = 5000;
    EXPECT_FALSE(extent_data(shorter, out));
    // Corrupt compressed bytes.
    auto corrupt = e;
    for (size_t i = corrupt.bytes.size() / 2; i < corrupt.bytes.size(); ++i) corrupt.bytes[i] ^= 0x5a;
    EXPECT_FALSE(extent_data(corrupt, out));
    // Not zstd at all.
    Extent junk{.offset = 0, .raw_length = 10, .zstd = true, .bytes = "not zstd at all"};
    EXPECT_FALSE(extent_data(junk, out));
    // A raw extent whose bytes do not match its length.
    Extent raw_lie{.offset = 0, .raw_length = 3, .zstd = false, .bytes = "four"};
    EXPECT_FALSE(extent_data(raw_lie, out));
    EXPECT_FALSE(decode_frame(*encode_frame(OpMsg{.lsn = 1, .kind = OpKind::write, .path = "f", .extents = {raw_lie}})));
}

// Each thread reuses one compression and one decompression context: nothing
// of one extent (its data, its size, a corrupt predecessor) leaks into the
// next, on any thread.
TEST(ProtocolExtent, ReusedContextsKeepEveryExtentIntact) {
    auto sample = [](int seed, size_t size) {
        std::string s;
        for (size_t i = 0; i < size; ++i) s.push_back(static_cast<char>('a' + (i * static_cast<size_t>(seed)) % 11));
        return s;
    };
    auto run = [&](int thread) {
        std::string out;
        for (int i = 0; i < 40; ++i) {
            // Sizes shrink and grow, so a scratch buffer sized for a big
            // extent is reused for a small one and the other way round.
            size_t size = (i % 2 ? 600u : 300000u) + static_cast<size_t>(i * 37 + thread);
            auto raw = sample(i + thread + 1, size);
            auto e = make_extent(static_cast<uint64_t>(i), raw);
            if (!e.zstd) return false;
            if (i % 5 == 0) {
                auto bad = e;
                for (size_t k = bad.bytes.size() / 2; k < bad.bytes.size(); ++k) bad.bytes[k] ^= 0x33;
                if (extent_data(bad, out)) return false;
            }
            if (!extent_data(e, out) || out != raw) return false;
        }
        return true;
    };
    EXPECT_TRUE(run(0));
    std::vector<std::thread> threads;
    std::vector<int> ok(3, 0);
    for (int t = 0; t < 3; ++t) threads.emplace_back([&, t] { ok[static_cast<size_t>(t)] = run(t + 1); });
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok, std::vector<int>(3, 1));
}

TEST(ProtocolSemantics, UnknownOpKindAndBaseRefused) {
    OpMsg op{.lsn = 1, .kind = static_cast<OpKind>(static_cast<int>(kLastOpKind) + 1), .path = "p"};
    EXPECT_FALSE(decode_frame(*encode_frame(op)));
    op.kind = static_cast<OpKind>(255);
    EXPECT_FALSE(decode_frame(*encode_frame(op)));
    OpMsg base{.lsn = 1, .kind = OpKind::content_begin, .path = "p", .base = static_cast<ContentBase>(2)};
    EXPECT_FALSE(decode_frame(*encode_frame(base)));
    OpMsg offset{.lsn = 1, .kind = OpKind::write, .path = "p", .extents = {make_extent((1ull << 62) + 1, "x", false)}};
    EXPECT_FALSE(decode_frame(*encode_frame(offset)));
}

}  // namespace
}  // namespace iz::replicator::proto
