// The receiver and writes forwarded as ranges (protocol version 6): patched
// over a copy the receiver left as it is, and asked for whole (a new
// connection with whole_through set) over a copy changed here since.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "receiver_rig.hpp"

namespace iz::agent {
namespace {

using namespace test_receiver;
using proto::OpKind;

// The forwards of a write of `path` at `lsn`: `bytes` at `offset`, patched
// over the copy (`existing`) or as the whole file, which is `size` long.
std::vector<proto::Forward> content(uint64_t lsn, const std::string& path, uint64_t offset, const std::string& bytes,
                                    uint64_t size, bool existing) {
    auto begin = forward(lsn, OpKind::content_begin, path);
    begin.op.base = existing ? proto::ContentBase::existing : proto::ContentBase::empty;
    begin.op.mode = 0100644;
    begin.op.more = true;
    begin.op.extents.push_back(proto::make_extent(offset, bytes, false));
    auto end = forward(lsn, OpKind::content_end, path);
    end.op.size = size;
    end.op.mode = 0100644;
    end.op.mtime_ns = 1765000000000000000 + static_cast<int64_t>(lsn);
    return {begin, end};
}

TEST(ReceiverRanges, PatchesItsOwnCopyAndAsksForAChangedOneWhole) {
    test::TempDir root("rr-root"), state("rr-state");
    auto o = receiver_options(root, state);
    std::atomic<int> resubscribed{0};
    o.resubscribe = [&](const std::string&) { ++resubscribed; };
    auto r = open_with(o);
    ASSERT_TRUE(r);
    r->on_connected();
    EXPECT_EQ(r->cursor(), 0u);
    EXPECT_EQ(r->ranges_whole_through(), uint64_t{0});
    for (auto& f : content(1, "f", 0, "aaaaaaaa", 8, false)) r->on_forward(f);
    ASSERT_TRUE(wait_applied(*r, 1));
    for (auto& f : content(2, "f", 2, "XY", 8, true)) r->on_forward(f);
    ASSERT_TRUE(wait_applied(*r, 2));
    EXPECT_EQ(read_file(root / "f"), "aaXYaaaa") << "patched: the copy was the receiver's";

    // Changed here: the next ranges would patch another version.
    {
        int fd = ::open((root / "f").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::write(fd, "local", 5), 5);
        ::close(fd);
    }
    for (auto& f : content(3, "f", 0, "ZZ", 8, true)) r->on_forward(f);
    for (int i = 0; i < 500 && resubscribed.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(resubscribed.load(), 1);
    EXPECT_EQ(r->whole_requests(), 1u);
    EXPECT_EQ(read_file(root / "f"), "aaXYaaaalocal") << "not patched over the local change";
    EXPECT_EQ(r->applied(), 2u);

    // The new connection asks for LSN 3 whole, and gets it so.
    r->on_connected();
    EXPECT_EQ(r->cursor(), 2u);
    EXPECT_EQ(r->ranges_whole_through(), uint64_t{3});
    for (auto& f : content(3, "f", 0, "ZZZZZZZZ", 8, false)) r->on_forward(f);
    ASSERT_TRUE(wait_applied(*r, 3));
    EXPECT_EQ(read_file(root / "f"), "ZZZZZZZZ");
    EXPECT_EQ(resubscribed.load(), 1);

    // A file it never received is not patched either.
    ASSERT_EQ(::close(::open((root / "g").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644)), 0);
    for (auto& f : content(4, "g", 0, "x", 1, true)) r->on_forward(f);
    for (int i = 0; i < 500 && resubscribed.load() == 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(resubscribed.load(), 2);
    EXPECT_EQ(r->applied(), 3u);

    // A noop naming a path: the server found the file of a write sent as
    // ranges replaced, so those ranges never come; the next ones to the
    // copy there are asked for whole too.
    r->on_connected();
    EXPECT_EQ(r->cursor(), 3u);
    for (auto& f : content(4, "g", 0, "x", 1, false)) r->on_forward(f);
    r->on_forward(forward(5, OpKind::noop, "f"));
    ASSERT_TRUE(wait_applied(*r, 5));
    for (auto& f : content(6, "f", 0, "Q", 8, true)) r->on_forward(f);
    for (int i = 0; i < 500 && resubscribed.load() == 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(resubscribed.load(), 3);
    EXPECT_EQ(read_file(root / "f"), "ZZZZZZZZ");
    r->stop();
}

}  // namespace
}  // namespace iz::agent
