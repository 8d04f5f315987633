// Forwards of writes as ranges (shared filesets, protocol version 6): what
// the fileset journal notes of a shipped change (written_ranges.hpp), what
// a forward reads of the server's copy for those ranges, holes as holes
// (forward_content.hpp), and repeated writes of one file pending for one
// subscriber sent as one (forward_coalesce.hpp).
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fileset_journal.hpp"
#include "forward_coalesce.hpp"
#include "forward_content.hpp"
#include "support/tree.hpp"
#include "written_ranges.hpp"

namespace iz::replicator {
namespace {

using journal::ByteRange;
using proto::OpKind;

proto::OpMsg part(OpKind kind, uint64_t lsn, std::vector<std::pair<uint64_t, uint32_t>> extents,
                  std::vector<std::pair<uint64_t, uint64_t>> holes = {}) {
    proto::OpMsg m;
    m.kind = kind;
    m.lsn = lsn;
    m.path = "f";
    for (auto [off, len] : extents) m.extents.push_back(proto::Extent{.offset = off, .raw_length = len});
    for (auto [off, len] : holes) m.holes.push_back(proto::Hole{off, len});
    return m;
}

TEST(WrittenRanges, ContentPatchingTheCopyNamesItsExtentsAndHoles) {
    WrittenRanges w;
    auto begin = part(OpKind::content_begin, 7, {{65536, 65536}}, {{0, 4096}});
    begin.base = proto::ContentBase::existing;
    EXPECT_TRUE(w.add("a", begin).empty());
    EXPECT_TRUE(w.add("a", part(OpKind::content_data, 7, {{131072, 1000}})).empty());
    // Another agent's parts in between change nothing of a's.
    auto other = part(OpKind::content_begin, 3, {{0, 10}});
    EXPECT_TRUE(w.add("b", other).empty());
    EXPECT_EQ(w.add("a", part(OpKind::content_end, 7, {})),
              (std::vector<ByteRange>{{0, 4096}, {65536, 65536 + 1000}}));
    EXPECT_TRUE(w.add("b", part(OpKind::content_end, 3, {})).empty()) << "from an empty file: the whole file";
}

TEST(WrittenRanges, WholeWhenPartsAreMissingOrMany) {
    WrittenRanges w;
    EXPECT_TRUE(w.add("a", part(OpKind::content_end, 7, {})).empty()) << "no beginning";
    auto begin = part(OpKind::content_begin, 8, {{0, 10}});
    begin.base = proto::ContentBase::existing;
    w.add("a", begin);
    w.add("a", part(OpKind::content_data, 9, {{100, 10}}));  // another record's data
    EXPECT_TRUE(w.add("a", part(OpKind::content_end, 8, {})).empty());
    // A range write of one part names its own; of several, the whole file.
    EXPECT_EQ(w.add("a", part(OpKind::write, 10, {{4096, 4096}}, {{0, 4096}})), (std::vector<ByteRange>{{0, 8192}}));
    auto first = part(OpKind::write, 11, {{0, 10}});
    first.more = true;
    EXPECT_TRUE(w.add("a", first).empty());
    begin.lsn = 12;
    begin.extents.clear();
    for (uint64_t i = 0; i <= WrittenRanges::kMaxRanges; ++i)
        begin.holes.push_back(proto::Hole{i * 8192, 4096});
    w.add("a", begin);
    EXPECT_TRUE(w.add("a", part(OpKind::content_end, 12, {})).empty()) << "too many ranges: the whole file";
}

class ForwardContent : public ::testing::Test {
protected:
    test::TempDir dir_{"fwd-content"};
    std::string data(size_t n, char c) { return std::string(n, c); }
    int make_file() {
        int fd = ::open((dir_ / "f").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        EXPECT_GE(fd, 0);
        EXPECT_EQ(::ftruncate(fd, 1 << 20), 0);  // 1 MiB, a hole but where written
        EXPECT_EQ(::pwrite(fd, data(8192, 'a').data(), 8192, 65536), 8192);
        EXPECT_EQ(::pwrite(fd, data(4096, 'b').data(), 4096, 512 * 1024), 4096);
        return fd;
    }
};

TEST_F(ForwardContent, RangesCarryTheirDataAndTheirHoles) {
    int fd = make_file();
    // The range around the first data, a range that is all hole, and one
    // past the end (clipped).
    auto parts = forward_content(fd, 1 << 20, {{61440, 16384}, {200000, 1000}, {(1 << 20) - 10, 100}}, "f");
    ::close(fd);
    ASSERT_TRUE(parts) << parts.error().message;
    ASSERT_FALSE(parts->empty());
    EXPECT_EQ(parts->front().kind, OpKind::content_begin);
    EXPECT_EQ(parts->front().base, proto::ContentBase::existing);
    uint64_t data_bytes = 0;
    std::vector<std::pair<uint64_t, uint64_t>> holes;
    for (auto& p : *parts) {
        EXPECT_TRUE(p.more);
        EXPECT_TRUE(proto::check_data(p)) << "parts are valid ops";
        for (auto& e : p.extents) {
            data_bytes += e.raw_length;
            EXPECT_GE(e.offset, 61440u);
            EXPECT_LE(e.offset + e.raw_length, 61440u + 16384u);
        }
        for (auto& h : p.holes) holes.emplace_back(h.offset, h.length);
    }
    EXPECT_EQ(data_bytes, 8192u) << "only the data within the ranges is read and sent";
    EXPECT_EQ(holes, (std::vector<std::pair<uint64_t, uint64_t>>{
                         {61440, 4096}, {65536 + 8192, 4096}, {200000, 1000}, {(1 << 20) - 10, 10}}));
}

TEST_F(ForwardContent, WholeContentStartsFromNothing) {
    int fd = make_file();
    auto parts = forward_content(fd, 1 << 20, {}, "f");
    ::close(fd);
    ASSERT_TRUE(parts) << parts.error().message;
    EXPECT_EQ(parts->front().base, proto::ContentBase::empty);
    uint64_t raw = 0;
    for (auto& p : *parts) {
        EXPECT_TRUE(p.holes.empty());
        for (auto& e : p.extents) raw += e.raw_length;
    }
    EXPECT_EQ(raw, 8192u + 4096u) << "the data, not the holes";
}

TEST_F(ForwardContent, ForwardOfARecordWithRangesPatchesTheCopy) {
    ::close(make_file());
    int root = ::open(dir_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(root, 0);
    journal::Record r;
    r.op = journal::Op::write;
    r.lsn = 5;
    r.path = "f";
    r.origin = "a";
    r.ranges = {{512 * 1024, 4096}};
    auto ranged = forwards_of(r, root, "", true);
    auto whole = forwards_of(r, root, "", false);
    ::close(root);
    ASSERT_TRUE(ranged && whole);
    ASSERT_EQ(ranged->size(), 2u);  // begin with the data, end
    EXPECT_EQ((*ranged)[0].op.base, proto::ContentBase::existing);
    ASSERT_EQ((*ranged)[0].op.extents.size(), 1u);
    EXPECT_EQ((*ranged)[0].op.extents[0].offset, 512u * 1024);
    EXPECT_EQ((*ranged)[1].op.kind, OpKind::content_end);
    EXPECT_EQ((*ranged)[1].op.size, uint64_t{1} << 20);
    EXPECT_FALSE((*ranged)[1].op.more);
    EXPECT_EQ((*whole)[0].op.base, proto::ContentBase::empty);
}

TEST_F(ForwardContent, ARangedWriteOfAFileGoneNamesItsPath) {
    int root = ::open(dir_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(root, 0);
    journal::Record r;
    r.op = journal::Op::write;
    r.lsn = 6;
    r.path = "replaced";
    r.ranges = {{0, 4096}};
    auto ranged = forwards_of(r, root, "", true);
    auto whole = forwards_of(r, root, "", false);
    ::close(root);
    ASSERT_TRUE(ranged && whole);
    ASSERT_EQ(ranged->size(), 1u);
    EXPECT_EQ((*ranged)[0].op.kind, OpKind::noop);
    EXPECT_EQ((*ranged)[0].op.path, "replaced") << "the receiver disowns its copy there";
    EXPECT_EQ((*whole)[0].op.path, "") << "whole content: the next write brings it all";
}

journal::Record rec(uint64_t lsn, journal::Op op, std::string path, std::string origin,
                    std::vector<ByteRange> ranges = {}, std::string handle = "h1") {
    journal::Record r;
    r.lsn = lsn;
    r.op = op;
    r.path = std::move(path);
    r.origin = std::move(origin);
    r.ranges = std::move(ranges);
    r.handle = FileHandle{.type = 1, .bytes = std::move(handle)};
    return r;
}

TEST(CoalesceWrites, LaterWriteOfTheSameFileCarriesTheEarlier) {
    using journal::Op;
    std::vector<journal::Record> batch{
        rec(1, Op::write, "f", "a", {{0, 10}}),
        rec(2, Op::mkdir, "d", "a"),
        rec(3, Op::write, "f", "a", {{100, 10}}),
        rec(4, Op::write, "f", "c", {{200, 10}}),
    };
    auto skip = coalesce_writes(batch, "b", 0);
    EXPECT_EQ(skip, (std::vector<bool>{true, false, true, false}));
    EXPECT_EQ(batch[3].ranges, (std::vector<ByteRange>{{0, 10}, {100, 10}, {200, 10}}));
}

TEST(CoalesceWrites, KeptApartWhereTheCodeCannotJoinThem) {
    using journal::Op;
    std::vector<journal::Record> batch{
        rec(1, Op::write, "f", "a", {{0, 10}}),
        rec(2, Op::rename, "g", "a"),  // f replaced by g: another file
        rec(3, Op::write, "f", "a", {{100, 10}}),
        rec(4, Op::write, "f", "b", {{150, 10}}),  // the subscriber's own
        rec(5, Op::write, "f", "a", {{200, 10}}),
        rec(6, Op::write, "f", "a", {{300, 10}}, "h2"),  // another handle: the server patched it anew
        rec(7, Op::write, "e", "a", {{0, 10}}),
        rec(8, Op::write, "e", "a", {}),  // a whole write: the whole file
        rec(9, Op::write, "w", "a", {{0, 10}}),
        rec(10, Op::write, "w", "a", {{20, 10}}),
    };
    batch[1].target = "f";
    auto skip = coalesce_writes(batch, "b", 9);
    EXPECT_EQ(skip, (std::vector<bool>{false, false, false, false, true, false, true, false, true, false}));
    EXPECT_TRUE(batch[5].ranges.empty()) << "joined with LSN 5, asked for whole";
    EXPECT_TRUE(batch[7].ranges.empty());
    EXPECT_TRUE(batch[9].ranges.empty()) << "asked for whole through LSN 9";
}

}  // namespace
}  // namespace iz::replicator
