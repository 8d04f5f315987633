#include <gtest/gtest.h>

#include <cereal/archives/portable_binary.hpp>
#include <cereal/types/optional.hpp>

#include <sstream>

#include "journal/codec.hpp"
#include "sample_records.hpp"

using namespace iz::journal;

TEST(Codec, EveryOpRoundTrips) {
    auto records = iz::test::sample_records();
    size_t ops = 0;
    for (uint8_t raw = static_cast<uint8_t>(kFirstOp); raw <= static_cast<uint8_t>(kLastOp); ++raw) ops += op_is_valid(raw);
    ASSERT_EQ(records.size(), ops);
    for (auto& r : records) {
        auto bytes = encode_record(r);
        auto back = decode_record(bytes);
        ASSERT_TRUE(back) << back.error().message;
        EXPECT_EQ(*back, r) << op_name(r.op);
    }
}

// Journals written before records had an archive of their own were written
// with cereal's PortableBinary archive: the bytes stay exactly those, so
// old segments read and new ones read with older tools.
TEST(Codec, RecordBytesMatchCerealsPortableBinaryEncoding) {
    for (auto& r : iz::test::sample_records()) {
        std::ostringstream os;
        {
            cereal::PortableBinaryOutputArchive ar(os);
            auto str = [&](const std::string& s) {
                ar(cereal::make_size_tag(static_cast<cereal::size_type>(s.size())));
                ar(cereal::binary_data(s.data(), s.size()));
            };
            ar(r.lsn, r.time_ns, r.op);
            str(r.path);
            str(r.target);
            ar(r.handle.type);
            str(r.handle.bytes);
            ar(r.version, r.pid, r.uid, r.gid);
            str(r.comm);
            ar(r.mode, r.owner_uid, r.owner_gid, r.atime_ns, r.mtime_ns, r.size, r.rdev);
            ar(cereal::make_size_tag(static_cast<cereal::size_type>(r.ranges.size())));
            for (auto& range : r.ranges) ar(range.offset, range.length);
            ar(r.replaced, r.replaced_handle.type);
            str(r.replaced_handle.bytes);
            str(r.xattr_name);
            str(r.xattr_value);
            str(r.message);
        }
        EXPECT_EQ(encode_record(r), os.str()) << op_name(r.op);
        auto back = decode_record(os.str());
        ASSERT_TRUE(back) << back.error().message;
        EXPECT_EQ(*back, r) << op_name(r.op);
    }
}

TEST(Codec, OpNamesRoundTrip) {
    for (uint8_t raw = 1; raw <= static_cast<uint8_t>(kLastOp); ++raw) {
        if (!op_is_valid(raw)) continue;
        auto op = static_cast<Op>(raw);
        EXPECT_EQ(op_from_name(op_name(op)), op);
    }
    EXPECT_EQ(op_name(Op::repair), "repair");
    EXPECT_EQ(op_name(Op::exchange), "exchange");
    EXPECT_EQ(op_name(Op::close_write), "close_write");
    EXPECT_FALSE(op_from_name("chmod"));
}

TEST(Codec, TruncatedInputIsAnErrorNotACrash) {
    auto bytes = encode_record(iz::test::sample_records()[9]);
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
        auto back = decode_record(std::string_view(bytes).substr(0, cut));
        EXPECT_FALSE(back) << "cut at " << cut;
    }
}

TEST(Codec, HugeLengthPrefixIsRefusedWithoutAllocating) {
    Record r;
    r.path = "x";
    auto bytes = encode_record(r);
    // Path length prefix follows lsn (8), time (8), op (1) and the portable
    // archive's endianness byte.
    size_t at = 1 + 8 + 8 + 1;
    for (int i = 0; i < 8; ++i) bytes[at + i] = '\x7f';
    auto back = decode_record(bytes);
    ASSERT_FALSE(back);
    EXPECT_NE(back.error().message.find("exceeds the input"), std::string::npos) << back.error().message;
}

TEST(Codec, CoalesceMergesOverlappingAndTouchingRanges) {
    auto merged = coalesce({{100, 10}, {0, 50}, {50, 10}, {105, 20}, {500, 0}, {200, 1}});
    std::vector<ByteRange> want = {{0, 60}, {100, 25}, {200, 1}};
    EXPECT_EQ(merged, want);
}

namespace {

// The offset of the first byte where two encodings differ.
size_t first_difference(const std::string& a, const std::string& b) {
    size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
    return i;
}

}  // namespace

// A boolean is one byte, 0 or 1. A 2 is not loaded into the bool (which
// would be undefined behaviour); the record is refused as malformed, as the
// protocol refuses one: the writer never writes it, so it is not a record.
TEST(Codec, ABooleanByteOtherThanZeroOrOneIsRefused) {
    Record r = iz::test::sample_records()[0];
    r.replaced = false;
    auto no = encode_record(r);
    r.replaced = true;
    auto yes = encode_record(r);
    ASSERT_EQ(no.size(), yes.size());
    size_t at = first_difference(no, yes);
    ASSERT_LT(at, no.size());
    ASSERT_EQ(no[at], 0);
    ASSERT_EQ(yes[at], 1);
    auto two = no;
    two[at] = 2;
    auto back = decode_record(two);
    ASSERT_FALSE(back) << "decoded replaced=" << back->replaced;
    EXPECT_EQ(back.error().message, "malformed record: boolean field holds 2");
}

// An optional field's "absent" flag is a boolean too.
TEST(Codec, AnOptionalsFlagOtherThanZeroOrOneIsRefused) {
    Record r = iz::test::sample_records()[0];
    r.pid.reset();
    auto absent = encode_record(r);
    r.pid = 0;
    size_t at = first_difference(absent, encode_record(r));
    ASSERT_LT(at, absent.size());
    ASSERT_EQ(absent[at], 1);
    auto two = absent;
    two[at] = 2;
    auto back = decode_record(two);
    ASSERT_FALSE(back);
    EXPECT_EQ(back.error().message, "malformed record: boolean field holds 2");
}

// A change that came from another node carries its origin in two fields
// appended after `message`; a local record is written without them, byte
// for byte as before they existed, and reads back with no origin.
TEST(Codec, OriginIsAppendedOnlyWhenThereIsOne) {
    auto local = iz::test::sample_records()[0];
    auto local_bytes = encode_record(local);
    Record remote = local;
    remote.origin = "laptop";
    remote.origin_lsn = 43;
    auto remote_bytes = encode_record(remote);
    // 8-byte length + "laptop" + u64.
    ASSERT_EQ(remote_bytes.size(), local_bytes.size() + 8 + 6 + 8);
    EXPECT_EQ(remote_bytes.substr(0, local_bytes.size()), local_bytes);
    EXPECT_EQ(remote_bytes.substr(local_bytes.size()),
              std::string("\x06\0\0\0\0\0\0\0laptop\x2b\0\0\0\0\0\0\0", 22));
    auto back = decode_record(remote_bytes);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->origin, "laptop");
    EXPECT_EQ(back->origin_lsn, 43u);
    EXPECT_EQ(*back, remote);
    auto old = decode_record(local_bytes);
    ASSERT_TRUE(old) << old.error().message;
    EXPECT_TRUE(old->origin.empty());
    EXPECT_EQ(old->origin_lsn, 0u);
    // Cut inside the origin: an error, never a guess.
    for (size_t cut = local_bytes.size() + 1; cut < remote_bytes.size(); ++cut)
        EXPECT_FALSE(decode_record(std::string_view(remote_bytes).substr(0, cut))) << "cut at " << cut;
}
