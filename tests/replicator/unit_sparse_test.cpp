// Holes travel as holes: the source side finds a file's data extents and
// reads only those (chunks of zeros become holes too), the server hashes
// holes without reading them and tells which of its blocks are all hole,
// and applying writes only the data, punches the holes it is sent and
// keeps the holes of the copy a delta patches. Allocation is checked with
// st_blocks, on the temporary directory's real disk filesystem.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "replicator/fs/block_hash.hpp"
#include "replicator/fs/file_extents.hpp"
#include "source_reader.hpp"
#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// Bytes of disk a file uses.
uint64_t allocated(const fs::path& p) { return static_cast<uint64_t>(lstat_of(p).st_blocks) * 512; }

// A file of `size` bytes made with ftruncate, with `writes` at their
// offsets: everything else is hole.
void make_sparse(const fs::path& p, uint64_t size, const std::map<uint64_t, std::string>& writes) {
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << p;
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
    for (auto& [off, bytes] : writes)
        ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(off)), static_cast<ssize_t>(bytes.size()));
    ASSERT_EQ(::fsync(fd), 0);
    ::close(fd);
}

std::string pread_at(const fs::path& p, uint64_t off, size_t len) {
    UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    auto r = read_range(fd.get(), off, len, p.string());
    EXPECT_TRUE(r);
    return r ? *r : std::string();
}

struct Pieces {
    std::map<uint64_t, std::string> data;
    std::vector<proto::Hole> holes;
    uint64_t data_bytes() const {
        uint64_t n = 0;
        for (auto& [off, b] : data) n += b.size();
        return n;
    }
};

Result<SparseRead> read_pieces(const SourceFile& f, uint64_t from, uint64_t to, Pieces& out) {
    uint64_t end = to;
    auto extents = file_data(f, from, to, "f", &end);
    if (!extents) return fail(extents.error());
    SparseOut sink{[&](uint64_t off, std::string&& b) {
                       out.data[off] = std::move(b);
                       return true;
                   },
                   [&](uint64_t off, uint64_t len) {
                       out.holes.push_back({off, len});
                       return true;
                   }};
    return read_sparse(f.fd.get(), *extents, from, end, kMiB, "f", sink);
}

SourceFile open_source(const fs::path& p) {
    SourceFile f;
    f.fd.reset(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_GE(f.fd.get(), 0) << p;
    EXPECT_EQ(::fstat(f.fd.get(), &f.st), 0);
    return f;
}

class Sparse : public ApplyTest {};

TEST_F(Sparse, DataExtentsAreTheWrittenBlocks) {
    auto p = dir_ / "src";
    make_sparse(p, 10 * kMiB + 4096, {{0, std::string(4096, 'a')}, {10 * kMiB, std::string(4096, 'b')}});
    auto f = open_source(p);
    auto all = data_extents(f.fd.get(), 0, 10 * kMiB + 4096, "src");
    ASSERT_TRUE(all) << all.error().message;
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[0].offset, 0u);
    EXPECT_EQ((*all)[0].length, 4096u);
    EXPECT_EQ((*all)[1].offset, 10 * kMiB);
    EXPECT_EQ((*all)[1].length, 4096u);
    auto middle = data_extents(f.fd.get(), 4096, 10 * kMiB, "src");
    ASSERT_TRUE(middle);
    EXPECT_TRUE(middle->empty());
    EXPECT_FALSE(has_data(*all, 4096, 10 * kMiB));
    EXPECT_TRUE(has_data(*all, 4095, 4096));
    EXPECT_TRUE(has_data(*all, 10 * kMiB - 1, 10 * kMiB + 1));
}

// Two 4 KiB writes 10 MiB apart, and 64 KiB of written zeros between:
// 8 KiB of data, one hole for the rest.
TEST_F(Sparse, OnlyDataTravelsAndZerosAreHoles) {
    auto p = dir_ / "src";
    make_sparse(p, 10 * kMiB + 4096,
                {{0, std::string(4096, 'a')}, {2 * kMiB, std::string(65536, '\0')}, {10 * kMiB, std::string(4096, 'b')}});
    Pieces got;
    auto r = read_pieces(open_source(p), 0, 10 * kMiB + 4096, got);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(r->stopped);
    EXPECT_EQ(r->end, 10 * kMiB + 4096);
    ASSERT_EQ(got.data.size(), 2u);
    EXPECT_EQ(got.data[0], std::string(4096, 'a'));
    EXPECT_EQ(got.data[10 * kMiB], std::string(4096, 'b'));
    ASSERT_EQ(got.holes.size(), 1u);
    EXPECT_EQ(got.holes[0].offset, 4096u);
    EXPECT_EQ(got.holes[0].length, 10 * kMiB - 4096);
}

// Exactly the bytes asked for, however few: a read of 17 bytes (from an
// offset 17 bytes short of a block, where a data extent ended) gave 30,
// libstdc++ 12 handing std::string::resize_and_overwrite's operation the
// capacity it grew the string to rather than the size asked for. The 13
// bytes too many overlapped the hole that followed; the server refused the
// write as malformed and replication stopped.
TEST_F(Sparse, AShortReadGivesExactlyTheBytesAskedFor) {
    auto p = dir_ / "src";
    make_sparse(p, 75326, {{16367, std::string(200, 'x')}});
    for (size_t len : {size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{29}, size_t{31}, size_t{100}}) {
        auto got = pread_at(p, 16367, len);
        EXPECT_EQ(got, std::string(len, 'x')) << len << " bytes asked for";
    }
    Pieces pieces;
    auto f = open_source(p);
    SparseOut sink{[&](uint64_t off, std::string&& b) {
                       pieces.data[off] = std::move(b);
                       return true;
                   },
                   [&](uint64_t off, uint64_t len) {
                       pieces.holes.push_back({off, len});
                       return true;
                   }};
    auto r = read_sparse(f.fd.get(), {{16367, 17}}, 16367, 75326, kMiB, "f", sink);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(pieces.data.size(), 1u);
    EXPECT_EQ(pieces.data[16367], std::string(17, 'x'));
    ASSERT_EQ(pieces.holes.size(), 1u);
    EXPECT_EQ(pieces.holes[0].offset, 16384u);
    EXPECT_EQ(pieces.holes[0].length, 75326u - 16384u);
}

// ftruncate to 700 MiB and 4 KiB written: 4 KiB is all that is read.
TEST_F(Sparse, A700MiBFileWithFourKiBOfDataReadsAsFourKiB) {
    auto p = dir_ / "src";
    const uint64_t size = 700 * kMiB;
    make_sparse(p, size, {{300 * kMiB, std::string(4096, 'x')}});
    Pieces got;
    auto r = read_pieces(open_source(p), 0, size, got);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(got.data_bytes(), 4096u);
    ASSERT_EQ(got.holes.size(), 2u);
    EXPECT_EQ(got.holes[0].offset, 0u);
    EXPECT_EQ(got.holes[0].length, 300 * kMiB);
    EXPECT_EQ(got.holes[1].offset, 300 * kMiB + 4096);
    EXPECT_EQ(got.holes[1].length, size - 300 * kMiB - 4096);
}

// Preallocated (fallocate without KEEP_SIZE) and never written: ext4 and
// XFS report such extents as holes, so they travel as holes and the
// replica holds only what was written (fewer blocks than the source).
TEST_F(Sparse, PreallocatedExtentsTravelAsHolesFromExt4AndXfs) {
    struct statfs fs_info{};
    ASSERT_EQ(::statfs(dir_.path().c_str(), &fs_info), 0);
    if (fs_info.f_type != EXT4_SUPER_MAGIC && fs_info.f_type != XFS_SUPER_MAGIC)
        GTEST_SKIP() << "the temporary directory is neither on ext4 nor on XFS";
    auto p = dir_ / "src";
    {
        UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
        ASSERT_EQ(::fallocate(fd.get(), 0, 0, static_cast<off_t>(4 * kMiB)), 0);
        ASSERT_EQ(::pwrite(fd.get(), "written", 7, static_cast<off_t>(kMiB)), 7);
        ASSERT_EQ(::fsync(fd.get()), 0);
    }
    ASSERT_GE(allocated(p), 4 * kMiB);
    Pieces got;
    auto r = read_pieces(open_source(p), 0, 4 * kMiB, got);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(got.data.size(), 1u);
    EXPECT_EQ(got.data.begin()->first, kMiB);
    EXPECT_LE(got.data_bytes(), 65536u);  // the block written (as the filesystem rounds it)
    EXPECT_EQ(got.data.begin()->second.substr(0, 7), "written");
}

// A small file whose blocks add up to its size although it has a hole:
// blocks preallocated past its end (fallocate KEEP_SIZE; on XFS a
// copy-on-write reservation after a clone counts so too, for a while)
// made it look dense, and its hole travelled as written zeros, which
// took blocks on the replica (the kill -9 soak, XFS seed 5029).
TEST_F(Sparse, ASmallFileDenseByItsBlocksKeepsItsHole) {
    auto p = dir_ / "src";
    make_sparse(p, 8192, {{0, std::string(4096, 'a')}});
    {
        UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CLOEXEC));
        if (::fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 8192, 16384) != 0)
            GTEST_SKIP() << "no fallocate here: " << std::strerror(errno);
        ASSERT_EQ(::fsync(fd.get()), 0);
    }
    auto f = open_source(p);
    ASSERT_EQ(f.st.st_size, 8192);
    ASSERT_GE(static_cast<uint64_t>(f.st.st_blocks) * 512, 8192u) << "the file must look dense by its blocks";
    Pieces got;
    auto r = read_pieces(f, 0, 8192, got);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->end, 8192u);
    ASSERT_EQ(got.data.size(), 1u);
    EXPECT_EQ(got.data[0], std::string(4096, 'a'));
    ASSERT_EQ(got.holes.size(), 1u);
    EXPECT_EQ(got.holes[0].offset, 4096u);
    EXPECT_EQ(got.holes[0].length, 4096u);
    // A dense one is still one piece.
    make_sparse(p, 6000, {{0, std::string(6000, 'b')}});
    Pieces dense;
    r = read_pieces(open_source(p), 0, 6000, dense);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(dense.data.size(), 1u);
    EXPECT_EQ(dense.data[0], std::string(6000, 'b'));
    EXPECT_TRUE(dense.holes.empty());
}

// A file cut shorter after it was opened (its size taken) is read as it is
// now, found by the extents or by a short read, and not padded with a hole.
TEST_F(Sparse, AShrunkFileEndsTheRead) {
    for (uint64_t size : {3 * kMiB, uint64_t{60000}}) {
        SCOPED_TRACE(size);
        auto p = dir_ / "src";
        make_sparse(p, size, {{0, std::string(size, 'd')}});
        Pieces got;
        auto f = open_source(p);
        ASSERT_EQ(::truncate(p.c_str(), 1000), 0);
        auto r = read_pieces(f, 0, size, got);
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(r->end, 1000u);
        EXPECT_EQ(got.data_bytes(), 1000u);
        EXPECT_TRUE(got.holes.empty());
    }
    // Cut in the middle of a hole.
    auto p = dir_ / "holey";
    make_sparse(p, 8 * kMiB, {{0, "head"}, {6 * kMiB, "tail"}});
    Pieces got;
    auto f = open_source(p);
    ASSERT_EQ(::truncate(p.c_str(), 3 * kMiB), 0);
    auto r = read_pieces(f, 0, 8 * kMiB, got);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->end, 3 * kMiB);
    ASSERT_EQ(got.holes.size(), 1u);
    EXPECT_EQ(got.holes[0].offset + got.holes[0].length, 3 * kMiB);
}

// The server hashes a hole as zeros without reading it and says which
// blocks are all hole.
TEST_F(Sparse, BlockHashesOfHolesAreZerosAndMarked) {
    const uint64_t size = 700 * kMiB;
    ok(OpMsg{.lsn = 1, .kind = OpKind::create, .path = "f", .mode = 0100644u});
    ok(OpMsg{.lsn = 2, .kind = OpKind::write, .path = "f", .size = size,
             .extents = {proto::make_extent(300 * kMiB, std::string(4096, 'x'), false)}});
    auto h = applier_->hashes(proto::HashRequest{.id = 1, .path = "f"});
    ASSERT_TRUE(h) << h.error().message;
    uint32_t bs = h->block_size;
    uint64_t blocks = (size + bs - 1) / bs;
    ASSERT_EQ(h->hashes.size(), 16 * blocks);
    ASSERT_EQ(h->hole_blocks.size(), (blocks + 7) / 8);
    std::string zeros(bs, '\0');
    std::string zero_hash = block_hash(zeros.data(), zeros.size());
    uint64_t data_block = 300 * kMiB / bs;
    for (uint64_t k = 0; k < blocks; ++k) {
        if (k == data_block) continue;
        ASSERT_TRUE(h->hole_block(k)) << k;
        ASSERT_EQ(h->hashes.substr(k * 16, 16), zero_hash) << k;
    }
    EXPECT_FALSE(h->hole_block(data_block));
    auto block = pread_at(at("f"), data_block * bs, bs);
    EXPECT_EQ(h->hashes.substr(data_block * 16, 16), block_hash(block.data(), block.size()));
}

// A write that carries holes punches them: the bytes read as zeros and the
// blocks are gone.
TEST_F(Sparse, AWriteWithHolesPunchesThem) {
    ok(content_ops(1, "f", std::string(4 * kMiB, 'd'), t(1), kMiB));
    ASSERT_GE(allocated(at("f")), 4 * kMiB);
    OpMsg w{.lsn = 2, .kind = OpKind::write, .path = "f", .mtime_ns = t(2), .size = 4 * kMiB};
    w.holes = {{kMiB, 2 * kMiB}};
    w.extents = {proto::make_extent(3 * kMiB, "new", false)};
    ok(w);
    EXPECT_EQ(fs::file_size(at("f")), 4 * kMiB);
    EXPECT_EQ(pread_at(at("f"), kMiB - 1, 2 * kMiB + 2), "d" + std::string(2 * kMiB, '\0') + "n");
    EXPECT_EQ(pread_at(at("f"), 3 * kMiB, 4), "newd");
    EXPECT_LE(allocated(at("f")), 2 * kMiB + 4096);
    EXPECT_EQ(test::mtime_ns(at("f")), t(2));
}

// A delta onto a sparse copy: the copy it starts from keeps its holes, and
// a hole the source punched since is punched in the new content too.
TEST_F(Sparse, ADeltaKeepsTheCopysHolesAndPunchesNewOnes) {
    const uint64_t size = 64 * kMiB;
    OpMsg w{.lsn = 1, .kind = OpKind::write, .path = "f", .mtime_ns = t(1), .size = size};
    w.extents = {proto::make_extent(0, std::string(kMiB, 'a'), false),
                 proto::make_extent(32 * kMiB, std::string(kMiB, 'b'), false)};
    ok(w);
    ASSERT_LE(allocated(at("f")), 2 * kMiB + 2 * 4096);
    OpMsg begin{.lsn = 2, .kind = OpKind::content_begin, .path = "f", .base = ContentBase::existing};
    begin.extents = {proto::make_extent(16 * kMiB, "patch", false)};
    begin.holes = {{32 * kMiB, kMiB}};
    ok(begin);
    ok(OpMsg{.lsn = 2, .kind = OpKind::content_end, .path = "f", .mtime_ns = t(2), .size = size});
    EXPECT_EQ(fs::file_size(at("f")), size);
    EXPECT_EQ(pread_at(at("f"), 0, kMiB), std::string(kMiB, 'a'));
    EXPECT_EQ(pread_at(at("f"), 16 * kMiB - 1, 7), std::string("\0patch\0", 7));
    EXPECT_EQ(pread_at(at("f"), 32 * kMiB, kMiB), std::string(kMiB, '\0'));
    // The megabyte of 'a' and the patch's block (one block per extent).
    EXPECT_LE(allocated(at("f")), kMiB + 2 * 4096);
}

// The server's version kept aside as a conflict copy keeps its holes too.
TEST_F(Sparse, AConflictCopyKeepsTheHoles) {
    const uint64_t size = 64 * kMiB;
    ok(OpMsg{.lsn = 1, .kind = OpKind::write, .path = "f", .mtime_ns = t(1), .size = size,
             .extents = {proto::make_extent(0, "first", false)}});
    settle();
    // Changed behind the replicator's back, still sparse.
    make_sparse(at("f"), size, {{8 * kMiB, "server's own"}});
    ok(OpMsg{.lsn = 2, .kind = OpKind::write, .path = "f", .mtime_ns = t(2), .size = size,
             .extents = {proto::make_extent(0, "second", false)}});
    std::string copy;
    for (auto& e : fs::directory_iterator(root_))
        if (e.path().filename().string().starts_with("f.conflict-")) copy = e.path().filename();
    ASSERT_FALSE(copy.empty()) << test::listing(root_);
    EXPECT_EQ(fs::file_size(at(copy)), size);
    EXPECT_EQ(pread_at(at(copy), 8 * kMiB, 12), "server's own");
    EXPECT_LE(allocated(at(copy)), 2 * 4096u);
}

}  // namespace
}  // namespace iz::replicator::test_apply
