// A hole that reaches the end of the file: punched to exactly the size,
// the last block is only partly in the hole, so the filesystem zeroes its
// part and keeps the block; the source's own punch (fallocate past the
// end, as a program punches "the rest") freed it. The replica then took a
// block more than its source for every such file. Allocation is checked
// with st_blocks, on the temporary directory's real disk filesystem.
#include <sys/stat.h>

#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

uint64_t allocated(const fs::path& p) { return static_cast<uint64_t>(lstat_of(p).st_blocks) * 512; }

class SparseTail : public ApplyTest {};

TEST_F(SparseTail, AHoleToTheEndOfTheFileFreesItsLastBlock) {
    constexpr uint64_t size = 31542;  // not a multiple of the block size
    ok(content_ops(1, "f", std::string(size, 'd'), t(1)));
    ASSERT_GE(allocated(at("f")), 28 << 10);
    OpMsg w{.lsn = 2, .kind = OpKind::write, .path = "f", .mtime_ns = t(2), .size = size};
    w.holes = {{12704, size - 12704}};
    ok(w);
    EXPECT_EQ(fs::file_size(at("f")), size);
    EXPECT_EQ(test::read_file(at("f")), std::string(12704, 'd') + std::string(size - 12704, '\0'));
    // The blocks under the first 12704 bytes stay, the rest are freed.
    EXPECT_LE(allocated(at("f")), 16u << 10);
    EXPECT_EQ(test::mtime_ns(at("f")), t(2));
}

}  // namespace
}  // namespace iz::replicator::test_apply
