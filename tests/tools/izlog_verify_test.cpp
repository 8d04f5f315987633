// izlog --verify on good and damaged journals.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

#include "izlog_fixture.hpp"

using namespace iz::journal;
using iz::test::izlog::Izlog;
using iz::test::izlog::make;
namespace fs = std::filesystem;

TEST_F(Izlog, VerifyPassesAndThenFindsAFlippedByte) {
    EXPECT_EQ(ok({"--verify"}), "PASS: 10 records, LSN 1..10, every checksum good\n");
    // More batches so that damage to an early record is followed by later ones.
    for (int i = 0; i < 3; ++i) append({make(Op::unlink, "x" + std::to_string(i), 20 + i)});
    auto seg = dir / "0000000000000001.izj";
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 + 32 + 5);  // inside the first record's payload
    f.put('\x7f');
    f.close();
    auto r = izlog({"--verify"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.out.find("FAIL: first bad record at LSN 1: corrupt record at LSN 1 in segment '" + seg.string()),
              std::string::npos) << r.out;
    auto read = izlog({"-o", "cat"});
    EXPECT_EQ(read.exit_code, 1);
    EXPECT_EQ(read.out, "");
    EXPECT_NE(read.err.find("izlog: corrupt record at LSN 1"), std::string::npos) << read.err;
}

namespace {

struct Frame {
    uint64_t offset = 0;
    uint64_t lsn = 0;
};

// Walks the frames of a segment (a 4096-byte header, then 32-byte frame
// headers each followed by its payload) as they lie on disk.
std::vector<Frame> frames_of(const fs::path& segment) {
    std::ifstream in(segment, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<Frame> out;
    uint64_t at = 4096;
    while (at + 32 <= bytes.size()) {
        uint32_t payload = 0;
        uint64_t lsn = 0;
        std::memcpy(&payload, bytes.data() + at, sizeof payload);
        std::memcpy(&lsn, bytes.data() + at + 8, sizeof lsn);
        if (payload == 0) break;
        out.push_back({at, lsn});
        at += 32 + payload;
    }
    return out;
}

}  // namespace

TEST_F(Izlog, VerifyNamesTheLsnAndSegmentOfDamageInAnEarlySegment) {
    std::vector<Record> more;
    for (int i = 0; i < 200; ++i) more.push_back(make(Op::create, "dir/file-" + std::to_string(i), 20 + i));
    for (int batch = 0; batch < 4; ++batch)
        append(std::vector<Record>(more.begin() + batch * 50, more.begin() + (batch + 1) * 50), 8192);
    EXPECT_EQ(ok({"--verify"}), "PASS: 210 records, LSN 1..210, every checksum good\n");

    std::vector<fs::path> segments;
    for (auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".izj") segments.push_back(e.path());
    std::sort(segments.begin(), segments.end());
    ASSERT_GE(segments.size(), 3u);
    auto early = segments[1];
    auto frames = frames_of(early);
    ASSERT_GE(frames.size(), 3u);
    auto victim = frames[frames.size() / 2];
    {
        std::fstream f(early, std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(victim.offset + 32 + 3);
        char c = 0;
        f.get(c);
        f.seekp(victim.offset + 32 + 3);
        f.put(static_cast<char>(c ^ 0x40));
    }

    auto r = izlog({"--verify"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, "");
    EXPECT_TRUE(r.out.starts_with(fmt::format("FAIL: first bad record at LSN {}: corrupt record at LSN {} in segment '{}'",
                                              victim.lsn, victim.lsn, early.string())))
        << r.out;
    EXPECT_TRUE(r.out.ends_with(fmt::format("{} records before it verified\n", victim.lsn - 1))) << r.out;

    // Reading stops at the damage with one line naming it, after showing
    // every good record before it.
    auto read = izlog({"-o", "cat"});
    EXPECT_EQ(read.exit_code, 1);
    EXPECT_EQ(std::count(read.out.begin(), read.out.end(), '\n'), static_cast<long>(victim.lsn - 1));
    EXPECT_TRUE(read.err.starts_with(fmt::format("izlog: corrupt record at LSN {} in segment '{}'", victim.lsn,
                                                 early.string())))
        << read.err;
    EXPECT_EQ(std::count(read.err.begin(), read.err.end(), '\n'), 1);
}
