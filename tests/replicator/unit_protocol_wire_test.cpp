// The wire encoding itself: pinned against cereal's own serialisation of
// the same fields (what both ends used from the start), so a change in how
// fields are read or written cannot silently change the bytes; and
// booleans that are neither 0 nor 1 are refused.
#include <gtest/gtest.h>

#include <cereal/archives/portable_binary.hpp>
#include <cereal/types/optional.hpp>

#include <sstream>

#include "replicator/wire/protocol.hpp"

namespace iz::replicator::proto {
namespace {

template <class F>
std::string cereal_body(F&& write) {
    std::ostringstream os;
    {
        cereal::PortableBinaryOutputArchive ar(os);
        write(ar);
    }
    return os.str();
}

template <class Archive>
void str(Archive& ar, const std::string& s) {
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(s.size())));
    ar(cereal::binary_data(s.data(), s.size()));
}

std::string body_of(const Message& m) { return encode_frame(m)->substr(kHeaderBytes); }

TEST(ProtocolWire, OpMsgBytesMatchCerealsOwnEncoding) {
    OpMsg op{.lsn = 42, .kind = OpKind::write, .path = "dir/f", .target = "t", .mode = 0100644u, .gid = 7u,
             .mtime_ns = -5, .size = 1000, .replaced = true, .xattr_name = "user.x", .xattr_value = "v",
             .extents = {make_extent(9, "abc", false)}, .base = ContentBase::existing, .target_parent_mtime_ns = 3,
             .more = true, .holes = {{4096, 8192}}, .seen = 17, .note = "kept"};
    auto expected = cereal_body([&](auto& ar) {
        ar(op.lsn, static_cast<uint8_t>(op.kind));
        str(ar, op.path);
        str(ar, op.target);
        ar(op.mode, op.uid, op.gid, op.atime_ns, op.mtime_ns, op.size, op.rdev, op.replaced);
        str(ar, op.xattr_name);
        str(ar, op.xattr_value);
        ar(cereal::make_size_tag(static_cast<cereal::size_type>(1)));
        ar(op.extents[0].offset, op.extents[0].raw_length, op.extents[0].zstd);
        str(ar, op.extents[0].bytes);
        ar(static_cast<uint8_t>(op.base), op.parent_mtime_ns, op.target_parent_mtime_ns, op.more);
        ar(cereal::make_size_tag(static_cast<cereal::size_type>(1)));
        ar(op.holes[0].offset, op.holes[0].length);
        ar(op.seen, op.time_ns);
        str(ar, op.note);
    });
    EXPECT_EQ(body_of(op), expected);
}

TEST(ProtocolWire, HashReplyBytesMatchCerealsOwnEncoding) {
    HashReply h{.id = 3, .exists = true, .size = 77, .block_size = 65536, .hashes = std::string(16, 'h'),
                .hole_blocks = "\x01"};
    auto expected = cereal_body([&](auto& ar) {
        ar(h.id, h.exists, h.size, h.block_size);
        str(ar, h.hashes);
        str(ar, h.hole_blocks);
    });
    EXPECT_EQ(body_of(h), expected);
}

// Offset in an encoded body (after cereal's one endianness byte).
constexpr size_t kStart = 1;

TEST(ProtocolWire, BooleanBytesOtherThanZeroOrOneRefused) {
    HashReply h{.id = 3, .exists = true, .size = 77, .block_size = 65536};
    std::string body = body_of(h);
    const size_t exists_at = kStart + 8;
    ASSERT_EQ(body[exists_at], '\x01');
    for (char bad : {'\x02', '\x10', '\xff'}) {
        body[exists_at] = bad;
        EXPECT_FALSE(decode_body(MsgType::hash_reply, body)) << int(bad);
    }
    body[exists_at] = '\0';
    auto ok = decode_body(MsgType::hash_reply, body);
    ASSERT_TRUE(ok);
    EXPECT_FALSE(std::get<HashReply>(*ok).exists);

    // The "no value" flag of an optional: lsn, kind, "p", "" come first.
    OpMsg op{.lsn = 1, .kind = OpKind::create, .path = "p"};
    std::string ob = body_of(op);
    const size_t mode_flag_at = kStart + 8 + 1 + 8 + 1 + 8;
    ASSERT_EQ(ob[mode_flag_at], '\x01');  // no mode
    ob[mode_flag_at] = '\x02';
    EXPECT_FALSE(decode_body(MsgType::op, ob));
    // `more`, before the 8 bytes of the hole count.
    ob = body_of(op);
    ob[ob.size() - 9] = '\x07';
    EXPECT_FALSE(decode_body(MsgType::op, ob));
    // An extent's zstd flag.
    OpMsg w{.lsn = 1, .kind = OpKind::write, .path = "p", .extents = {make_extent(0, "abc", false)}};
    std::string wb = body_of(w);
    std::string marker = std::string("\x03\0\0\0", 4) + '\0' + std::string("\x03\0\0\0\0\0\0\0abc", 11);
    auto at = wb.find(marker);  // raw_length 3, zstd 0, then the 3 bytes
    ASSERT_NE(at, std::string::npos);
    wb[at + 4] = '\x02';
    EXPECT_FALSE(decode_body(MsgType::op, wb));
}

}  // namespace
}  // namespace iz::replicator::proto
