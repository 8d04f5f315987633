// Crash recovery: a torn last batch is cut, damage elsewhere is reported.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "journal/reader.hpp"
#include "journal/writer.hpp"
#include "sample_records.hpp"
#include "support/tree.hpp"
#include "segment_format.hpp"
#include "segment_scan.hpp"

using namespace iz::journal;
namespace fs = std::filesystem;

namespace {

// Writes `batches` group commits of `per_batch` records each.
void write_journal(const fs::path& dir, int batches, int per_batch, bool preallocate, uint64_t segment_bytes = 64ull << 20) {
    WriterOptions o;
    o.dir = dir;
    o.preallocate = preallocate;
    o.segment_bytes = segment_bytes;
    auto w = Writer::open(o);
    ASSERT_TRUE(w) << w.error().message;
    uint64_t n = 0;
    for (int b = 0; b < batches; ++b) {
        for (int i = 0; i < per_batch; ++i) ASSERT_TRUE((*w)->append(iz::test::realistic_record(n++)));
        ASSERT_TRUE((*w)->flush());
    }
    ASSERT_TRUE((*w)->close());
}

fs::path last_segment(const fs::path& dir) {
    auto segs = format::list_segments(dir);
    EXPECT_TRUE(segs && !segs->empty());
    return segs->back().path;
}

std::vector<IndexEntry> frames_of(const fs::path& segment) {
    auto seg = MappedSegment::open(segment);
    EXPECT_TRUE(seg);
    return scan_frames(*seg, format::kSegmentHeaderBytes, seg->header().base_lsn).entries;
}

uint64_t data_end(const fs::path& segment) {
    auto seg = MappedSegment::open(segment);
    return scan_frames(*seg, format::kSegmentHeaderBytes, seg->header().base_lsn).end_offset;
}

// Reads every record; returns their LSNs, or the error text.
std::pair<std::vector<uint64_t>, std::string> read_lsns(const fs::path& dir) {
    std::vector<uint64_t> lsns;
    auto r = Reader::open(dir);
    if (!r) return {lsns, r.error().message};
    for (;;) {
        auto rec = (*r)->next();
        if (!rec) return {lsns, rec.error().message};
        if (!*rec) break;
        lsns.push_back((*rec)->lsn);
    }
    return {lsns, ""};
}

void copy_dir(const fs::path& from, const fs::path& to) {
    fs::remove_all(to);
    fs::copy(from, to, fs::copy_options::recursive);
}

void overwrite(const fs::path& file, uint64_t offset, const std::string& bytes) {
    int fd = ::open(file.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
}

void flip_byte(const fs::path& file, uint64_t offset) {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.read(&c, 1);
    c ^= 0x5a;
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
}

}  // namespace

// Every byte offset inside the last three records: cut the file there (as a
// crash would leave an unpreallocated file) or zero everything after it (a
// preallocated one). The reader returns exactly the complete records, and a
// writer reopening the journal continues right after them.
class TornTail : public ::testing::TestWithParam<bool> {};

TEST_P(TornTail, EveryCutOffsetKeepsExactlyTheCompleteRecords) {
    bool preallocated = GetParam();
    iz::test::TempDir base, work;
    write_journal(base.path(), 4, 5, preallocated, 64 << 10);
    auto seg_name = last_segment(base.path()).filename();
    auto frames = frames_of(base.path() / seg_name);
    ASSERT_EQ(frames.size(), 20u);
    uint64_t end = data_end(base.path() / seg_name);
    uint64_t from = frames[frames.size() - 3].offset;
    auto seg_bytes = fs::file_size(base.path() / seg_name);
    std::string original(seg_bytes, '\0');
    std::ifstream(base.path() / seg_name, std::ios::binary).read(original.data(), static_cast<std::streamsize>(seg_bytes));

    for (uint64_t cut = from; cut <= end; ++cut) {
        copy_dir(base.path(), work.path());
        auto seg = work.path() / seg_name;
        if (preallocated) overwrite(seg, cut, std::string(seg_bytes - cut, '\0'));
        else fs::resize_file(seg, cut);
        size_t complete = 0;
        for (auto& f : frames) {
            uint64_t f_end = (&f == &frames.back()) ? end : (&f)[1].offset;
            // Zeroing bytes that were zero already leaves a frame whole.
            bool intact = f_end <= cut;
            if (preallocated && !intact && cut >= f.offset)
                intact = original.find_first_not_of('\0', cut) >= f_end;
            if (intact) ++complete;
        }
        auto [lsns, err] = read_lsns(work.path());
        ASSERT_EQ(err, "") << "cut at " << cut;
        ASSERT_EQ(lsns.size(), complete) << "cut at " << cut;

        WriterOptions o;
        o.dir = work.path();
        o.preallocate = preallocated;
        auto w = Writer::open(o);
        ASSERT_TRUE(w) << "cut at " << cut << ": " << w.error().message;
        EXPECT_EQ((*w)->head_lsn(), complete);
        auto lsn = (*w)->append(iz::test::realistic_record(999));
        ASSERT_TRUE(lsn);
        EXPECT_EQ(*lsn, complete + 1);
        ASSERT_TRUE((*w)->close());
        auto [after, err2] = read_lsns(work.path());
        ASSERT_EQ(err2, "") << "cut at " << cut;
        ASSERT_EQ(after.size(), complete + 1) << "cut at " << cut;
        for (size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i], i + 1);
    }
}

INSTANTIATE_TEST_SUITE_P(Journal, TornTail, ::testing::Values(false, true),
                         [](auto& info) { return info.param ? "Preallocated" : "Growing"; });

TEST(Recovery, GarbageInTheLastBatchIsATornTail) {
    iz::test::TempDir dir;
    write_journal(dir.path(), 3, 4, true);
    auto seg = last_segment(dir.path());
    auto frames = frames_of(seg);
    // The writer commits what is queued whenever it gets to it, so a
    // flush() may be split over batches: find the last batch in the file.
    auto seg_file = MappedSegment::open(seg);
    ASSERT_TRUE(seg_file);
    size_t last_start = 0;
    for (size_t i = 0; i < frames.size(); ++i) {
        auto f = seg_file->read_at(frames[i].offset);
        ASSERT_EQ(f.status, FrameStatus::ok);
        if (f.header.flags & format::kBatchStart) last_start = i;
    }
    // Scribble over its second record (its first when it has one), as a
    // torn page would.
    size_t target = std::min(last_start + 1, frames.size() - 1);
    std::mt19937 rng(7);
    std::string junk(40, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    overwrite(seg, frames[target].offset + 3, junk);
    auto [lsns, err] = read_lsns(dir.path());
    EXPECT_EQ(err, "");
    EXPECT_EQ(lsns.size(), target);
    auto report = verify_journal(dir.path());
    ASSERT_TRUE(report);
    EXPECT_TRUE(report->torn_tail);
    EXPECT_FALSE(report->first_error);
}

TEST(Recovery, CorruptionBeforeLaterBatchesIsReportedWithItsLsn) {
    iz::test::TempDir dir;
    write_journal(dir.path(), 10, 10, true);
    auto seg = last_segment(dir.path());
    auto frames = frames_of(seg);
    flip_byte(seg, frames[24].offset + format::kFrameHeaderBytes + 10);  // LSN 25's payload

    auto [lsns, err] = read_lsns(dir.path());
    EXPECT_EQ(lsns.size(), 24u);
    EXPECT_NE(err.find("corrupt record at LSN 25"), std::string::npos) << err;
    EXPECT_NE(err.find(seg.string()), std::string::npos) << err;
    EXPECT_NE(err.find("checksum mismatch"), std::string::npos) << err;

    auto report = verify_journal(dir.path());
    ASSERT_TRUE(report);
    ASSERT_TRUE(report->first_error);
    EXPECT_EQ(report->first_bad_lsn, 25u);

    // A writer must not append after damage it cannot explain.
    WriterOptions o;
    o.dir = dir.path();
    auto w = Writer::open(o);
    ASSERT_FALSE(w);
    EXPECT_NE(w.error().message.find("LSN 25"), std::string::npos) << w.error().message;
}

TEST(Recovery, DamageInASealedSegmentIsCorruptionEvenAtItsEnd) {
    iz::test::TempDir dir;
    write_journal(dir.path(), 20, 10, false, 8 << 10);
    auto segs = format::list_segments(dir.path());
    ASSERT_TRUE(segs);
    ASSERT_GE(segs->size(), 3u);
    auto first = (*segs)[0].path;
    auto frames = frames_of(first);
    auto last_lsn = frames.back().lsn;
    flip_byte(first, frames.back().offset + format::kFrameHeaderBytes + 1);
    auto [lsns, err] = read_lsns(dir.path());
    EXPECT_EQ(lsns.size(), last_lsn - 1);
    EXPECT_NE(err.find("corrupt record at LSN " + std::to_string(last_lsn)), std::string::npos) << err;
    auto report = verify_journal(dir.path());
    ASSERT_TRUE(report && report->first_error);
    EXPECT_EQ(report->first_bad_lsn, last_lsn);
}

TEST(Recovery, HalfCreatedSegmentIsDiscarded) {
    iz::test::TempDir dir;
    write_journal(dir.path(), 2, 5, true);
    // A crash between creating the next segment file and writing its header.
    std::ofstream(dir.path() / format::segment_file_name(11)).close();
    WriterOptions o;
    o.dir = dir.path();
    auto w = Writer::open(o);
    ASSERT_TRUE(w) << w.error().message;
    EXPECT_EQ((*w)->head_lsn(), 10u);
    ASSERT_TRUE((*w)->append(iz::test::realistic_record(1)));
    ASSERT_TRUE((*w)->close());
    auto [lsns, err] = read_lsns(dir.path());
    EXPECT_EQ(err, "");
    EXPECT_EQ(lsns.size(), 11u);
}

namespace {

// The bytes of the frame at `offset` (header and payload).
std::string frame_bytes(const fs::path& segment, uint64_t offset) {
    auto seg = MappedSegment::open(segment);
    EXPECT_TRUE(seg);
    auto f = seg->read_at(offset);
    EXPECT_EQ(f.status, FrameStatus::ok);
    auto size = format::kFrameHeaderBytes + f.header.payload_bytes;
    auto header = std::string(reinterpret_cast<const char*>(&f.header), format::kFrameHeaderBytes);
    return header + std::string(f.payload.substr(0, size - format::kFrameHeaderBytes));
}

}  // namespace

// A follower meets a batch that is still being written at the head of a
// preallocated segment: telling it from corruption looks at the pages
// written around the head, not at the rest of the (unwritten) segment.
TEST(Recovery, MeetingTheWriteHeadDoesNotScanTheRestOfTheSegment) {
    iz::test::TempDir dir;
    write_journal(dir.path(), 3, 4, true);
    auto seg = last_segment(dir.path());
    auto frames = frames_of(seg);
    auto end = data_end(seg);
    // The first half of a batch being written: a frame cut mid-payload.
    auto next = frame_bytes(seg, frames[4].offset);  // starts batch 2
    overwrite(seg, end, next.substr(0, next.size() / 2));

    auto mapped = MappedSegment::open(seg);
    ASSERT_TRUE(mapped);
    ASSERT_GE(mapped->mapped_bytes(), 64ull << 20);
    auto scan = scan_frames(*mapped, format::kSegmentHeaderBytes, mapped->header().base_lsn);
    EXPECT_EQ(scan.entries.size(), 12u);
    EXPECT_TRUE(scan.damaged);
    EXPECT_FALSE(scan.corrupt);
    EXPECT_EQ(scan.bad_offset, end);
    EXPECT_LT(scan.later_search_bytes, 1ull << 20) << "the search read past the write head";

    auto [lsns, err] = read_lsns(dir.path());
    EXPECT_EQ(err, "");
    EXPECT_EQ(lsns.size(), 12u);
}

// Skipping holes must not skip data: a complete later batch far beyond the
// damage, past megabytes of unwritten space, still makes it corruption.
TEST(Recovery, LaterBatchBeyondAHoleIsStillFound) {
    iz::test::TempDir dir;
    write_journal(dir.path(), 4, 10, true);
    auto seg = last_segment(dir.path());
    auto frames = frames_of(seg);
    auto end = data_end(seg);
    auto later = frame_bytes(seg, frames[30].offset);  // LSN 31 starts batch 4
    // Damage LSN 25, remove everything after it, and put batch 4's first
    // frame back 40 MiB further on.
    flip_byte(seg, frames[24].offset + format::kFrameHeaderBytes + 3);
    int fd = ::open(seg.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(frames[25].offset),
                          static_cast<off_t>(end - frames[25].offset)),
              0);
    ::close(fd);
    overwrite(seg, 40ull << 20, later);

    auto mapped = MappedSegment::open(seg);
    ASSERT_TRUE(mapped);
    auto scan = scan_frames(*mapped, format::kSegmentHeaderBytes, mapped->header().base_lsn);
    EXPECT_EQ(scan.entries.size(), 24u);
    EXPECT_TRUE(scan.corrupt);
    auto [lsns, err] = read_lsns(dir.path());
    EXPECT_EQ(lsns.size(), 24u);
    EXPECT_NE(err.find("corrupt record at LSN 25"), std::string::npos) << err;
}
