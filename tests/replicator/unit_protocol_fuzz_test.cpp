// Decoding hostile input: truncated bodies at every byte offset, seeded
// random garbage, bit flips of valid frames and lying length prefixes must
// all come back as an Error, never a crash, an exception or a huge
// allocation.
#include <gtest/gtest.h>

#include <random>

#include "replicator/wire/protocol.hpp"
#include "unit_alloc_probe.hpp"
#include "unit_samples.hpp"

namespace iz::replicator::proto {
namespace {

// Bodies are at most a few kilobytes here; anything allocated beyond this
// would have come from trusting a length prefix.
constexpr size_t kAllocCeiling = 256 * 1024;

TEST(ProtocolFuzz, TruncatedBodiesAtEveryOffsetFail) {
    for (auto& m : test::sample_messages()) {
        auto frame = *encode_frame(m);
        auto type = type_of(m);
        std::string_view body = std::string_view(frame).substr(kHeaderBytes);
        SCOPED_TRACE(std::string(msg_type_name(type)));
        test::AllocProbe probe;
        for (size_t n = 0; n < body.size(); ++n) {
            auto r = decode_body(type, body.substr(0, n));
            ASSERT_FALSE(r) << "a " << n << "-byte prefix of a " << body.size() << "-byte body decoded";
            EXPECT_FALSE(r.error().message.empty());
            // The whole frame cut at the same place (header length now lies).
            EXPECT_FALSE(decode_frame(std::string_view(frame).substr(0, kHeaderBytes + n)));
        }
        EXPECT_LT(probe.largest(), kAllocCeiling);
        EXPECT_TRUE(decode_body(type, body));
        // One byte too many is malformed as well.
        EXPECT_FALSE(decode_body(type, std::string(body) + '\0'));
    }
}

TEST(ProtocolFuzz, RandomGarbageBodiesNeverCrash) {
    std::mt19937_64 rng(20240611);
    size_t decoded = 0, total = 0;
    test::AllocProbe probe;
    for (uint16_t t = 1; t <= 15; ++t) {
        auto type = static_cast<MsgType>(t);
        for (int i = 0; i < 600; ++i) {
            size_t len = rng() % (i < 300 ? 48 : 600);
            std::string body(len, '\0');
            for (auto& c : body) c = static_cast<char>(rng());
            auto r = decode_body(type, body);
            ++total;
            if (r) {
                ++decoded;
                // What decodes is a real message of the requested type that encodes again.
                EXPECT_EQ(type_of(*r), type);
                EXPECT_TRUE(encode_frame(*r));
            } else {
                EXPECT_FALSE(r.error().message.empty());
            }
        }
    }
    EXPECT_LT(probe.largest(), kAllocCeiling);
    // Garbage is overwhelmingly refused (a few tiny fixed-size bodies such
    // as a Ping may happen to be valid).
    EXPECT_LT(decoded * 20, total) << decoded << " of " << total << " garbage bodies decoded";
}

TEST(ProtocolFuzz, BitFlipsAndByteChangesOfValidFramesNeverCrash) {
    std::mt19937_64 rng(7);
    test::AllocProbe probe;
    for (auto& m : test::sample_messages()) {
        auto frame = *encode_frame(m);
        for (int i = 0; i < 400; ++i) {
            std::string mutated = frame;
            int changes = 1 + static_cast<int>(rng() % 4);
            for (int c = 0; c < changes; ++c) {
                size_t at = kHeaderBytes + rng() % (frame.size() - kHeaderBytes);
                if (rng() % 2) mutated[at] ^= static_cast<char>(1u << (rng() % 8));
                else mutated[at] = static_cast<char>(rng());
            }
            auto r = decode_frame(mutated);
            if (r) {
                EXPECT_TRUE(encode_frame(*r));
            }
        }
    }
    EXPECT_LT(probe.largest(), kAllocCeiling);
}

// Overwrites the 8-byte little-endian length prefix that cereal writes
// before a string or vector, found as the bytes encoding `n`.
std::string replace_length(std::string body, uint64_t from, uint64_t to) {
    std::string a(8, '\0'), b(8, '\0');
    for (int i = 0; i < 8; ++i) {
        a[i] = static_cast<char>(from >> (8 * i));
        b[i] = static_cast<char>(to >> (8 * i));
    }
    auto at = body.find(a);
    EXPECT_NE(at, std::string::npos);
    if (at != std::string::npos) body.replace(at, 8, b);
    return body;
}

TEST(ProtocolFuzz, LyingLengthPrefixesRefusedWithoutAllocating) {
    // A path whose length prefix says 2^60, 2^32 or just one more than there is.
    OpMsg op{.lsn = 1, .kind = OpKind::create, .path = std::string(77, 'p')};
    auto frame = *encode_frame(op);
    std::string body = frame.substr(kHeaderBytes);
    for (uint64_t lie : std::initializer_list<uint64_t>{1ull << 60, 1ull << 32, kMaxFrameBody, body.size()}) {
        test::AllocProbe probe;
        auto r = decode_body(MsgType::op, replace_length(body, 77, lie));
        ASSERT_FALSE(r) << lie;
        EXPECT_NE(r.error().message.find("exceeds"), std::string::npos) << r.error().message;
        EXPECT_LT(probe.largest(), kAllocCeiling) << lie;
    }
    // An extent count of 2^40: refused before a vector of that many is made.
    OpMsg w{.lsn = 1, .kind = OpKind::write, .path = "f", .extents = {make_extent(0, "abc", false),
                                                                        make_extent(9, "def", false),
                                                                        make_extent(20, "ghi", false)}};
    std::string wbody = encode_frame(w)->substr(kHeaderBytes);
    test::AllocProbe probe;
    auto r = decode_body(MsgType::op, replace_length(wbody, 3 /* extents */, 1ull << 40));
    EXPECT_FALSE(r);
    EXPECT_LT(probe.largest(), kAllocCeiling);
}

// Holes and extents a decoder must refuse before anything is applied: a
// frame that reaches past any file size, overlaps itself or puts holes
// where no data goes. Each is built by encoding (which checks nothing) and
// refused on decoding, with a message that says why.
TEST(ProtocolFuzz, HostileHolesAndOverlappingExtentsRefused) {
    auto write = [](std::vector<Extent> extents, std::vector<Hole> holes, OpKind kind = OpKind::write) {
        return OpMsg{.lsn = 1, .kind = kind, .path = "f", .extents = std::move(extents), .holes = std::move(holes)};
    };
    struct Case {
        const char* name;
        OpMsg op;
        const char* says;
    };
    std::vector<Case> cases = {
        {"a hole at 2^63", write({}, {{1ull << 63, 4096}}), "reaches past"},
        {"a hole whose end overflows", write({}, {{4096, ~0ull - 100}}), "reaches past"},
        {"a hole just past the limit", write({}, {{kMaxFileBytes - 4096, 8192}}), "reaches past"},
        {"an empty hole", write({}, {{4096, 0}}), "empty hole"},
        {"an extent whose end passes the limit", write({make_extent(kMaxFileBytes - 1, "abc", false)}, {}), "reaches past"},
        {"overlapping extents", write({make_extent(0, "abcdef", false), make_extent(4, "xyz", false)}, {}), "overlap"},
        {"overlapping extents out of order", write({make_extent(100, "abcdef", false), make_extent(98, "xyz", false)}, {}),
         "overlap"},
        {"a hole over an extent", write({make_extent(8192, "abc", false)}, {{4096, 8192}}), "overlap"},
        {"overlapping holes", write({}, {{0, 8192}, {4096, 8192}}), "overlap"},
        {"holes in a create", write({}, {{0, 4096}}, OpKind::create), "holes in a create"},
        {"holes in a content_end", write({}, {{0, 4096}}, OpKind::content_end), "holes in a content_end"},
    };
    for (auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto frame = encode_frame(c.op);
        ASSERT_TRUE(frame) << frame.error().message;
        auto r = decode_frame(*frame);
        ASSERT_FALSE(r);
        EXPECT_NE(r.error().message.find(c.says), std::string::npos) << r.error().message;
    }
    // What the shipper sends is accepted: extents and holes side by side,
    // in any order, up to the limit.
    auto fine = write({make_extent(8192, "abc", false), make_extent(0, "abc", false)},
                      {{4096, 4096}, {8195, 100}, {kMaxFileBytes - 4096, 4096}}, OpKind::content_data);
    EXPECT_TRUE(decode_frame(*encode_frame(fine)));

    // A hole map that does not match the block hashes.
    HashReply h{.id = 1, .exists = true, .size = 3 << 16, .block_size = 65536, .hashes = std::string(48, 'h'),
                .hole_blocks = std::string(2, '\0')};
    auto r = decode_frame(*encode_frame(h));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("hole map"), std::string::npos) << r.error().message;
    h.hole_blocks = "\x05";
    EXPECT_TRUE(decode_frame(*encode_frame(h)));
}

TEST(ProtocolFuzz, EmptyBodiesFailForEveryType) {
    for (uint16_t t = 1; t <= 15; ++t) EXPECT_FALSE(decode_body(static_cast<MsgType>(t), "")) << t;
}

}  // namespace
}  // namespace iz::replicator::proto
