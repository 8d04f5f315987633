// End to end, forwards of writes as ranges (protocol version 6): two real
// izwatch agents in send-receive mode and one real izreplicate. A makes a
// large sparse file, then rewrites 4 KiB in the middle of it, then writes
// it twice while B is stopped. B's copy is equal to A's and the server's
// by the full manifest and by what it takes on disk (holes stay holes),
// and the server's metrics show what it sent B: the rewrite costs about
// the block A shipped, not the file's data. A local change on B under a
// forwarded range is not patched over: B asks for that write whole.
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <regex>

#include "e2e_share_fixture.hpp"
#include "support/process.hpp"
#include "support/tree.hpp"

namespace fs = std::filesystem;

namespace iz::test::e2e {
namespace {

constexpr uint16_t kMetricsPort = 9471;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kFileBytes = 64 * kMiB;

std::string random_bytes(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string out(n, '\0');
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v = rng();
        std::memcpy(out.data() + i, &v, 8);
    }
    return out;
}

void pwrite_at(const fs::path& p, uint64_t offset, const std::string& bytes, bool create = false) {
    int fd = ::open(p.c_str(), O_WRONLY | (create ? O_CREAT | O_TRUNC : 0) | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << p << ": " << std::strerror(errno);
    if (create) {
        ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(kFileBytes)), 0) << std::strerror(errno);
    }
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(bytes.size()))
        << p << ": " << std::strerror(errno);
    ::close(fd);
}

class ShareRanges : public ShareFixture {
protected:
    ShareRanges() : ShareFixture("ranges") {}

    std::vector<std::string> server_args() const override { return {"--metrics", metrics_address()}; }
    std::string metrics_address() const { return fmt::format("{}:{}", link_->address_b(), kMetricsPort); }

    // iz_server_forwarded_bytes_total for agent `agent`, from the server's page.
    uint64_t forwarded_to(const std::string& agent) {
        auto r = run_process(agents_ns_->exec(
            {"curl", "-sf", "--max-time", "5", "http://" + metrics_address() + "/metrics"}));
        EXPECT_EQ(r.exit_code, 0) << r.err;
        std::regex line("iz_server_forwarded_bytes_total\\{([^}]*)\\} ([0-9]+)");
        for (std::sregex_iterator it(r.out.begin(), r.out.end(), line), end; it != end; ++it)
            if ((*it)[1].str().find("agent=\"" + agent + "\"") != std::string::npos)
                return std::stoull((*it)[2].str());
        ADD_FAILURE() << "no iz_server_forwarded_bytes_total for agent " << agent << " in:\n" << r.out;
        return 0;
    }

    // A, B and the server equal by the full manifest, and B's copies take
    // no more room than A's (a hole made dense would).
    void expect_equal_and_sparse(const std::string& when) {
        expect_all_equal(when);
        EXPECT_EQ(allocation_excess(a_->dir(), b_->dir()), "") << when;
        EXPECT_EQ(allocation_excess(a_->dir(), replica()), "") << when;
        auto ba = allocations(a_->dir()), bb = allocations(b_->dir());
        ASSERT_TRUE(ba.count("big.img") && bb.count("big.img")) << when;
        EXPECT_EQ(bb["big.img"].blocks, ba["big.img"].blocks) << when << ": " << bb["big.img"].extent_map << " vs "
                                                              << ba["big.img"].extent_map;
    }
};

TEST_F(ShareRanges, SparseFileAndSmallRewriteTravelAsRanges) {
    start(*a_, "a");
    start(*b_, "b");
    auto big = a_->dir() / "big.img";
    // 64 MiB: 4 MiB of data at its start and at its middle, holes between.
    pwrite_at(big, 0, random_bytes(4 * kMiB, 1), true);
    pwrite_at(big, 32 * kMiB, random_bytes(4 * kMiB, 2));
    sync(*a_);
    sync(*b_);
    expect_equal_and_sparse("after the sparse file was made");
    uint64_t made = forwarded_to("b");
    fmt::print("bytes forwarded to B for the sparse file: {}\n", made);

    // 4 KiB in the middle: one 64 KiB block shipped, and forwarded.
    pwrite_at(big, 33 * kMiB + 8192, random_bytes(4096, 3));
    sync(*a_);
    sync(*b_);
    expect_equal_and_sparse("after 4 KiB were rewritten");
    uint64_t rewrite = forwarded_to("b") - made;
    fmt::print("bytes forwarded to B for the 4 KiB rewrite: {}\n", rewrite);
    EXPECT_LT(rewrite, 256u << 10) << "the rewrite was forwarded with more than its ranges";

    // Three writes of different places while B is stopped: one forward
    // carries the later ones' bytes, each range once.
    ASSERT_EQ(b_->stop().exit_code, 0);
    for (uint64_t i = 0; i < 3; ++i) {
        pwrite_at(big, (10 + 10 * i) * kMiB, random_bytes(4096, 10 + i));
        sync(*a_);
    }
    uint64_t before = forwarded_to("b");
    start(*b_, "b");
    sync(*b_);
    expect_equal_and_sparse("after three writes B received at once");
    uint64_t three = forwarded_to("b") - before;
    fmt::print("bytes forwarded to B for three pending writes: {}\n", three);
    EXPECT_LT(three, 3 * (256u << 10));

    // A local change on B where A's next write does not reach: B's copy is
    // not the one A's ranges patch. B's change goes first (it is acked), A
    // then writes elsewhere having seen it; B asks for that write whole and
    // ends equal, holding both changes.
    pwrite_at(b_->dir() / "big.img", 50 * kMiB, random_bytes(4096, 20));
    sync(*b_);
    sync(*a_);
    pwrite_at(big, 2 * kMiB, random_bytes(4096, 21));
    sync(*a_);
    sync(*b_);
    expect_equal_and_sparse("after a local change on B and a write of A");
    EXPECT_EQ(read_file(b_->dir() / "big.img").substr(50 * kMiB, 4096), random_bytes(4096, 20));
    EXPECT_EQ(read_file(b_->dir() / "big.img").substr(2 * kMiB, 4096), random_bytes(4096, 21));
}

}  // namespace
}  // namespace iz::test::e2e
