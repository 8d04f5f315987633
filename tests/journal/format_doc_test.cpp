// journal/FORMAT.md shows a segment header and two frames as hex. These
// tests decode exactly those bytes with the real reader and codec, so the
// document cannot drift from the code (nor the code from the bytes that
// journals already on disk hold).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "journal/codec.hpp"
#include "journal/reader.hpp"
#include "sample_records.hpp"
#include "support/tree.hpp"
#include "segment_format.hpp"
#include "support/doc_hex.hpp"

namespace iz::journal {
namespace {

const std::string kDoc = IZ_JOURNAL_FORMAT_DOC;
constexpr int64_t kT1 = 1765000000000000000;
constexpr int64_t kT2 = 1765000000500000000;
const FileHandle kHandle{1, std::string("\x0c\x00\x00\x00\x2a\x00\x00\x00", 8)};

TEST(FormatDoc, TheSegmentHeaderIsOneTheWriterWrites) {
    auto bytes = test::doc_hex(kDoc, "journal-segment-header");
    ASSERT_EQ(bytes.size(), sizeof(format::SegmentHeader));
    format::SegmentHeader h;
    std::memcpy(&h, bytes.data(), sizeof h);
    ASSERT_TRUE(format::check_segment_header(h, "FORMAT.md"));
    EXPECT_EQ(h.base_lsn, 1u);
    EXPECT_EQ(h.first_time_ns, kT1);
    auto made = format::make_segment_header(1, kT1);
    EXPECT_EQ(std::memcmp(&made, bytes.data(), sizeof made), 0);
}

TEST(FormatDoc, TheFramesReadBackAsTheRecordsTheyDescribe) {
    auto header = test::doc_hex(kDoc, "journal-segment-header");
    auto frames = test::doc_hex(kDoc, "journal-frames");
    ASSERT_FALSE(frames.empty());
    test::TempDir dir;
    {
        std::string segment = header;
        segment.resize(format::kSegmentHeaderBytes, '\0');
        segment += frames;
        std::ofstream(dir.path() / format::segment_file_name(1), std::ios::binary) << segment;
    }
    auto verified = verify_journal(dir.path());
    ASSERT_TRUE(verified) << verified.error().message;
    EXPECT_FALSE(verified->first_error) << verified->first_error->message;
    EXPECT_FALSE(verified->torn_tail);
    EXPECT_EQ(verified->records, 2u);

    auto reader = Reader::open(dir.path());
    ASSERT_TRUE(reader) << reader.error().message;
    auto first = (*reader)->next();
    ASSERT_TRUE(first && *first) << (first ? "end" : first.error().message);
    const Record& c = **first;
    EXPECT_EQ(c.lsn, 1u);
    EXPECT_EQ(c.time_ns, kT1);
    EXPECT_EQ(c.op, Op::create);
    EXPECT_EQ(c.path, "docs/a.txt");
    EXPECT_EQ(c.handle, kHandle);
    EXPECT_EQ(c.version, 1u);
    EXPECT_EQ(c.pid, 4242);
    EXPECT_EQ(c.uid, 1000u);
    EXPECT_EQ(c.gid, 1000u);
    EXPECT_EQ(c.comm, "touch");
    EXPECT_EQ(c.mode, 0100644u);
    EXPECT_EQ(c.owner_uid, 1000u);
    EXPECT_EQ(c.owner_gid, 1000u);
    EXPECT_EQ(c.atime_ns, std::nullopt);
    EXPECT_EQ(c.mtime_ns, kT1);
    EXPECT_EQ(c.size, 0u);
    EXPECT_TRUE(c.ranges.empty());

    auto second = (*reader)->next();
    ASSERT_TRUE(second && *second) << (second ? "end" : second.error().message);
    const Record& w = **second;
    EXPECT_EQ(w.lsn, 2u);
    EXPECT_EQ(w.time_ns, kT2);
    EXPECT_EQ(w.op, Op::write);
    EXPECT_EQ(w.handle, kHandle);
    EXPECT_EQ(w.version, 2u);
    EXPECT_EQ(w.uid, std::nullopt);
    EXPECT_EQ(w.comm, "cat");
    EXPECT_EQ(w.size, 5u);
    EXPECT_EQ(w.ranges, (std::vector<ByteRange>{{0, 5}}));

    auto end = (*reader)->next();
    ASSERT_TRUE(end);
    EXPECT_FALSE(*end);

    // Encoding the records again gives the frames' bytes: the format is
    // what the writer produces today, byte for byte.
    std::string again;
    for (const Record* r : {&c, &w}) {
        Record in_payload = *r;
        in_payload.lsn = 0;  // the writer's payloads leave the LSN to the header
        auto payload = encode_record(in_payload);
        uint8_t flags = r == &c ? format::kBatchStart : 0;
        format::append_frame(again, r->lsn, r->time_ns, static_cast<uint8_t>(r->op), flags, payload);
    }
    EXPECT_EQ(again, frames);

    // The same write with an origin: its payload, then the two appended
    // fields the document shows, which read back as that origin.
    auto tail = test::doc_hex(kDoc, "journal-record-origin");
    ASSERT_FALSE(tail.empty());
    Record local = w;
    local.lsn = 0;
    Record remote = local;
    remote.origin = "laptop";
    remote.origin_lsn = 43;
    EXPECT_EQ(encode_record(remote), encode_record(local) + tail);
    auto back = decode_record(encode_record(local) + tail);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->origin, "laptop");
    EXPECT_EQ(back->origin_lsn, 43u);

    // Captured by an agent receiving a shared fileset: what it had seen of
    // its server, after an empty origin.
    auto seen_tail = test::doc_hex(kDoc, "journal-record-seen");
    ASSERT_FALSE(seen_tail.empty());
    Record stamped = local;
    stamped.seen = {SeenLsn{"srv:7000", 17}};
    EXPECT_EQ(encode_record(stamped), encode_record(local) + seen_tail);
    auto seen_back = decode_record(encode_record(local) + seen_tail);
    ASSERT_TRUE(seen_back) << seen_back.error().message;
    EXPECT_EQ(seen_back->seen, stamped.seen);
    EXPECT_TRUE(seen_back->origin.empty());
    // A record with an origin and no seen ends where it did before.
    EXPECT_TRUE(decode_record(encode_record(local) + tail)->seen.empty());

    // A server's record journaled for an agent (field 30): an empty seen
    // list, then the agent; one without it ends where it did before.
    Record sent_back = remote;
    sent_back.on_behalf = "b";
    std::string on_behalf_tail = std::string(8, '\0') + std::string("\x01\0\0\0\0\0\0\0", 8) + "b";
    EXPECT_EQ(encode_record(sent_back), encode_record(remote) + on_behalf_tail);
    auto behalf_back = decode_record(encode_record(sent_back));
    ASSERT_TRUE(behalf_back) << behalf_back.error().message;
    EXPECT_EQ(*behalf_back, sent_back);
    EXPECT_TRUE(decode_record(encode_record(stamped))->on_behalf.empty());
}

}  // namespace
}  // namespace iz::journal
