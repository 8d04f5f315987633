// Where one drain of the fanotify queue ends and the next begins. The
// kernel queues the two moves of renameat2(RENAME_EXCHANGE) one right
// after the other, and a read of the queue can fall between them; the
// capture must still journal one exchange. Real events of a scratch
// filesystem are handed to the capture in two drains split at a chosen
// place, which the daemon's timing only meets now and then.
#include <fcntl.h>
#include <stdio.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "agent/capture.hpp"
#include "agent/fanotify_source.hpp"
#include "journal/reader.hpp"
#include "journal/writer.hpp"
#include "support/scratch_fs.hpp"

namespace iz::agent {
namespace {

namespace fs = std::filesystem;
using test::FsType;
using Strings = std::vector<std::string>;

class DrainBoundary : public ::testing::TestWithParam<FsType> {
protected:
    void SetUp() override {
        auto made = test::ScratchFs::make(GetParam(), 320, "drain");
        ASSERT_TRUE(made) << made.error().message;
        fs_ = std::move(*made);
        root_ = fs_->mount_point() / "w";
        fs::create_directory(root_);
        std::string tmpl = (fs::temp_directory_path() / "iz-drain-journal-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        journal_dir_ = tmpl;
    }
    void TearDown() override {
        capture_.reset();
        writer_.reset();
        fan_.reset();
        if (root_fd_ >= 0) ::close(root_fd_);
        fs_.reset();
        if (!journal_dir_.empty()) fs::remove_all(journal_dir_);
    }

    void write(const std::string& rel, const std::string& data) { std::ofstream(root_ / rel) << data; }
    int rename2(const std::string& from, const std::string& to, unsigned flags) {
        return ::renameat2(AT_FDCWD, (root_ / from).c_str(), AT_FDCWD, (root_ / to).c_str(), flags);
    }

    // The capture journals the tree as it is (the baseline), and fanotify
    // reports what happens from here on.
    void start() {
        journal::WriterOptions wo;
        wo.dir = journal_dir_;
        wo.sync = false;
        wo.preallocate = false;
        auto writer = journal::Writer::open(wo);
        ASSERT_TRUE(writer) << writer.error().message;
        writer_ = std::move(*writer);
        root_fd_ = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_GE(root_fd_, 0) << std::strerror(errno);
        capture_ = std::make_unique<Capture>(root_.string(), root_fd_, std::vector<std::string>{}, *writer_, bpf_ranges_);
        auto ok = capture_->catch_up({}, "baseline");
        ASSERT_TRUE(ok) << ok.error().message;
        auto fan = FanotifySource::open(root_.string());
        ASSERT_TRUE(fan) << fan.error().message;
        fan_ = std::move(*fan);
    }

    std::vector<FanEvent> queued() {
        std::vector<FanEvent> events;
        auto got = fan_->drain([&](const FanEvent& ev) { events.push_back(ev); });
        EXPECT_TRUE(got) << got.error().message;
        return events;
    }

    // The records of tree changes after the baseline, as "op path -> target".
    Strings changes() {
        capture_->flush_writes(true);
        EXPECT_TRUE(writer_->flush());
        auto reader = journal::Reader::open(journal_dir_);
        EXPECT_TRUE(reader) << reader.error().message;
        if (!reader) return {};
        EXPECT_TRUE((*reader)->seek_head());
        Strings out;
        bool baseline_done = false;
        for (;;) {
            auto r = (*reader)->next();
            EXPECT_TRUE(r) << r.error().message;
            if (!r || !*r) break;
            const journal::Record& rec = **r;
            if (rec.op == journal::Op::rescan) {
                baseline_done = true;
                continue;
            }
            if (!baseline_done) continue;
            auto line = fmt::format("{} {}", journal::op_name(rec.op), rec.path);
            if (!rec.target.empty()) line += " -> " + rec.target;
            if (rec.replaced) line += " (replaced)";
            for (auto& r : rec.ranges) line += fmt::format(" {}+{}", r.offset, r.length);
            out.push_back(line);
        }
        return out;
    }

    std::unique_ptr<test::ScratchFs> fs_;
    fs::path root_, journal_dir_;
    int root_fd_ = -1;
    // Set before start(): the capture takes write ranges from the eBPF
    // events a test hands it (on_dirty_range), as the daemon's does.
    bool bpf_ranges_ = false;
    std::unique_ptr<journal::Writer> writer_;
    std::unique_ptr<Capture> capture_;
    std::unique_ptr<FanotifySource> fan_;
};

// Two files exchanged, and one of them moved on, before the events are
// read; the first drain ends right after the exchange's first move. Its
// other half is neither read with it nor at the old name (moved on), so
// only the next drain says it was an exchange: read alone, the move was
// journaled as a rename that replaced g.
TEST_P(DrainBoundary, AnExchangeSplitBetweenTwoDrainsIsOneExchange) {
    write("f", "AAA");
    write("g", "BB");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(rename2("f", "g", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("f", "h", 0), 0) << std::strerror(errno);
    auto events = queued();
    size_t first = 0;
    while (first < events.size() && !(events[first].mask & FAN_RENAME)) ++first;
    ASSERT_LT(first + 1, events.size());
    std::span<const FanEvent> all(events);
    capture_->on_drain(all.first(first + 1));
    capture_->on_drain(all.subspan(first + 1));
    EXPECT_EQ(capture_->held_due_in(), std::nullopt);
    EXPECT_EQ(changes(), (Strings{"exchange f -> g", "rename f -> h"}));
}

// A move onto a name whose file lives on elsewhere (a hard link), the last
// event read: it waits for an other half that never comes, and is
// journaled as the rename it was once released, nothing lost.
TEST_P(DrainBoundary, AMoveHeldForItsOtherHalfIsJournaledWhenNoneComes) {
    write("a", "new");
    write("b", "old");
    ASSERT_EQ(::link((root_ / "b").c_str(), (root_ / "b2").c_str()), 0) << std::strerror(errno);
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(rename2("a", "b", 0), 0) << std::strerror(errno);
    auto events = queued();
    capture_->on_drain(events);
    ASSERT_NE(capture_->held_due_in(), std::nullopt);
    EXPECT_EQ(changes(), Strings{});
    capture_->release_held();
    EXPECT_EQ(capture_->held_due_in(), std::nullopt);
    EXPECT_EQ(changes(), Strings{"rename a -> b (replaced)"});
}

// An extending direct write's eBPF range comes when it begins, and the
// size moves when it completes. A flush for an earlier event of the file
// (a buffered write's close) that comes in between takes the range while
// the write is in flight: it journals the part before the end with bytes
// that may not have landed, and carries the rest. The write's own flush,
// after it completed, must journal its whole range again: with only the
// carried part, the bytes before the old end stayed old on the replica.
TEST_P(DrainBoundary, AnExtendingWriteInFlightAtAnEarlierFlushIsJournaledWholeAtItsOwn) {
    write("f", std::string(8192, 'a'));
    bpf_ranges_ = true;
    ASSERT_NO_FATAL_FAILURE(start());
    struct stat st {};
    ASSERT_EQ(::stat((root_ / "f").c_str(), &st), 0) << std::strerror(errno);
    auto pwrite_file = [&](uint64_t offset, size_t length, char fill) {
        int fd = ::open((root_ / "f").c_str(), O_WRONLY | O_CLOEXEC);
        ASSERT_GE(fd, 0) << std::strerror(errno);
        std::string data(length, fill);
        EXPECT_EQ(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(length));
        ::close(fd);
    };
    auto range = [&](uint64_t offset, uint64_t length) {
        DirtyRangeEvent ev;
        ev.ino = st.st_ino;
        ev.kind = DirtyKind::write;
        ev.offset = offset;
        ev.length = length;
        ev.pid = ::getpid();
        return ev;
    };
    ASSERT_NO_FATAL_FAILURE(pwrite_file(100, 100, 'b'));
    capture_->on_dirty_range(range(100, 100));
    // The direct write of 16384 bytes at 0 has begun: nothing of it landed.
    capture_->on_dirty_range(range(0, 16384));
    capture_->on_drain(queued());  // the buffered write's modify and close
    // It completes: its bytes and the new size are there, and its events.
    ASSERT_NO_FATAL_FAILURE(pwrite_file(0, 16384, 'c'));
    capture_->on_drain(queued());
    EXPECT_EQ(changes(), (Strings{"write f 0+8192", "close_write f", "write f 0+16384", "close_write f"}));
}

INSTANTIATE_TEST_SUITE_P(Filesystems, DrainBoundary, ::testing::Values(FsType::ext4, FsType::xfs),
                         [](const auto& info) { return test::fs_name(info.param); });

}  // namespace
}  // namespace iz::agent
