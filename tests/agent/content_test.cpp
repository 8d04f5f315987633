// File content: writes are journaled with the exact byte ranges eBPF saw
// (coalesced), then a close_write; truncates with the new size; without
// eBPF a write record names the whole file (no ranges). A burst of small
// writes is coalesced into a few records.
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <atomic>
#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "agent_fixture.hpp"
#include "replay.hpp"

namespace iz::test::agent {
namespace {

using Strings = std::vector<std::string>;
using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;
constexpr uint64_t kMiB = 1 << 20;

class Content : public AgentOn {
protected:
    int open_fd(const std::string& rel, int flags) {
        int fd = ::open(at(rel).c_str(), flags | O_CLOEXEC, 0644);
        EXPECT_GE(fd, 0) << rel;
        return fd;
    }
    int64_t mtime_ns(const std::string& rel) {
        struct stat st{};
        EXPECT_EQ(::stat(at(rel).c_str(), &st), 0);
        return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    }
};

// Merges touching and overlapping ranges, as the journal's coalesce() does.
Ranges merged(Ranges rs) {
    std::sort(rs.begin(), rs.end());
    Ranges out;
    for (auto& [off, len] : rs) {
        if (!out.empty() && off <= out.back().first + out.back().second)
            out.back().second = std::max(out.back().first + out.back().second, off + len) - out.back().first;
        else
            out.emplace_back(off, len);
    }
    return out;
}

TEST_P(Content, WriteThenCloseWrite) {
    write_file(at("f"), "");
    ASSERT_NO_FATAL_FAILURE(start());
    int fd = open_fd("f", O_WRONLY);
    ASSERT_EQ(::pwrite(fd, "hello", 5, 0), 5);
    ::close(fd);
    auto got = changes();
    ASSERT_EQ(describe(got), (Strings{"write f", "close_write f"}));
    EXPECT_EQ(ranges_of(got[0]), (Ranges{{0, 5}}));
    EXPECT_EQ(got[0].value("size", 0), 5);
    EXPECT_EQ(got[0].value("pid", 0), getpid());
    // The content version: the file as it was closed.
    EXPECT_EQ(got[1].value("size", 0), 5);
    EXPECT_EQ(got[1].value("mtime_ns", int64_t{0}), mtime_ns("f"));
    EXPECT_EQ(got[1].value("pid", 0), getpid());
}

TEST_P(Content, PwritesAtKnownOffsetsGiveExactlyThoseRanges) {
    ASSERT_NO_FATAL_FAILURE(start());
    int fd = open_fd("p", O_CREAT | O_WRONLY);
    pwrite_all(fd, 0, 4096);
    pwrite_all(fd, kMiB, 4096);
    ::close(fd);
    auto got = changes();
    ASSERT_EQ(describe(got), (Strings{"create p", "write p", "close_write p"}));
    EXPECT_EQ(ranges_of(got[1]), (Ranges{{0, 4096}, {kMiB, 4096}}));
    EXPECT_EQ(got[1].value("size", uint64_t{0}), kMiB + 4096);
}

// The same, with the agent lagging: the file's create event is read apart
// from its writes' modify events, after the writes. fanotify merges an
// event only into the latest 128 of its hash bucket, so with the agent
// stopped, tens of thousands of other creations between them keep the two
// apart. The file was born while eBPF watched, so its ranges are all of its
// content; they were journaled whole-file instead, as for a file written
// before it had a name (under load, 1 run in about 300 of the test above).
TEST_P(Content, PwritesReadAfterTheirCreateWasLateGiveExactlyThoseRanges) {
    make_dir(at("many"));
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    int fd = open_fd("p", O_CREAT | O_WRONLY);
    for (int i = 0; i < 30000; ++i) {
        int other = ::open(at(fmt::format("many/{}", i)).c_str(), O_CREAT | O_RDONLY | O_CLOEXEC, 0644);
        ASSERT_GE(other, 0) << std::strerror(errno);
        ::close(other);
    }
    pwrite_all(fd, 0, 4096);
    pwrite_all(fd, kMiB, 4096);
    ::close(fd);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    auto got = changes();
    auto writes = with_op(got, "write", "p");
    ASSERT_EQ(writes.size(), 1u);
    EXPECT_EQ(ranges_of(writes[0]), (Ranges{{0, 4096}, {kMiB, 4096}})) << writes[0].dump();
    EXPECT_EQ(writes[0].value("size", uint64_t{0}), kMiB + 4096);
}

TEST_P(Content, AdjacentWritesAreOneRange) {
    ASSERT_NO_FATAL_FAILURE(start());
    int fd = open_fd("p", O_CREAT | O_WRONLY);
    pwrite_all(fd, 4096, 4096);
    pwrite_all(fd, 0, 4096);
    pwrite_all(fd, 8192, 100);
    ::close(fd);
    auto got = changes();
    ASSERT_EQ(describe(got), (Strings{"create p", "write p", "close_write p"}));
    EXPECT_EQ(ranges_of(got[1]), (Ranges{{0, 8292}}));
}

TEST_P(Content, OverwriteInTheMiddleIsJustThoseBytes) {
    write_file(at("f"), std::string(100000, 'a'));
    ASSERT_NO_FATAL_FAILURE(start());
    int fd = open_fd("f", O_WRONLY);
    pwrite_all(fd, 50000, 10, 'b');
    ::close(fd);
    auto got = changes();
    ASSERT_EQ(describe(got), (Strings{"write f", "close_write f"}));
    EXPECT_EQ(ranges_of(got[0]), (Ranges{{50000, 10}}));
    EXPECT_EQ(got[0].value("size", 0), 100000);
}

TEST_P(Content, TruncateGivesTheNewSize) {
    write_file(at("f"), std::string(10000, 'a'));
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::truncate(at("f").c_str(), 100), 0);
    auto got = changes();
    ASSERT_EQ(describe(got), Strings{"truncate f"});
    EXPECT_EQ(got[0].value("size", 0), 100);
    EXPECT_EQ(got[0].value("pid", 0), getpid());
}

TEST_P(Content, ExtendingTruncateGivesTheNewSize) {
    write_file(at("f"), "0123456789");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::truncate(at("f").c_str(), kMiB), 0);
    auto got = changes();
    ASSERT_EQ(describe(got), Strings{"truncate f"});
    EXPECT_EQ(got[0].value("size", uint64_t{0}), kMiB);
}

TEST_P(Content, ACutThenAnExtensionKeepTheCut) {
    // Bytes past the cut are zeros after the extension: a replay that only
    // saw the final size would keep the old bytes there.
    write_file(at("f"), std::string(10000, 'a'));
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::truncate(at("f").c_str(), 300), 0);
    ASSERT_EQ(::truncate(at("f").c_str(), 20000), 0);
    auto got = changes();
    ASSERT_EQ(describe(got), (Strings{"truncate f", "truncate f"}));
    EXPECT_EQ(got[0].value("size", 0), 300);
    EXPECT_EQ(got[1].value("size", 0), 20000);
}

TEST_P(Content, RewriteWithOTruncIsTruncateThenWrite) {
    write_file(at("f"), "0123456789");
    ASSERT_NO_FATAL_FAILURE(start());
    int fd = open_fd("f", O_WRONLY | O_TRUNC);
    ASSERT_EQ(::write(fd, "ab", 2), 2);
    ::close(fd);
    auto got = changes();
    ASSERT_EQ(describe(got), (Strings{"truncate f", "write f", "close_write f"}));
    EXPECT_EQ(got[0].value("size", -1), 0);
    EXPECT_EQ(ranges_of(got[1]), (Ranges{{0, 2}}));
    EXPECT_EQ(got[1].value("size", 0), 2);
}

TEST_P(Content, WithoutBpfAWriteNamesTheWholeFile) {
    ASSERT_NO_FATAL_FAILURE(start({"--no-bpf"}));
    EXPECT_EQ(watch().status().value("capture", ""), "fanotify only");
    int fd = open_fd("p", O_CREAT | O_WRONLY);
    pwrite_all(fd, 0, 4096);
    pwrite_all(fd, kMiB, 4096);
    ::close(fd);
    auto got = changes();
    ASSERT_EQ(describe(got), (Strings{"create p", "write p", "close_write p"}));
    EXPECT_TRUE(names_whole_file(got[1])) << got[1].dump();
    EXPECT_EQ(got[1].value("size", uint64_t{0}), kMiB + 4096);
}

TEST_P(Content, WithoutBpfAShrinkIsTruncateAndWholeFileWrite) {
    write_file(at("f"), std::string(10000, 'a'));
    ASSERT_NO_FATAL_FAILURE(start({"--no-bpf"}));
    ASSERT_EQ(::truncate(at("f").c_str(), 100), 0);
    auto got = changes();
    ASSERT_EQ(describe(got), (Strings{"truncate f", "write f"}));
    EXPECT_EQ(got[0].value("size", 0), 100);
    EXPECT_TRUE(names_whole_file(got[1])) << got[1].dump();
}

TEST_P(Content, ABurstOfSmallAppendsIsCoalesced) {
    ASSERT_NO_FATAL_FAILURE(start());
    int fd = open_fd("log", O_CREAT | O_WRONLY | O_APPEND);
    std::string line(99, 'x');
    line += '\n';
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(::write(fd, line.data(), line.size()), 100);
    ::close(fd);
    auto got = changes();
    auto writes = with_op(got, "write", "log");
    ASSERT_FALSE(writes.empty());
    EXPECT_LE(writes.size(), 20u) << "1000 appends in a burst should coalesce";
    Ranges all;
    for (auto& w : writes)
        for (auto& r : ranges_of(w)) all.push_back(r);
    EXPECT_EQ(merged(all), (Ranges{{0, 100000}}));
    EXPECT_EQ(writes.back().value("size", 0), 100000);
    EXPECT_EQ(with_op(got, "close_write", "log").size(), 1u);
    EXPECT_EQ(with_op(got, "create", "log").size(), 1u);
    EXPECT_EQ(got.size(), writes.size() + 2) << ::testing::PrintToString(describe(got));
}

// What `cp -a` does to each file (create, write, set mode and times, close)
// reaches the agent as one merged event when it reads after the fact. The
// content is journaled once, as the whole file (the times set before the
// events were read make it a file whose content no range describes), and
// replaying the journal gives the same tree.
TEST_P(Content, ACopiedFileIsJournaledWithOneWholeFileWrite) {
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    constexpr int kFiles = 20;
    for (int i = 0; i < kFiles; ++i) {
        auto name = "f" + std::to_string(i);
        int fd = open_fd(name, O_WRONLY | O_CREAT | O_EXCL);
        std::string data(static_cast<size_t>(i) * 5000 + 1, static_cast<char>('a' + i));
        EXPECT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
        EXPECT_EQ(::fchmod(fd, 0640), 0);
        struct timespec times[2] = {{1'600'000'000, 0}, {1'600'000'000 + i, 0}};
        EXPECT_EQ(::futimens(fd, times), 0);
        ::close(fd);
    }
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    auto got = changes();
    for (int i = 0; i < kFiles; ++i) {
        auto name = "f" + std::to_string(i);
        auto writes = std::count_if(got.begin(), got.end(), [&](const json& r) {
            return r.value("op", "") == "write" && r.value("path", "") == name;
        });
        EXPECT_EQ(writes, 1) << name << "\n" << fmt::format("{}", fmt::join(describe(got), "\n"));
        for (auto& r : got)
            if (r.value("op", "") == "write" && r.value("path", "") == name) {
                EXPECT_TRUE(names_whole_file(r)) << r.dump();
                EXPECT_EQ(r.value("size", 0), i * 5000 + 1) << r.dump();
            }
    }
    std::vector<std::string> problems;
    EXPECT_EQ(differences(replay(watch().journal(), problems), list_tree(root())), Strings{});
    EXPECT_EQ(problems, Strings{});
}

// Appends while `izwatch sync` runs in a loop. A write's range event comes
// before the write moves the file's size (ext4's write_end, XFS's buffered
// write at its start), and the agent, woken by that event or by a sync,
// can flush the file in between: every appended byte must still be named
// by a write record (a range, or a whole-file write), never skipped.
TEST_P(Content, AppendsDuringSyncsLeaveNoGapInTheWrittenRanges) {
    ASSERT_NO_FATAL_FAILURE(start());
    std::atomic<bool> done{false};
    std::thread appender([&] {
        int fd = open_fd("log", O_CREAT | O_WRONLY | O_APPEND);
        for (int i = 0; !done; ++i) {
            auto line = fmt::format("line {:014}\n", i);  // 20 bytes
            if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) break;
        }
        ::close(fd);
    });
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(4);
    while (std::chrono::steady_clock::now() < until) sync();
    done = true;
    appender.join();
    auto got = changes();
    struct stat st{};
    ASSERT_EQ(::stat(at("log").c_str(), &st), 0);
    auto size = static_cast<uint64_t>(st.st_size);
    // What a replica applying the records would have been sent.
    Ranges named;
    for (auto& w : with_op(got, "write", "log")) {
        if (names_whole_file(w)) named.emplace_back(0, w.value("size", uint64_t{0}));
        for (auto& r : ranges_of(w)) named.push_back(r);
    }
    EXPECT_EQ(merged(named), (Ranges{{0, size}})) << with_op(got, "write", "log").size() << " write records";
}

INSTANTIATE_TEST_SUITE_P(Filesystems, Content, ::testing::Values(FsType::ext4, FsType::xfs), fs_param_name);

// Content that reaches a file without the buffered write path.
class ContentElsewhere : public Content {
protected:
    // One pwrite of `data` at `offset` through io_submit (raw syscalls).
    // `aligned` (for O_DIRECT) holds the same bytes as `data` when given.
    void aio_pwrite(int fd, const std::string& data, uint64_t offset, const void* aligned = nullptr) {
        aio_context_t ctx = 0;
        ASSERT_EQ(::syscall(SYS_io_setup, 4, &ctx), 0) << std::strerror(errno);
        iocb cb{};
        cb.aio_fildes = static_cast<uint32_t>(fd);
        cb.aio_lio_opcode = IOCB_CMD_PWRITE;
        cb.aio_buf = reinterpret_cast<uint64_t>(aligned ? aligned : data.data());
        cb.aio_nbytes = data.size();
        cb.aio_offset = static_cast<int64_t>(offset);
        iocb* cbs[1] = {&cb};
        EXPECT_EQ(::syscall(SYS_io_submit, ctx, 1, cbs), 1) << std::strerror(errno);
        io_event ev{};
        EXPECT_EQ(::syscall(SYS_io_getevents, ctx, 1, 1, &ev, nullptr), 1);
        EXPECT_EQ(ev.res, static_cast<int64_t>(data.size()));
        ::syscall(SYS_io_destroy, ctx);
    }
    void libaio_write_then_close() {
        int fd = open_fd("f", O_WRONLY);
        ASSERT_NO_FATAL_FAILURE(aio_pwrite(fd, std::string(1600, 'a'), 0));
        ::close(fd);
    }
};

// libaio raises no modify event, only the close: that close finds the write.
TEST_P(ContentElsewhere, ALibaioWriteIsJournaledAtItsClose) {
    write_file(at("f"), "");
    ASSERT_NO_FATAL_FAILURE(start());
    libaio_write_then_close();
    auto got = changes();
    ASSERT_EQ(describe(got), (Strings{"write f", "close_write f"}));
    EXPECT_EQ(ranges_of(got[0]), (Ranges{{0, 1600}}));
    EXPECT_EQ(got[0].value("size", 0), 1600);
    EXPECT_EQ(got[1].value("size", 0), 1600);
}

// A cut by truncate(2) (a modify event and no close), then an O_DIRECT
// libaio write across the new end (a close and no modify event): the
// close still finds the write.
TEST_P(ContentElsewhere, ALibaioDirectWriteAfterATruncateIsJournaledAtItsClose) {
    write_file(at("f"), std::string(8192, 'o'));
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::truncate(at("f").c_str(), 5700), 0) << std::strerror(errno);
    // The truncate journaled on its own (past the coalescing window): no
    // close ever follows a truncate(2), so the next close is the write's.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_EQ(described_changes(), (Strings{"truncate f"}));
    mark();
    int fd = open_fd("f", O_WRONLY | O_DIRECT);
    void* buf = nullptr;
    ASSERT_EQ(::posix_memalign(&buf, 4096, 8192), 0);
    std::memset(buf, 'd', 8192);
    ASSERT_NO_FATAL_FAILURE(aio_pwrite(fd, std::string(static_cast<char*>(buf), 8192), 4096, buf));
    std::free(buf);
    ::close(fd);
    auto got = changes();
    Ranges written;
    int64_t last_size = -1;
    for (auto& r : got) {
        if (r.value("op", "") == "write")
            for (auto& range : ranges_of(r)) written.push_back(range);
        if (r.value("op", "") == "write" && names_whole_file(r)) written.push_back({0, 12288});
        if (r.contains("size")) last_size = r.value("size", 0);
    }
    auto covered = merged(written);
    EXPECT_TRUE(std::any_of(covered.begin(), covered.end(),
                            [](auto& r) { return r.first <= 4096 && r.first + r.second >= 12288; }))
        << fmt::format("written {} in {}", covered, describe(got));
    EXPECT_EQ(last_size, 12288) << fmt::format("{}", describe(got));
}

// A libaio write's eBPF range comes when it begins, and can be taken by
// the flush of the file's earlier close (here: the agent stopped until
// both are queued), while the write may still be in flight for all that
// flush knows. Its own close (no modify event, the size unchanged) still
// journals its range.
TEST_P(ContentElsewhere, ALibaioWriteWhoseRangeAnEarlierCloseTookIsJournaledAtItsClose) {
    write_file(at("f"), std::string(32768, 'o'));
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    int fd = open_fd("f", O_WRONLY);
    pwrite_all(fd, 0, 100, 'b');
    ::close(fd);
    void* buf = nullptr;
    ASSERT_EQ(::posix_memalign(&buf, 4096, 8192), 0);
    std::memset(buf, 'd', 8192);
    int aio_fd = open_fd("f", O_WRONLY | O_DIRECT);
    ASSERT_NO_FATAL_FAILURE(aio_pwrite(aio_fd, std::string(static_cast<char*>(buf), 8192), 8192, buf));
    std::free(buf);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto before = changes();
    ASSERT_FALSE(before.empty());
    EXPECT_EQ(before.back().value("op", ""), "close_write");
    mark();
    ::close(aio_fd);
    auto got = changes();
    ASSERT_EQ(describe(got), (Strings{"write f", "close_write f"}));
    auto ranges = merged(ranges_of(got[0]));
    EXPECT_TRUE(std::any_of(ranges.begin(), ranges.end(),
                            [](auto& r) { return r.first <= 8192 && r.first + r.second >= 16384; }))
        << got[0].dump();
}

// A file its program keeps open raises no close either: the sync journals
// the write's exact range from eBPF alone.
TEST_P(ContentElsewhere, ALibaioWriteToAFileKeptOpenIsJournaledAtASync) {
    write_file(at("f"), std::string(16384, 'o'));
    ASSERT_NO_FATAL_FAILURE(start());
    int fd = open_fd("f", O_WRONLY);
    ASSERT_NO_FATAL_FAILURE(aio_pwrite(fd, std::string(1000, 'a'), 5000));
    auto got = changes();
    ::close(fd);
    ASSERT_EQ(describe(got), (Strings{"write f"}));
    EXPECT_EQ(ranges_of(got[0]), (Ranges{{5000, 1000}}));
    EXPECT_EQ(got[0].value("size", 0), 16384);
}

// Nor does it need a sync: ranges no event claims become a write soon.
TEST_P(ContentElsewhere, ALibaioWriteToAFileKeptOpenIsJournaledWithoutASync) {
    write_file(at("f"), std::string(16384, 'o'));
    ASSERT_NO_FATAL_FAILURE(start());
    int fd = open_fd("f", O_WRONLY);
    ASSERT_NO_FATAL_FAILURE(aio_pwrite(fd, std::string(1000, 'a'), 5000));
    std::vector<json> got;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (got.empty() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        got = mutations_after(watch().journal(), mark_);
    }
    ::close(fd);
    ASSERT_EQ(describe(got), (Strings{"write f"}));
    EXPECT_EQ(ranges_of(got[0]), (Ranges{{5000, 1000}}));
}

TEST_P(ContentElsewhere, WithoutBpfALibaioWriteIsJournaledAtItsClose) {
    write_file(at("f"), "");
    ASSERT_NO_FATAL_FAILURE(start({"--no-bpf"}));
    libaio_write_then_close();
    auto got = changes();
    ASSERT_EQ(describe(got), (Strings{"write f", "close_write f"}));
    EXPECT_TRUE(names_whole_file(got[0])) << got[0].dump();
    EXPECT_EQ(got[0].value("size", 0), 1600);
}

// A close of a file opened for writing and left alone journals nothing.
TEST_P(ContentElsewhere, ACloseWithoutAWriteJournalsNothing) {
    write_file(at("f"), "unchanged");
    ASSERT_NO_FATAL_FAILURE(start({"--no-bpf"}));
    ::close(open_fd("f", O_WRONLY));
    EXPECT_EQ(described_changes(), Strings{});
}

// Stores through a shared mapping, the descriptor closed before them: no
// write syscall and no fanotify event. The file is journaled whole.
TEST_P(ContentElsewhere, StoresThroughAMappingAreAWholeFileWrite) {
    write_file(at("f"), std::string(65536, 'a'));
    ASSERT_NO_FATAL_FAILURE(start());
    int fd = open_fd("f", O_RDWR);
    void* map = ::mmap(nullptr, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    ASSERT_NE(map, MAP_FAILED);
    std::memset(static_cast<char*>(map) + 30000, 'M', 10);
    ASSERT_EQ(::msync(map, 65536, MS_SYNC), 0);
    ::munmap(map, 65536);
    auto got = changes();
    auto writes = with_op(got, "write", "f");
    ASSERT_FALSE(writes.empty()) << ::testing::PrintToString(describe(got));
    EXPECT_TRUE(names_whole_file(writes.back())) << writes.back().dump();
    EXPECT_EQ(writes.back().value("mtime_ns", int64_t{0}), mtime_ns("f"));
}

// A write and a copy into the same open: one merged modify event, both
// ranges (XFS shares the copied extents, where no write tracepoint fires;
// a clone likewise).
TEST_P(ContentElsewhere, ACopyAfterAWriteInTheSameOpenNamesBothRanges) {
    write_file(at("src"), std::string(256 * 1024, 's'));
    write_file(at("dst"), std::string(256 * 1024, 'd'));
    ASSERT_NO_FATAL_FAILURE(start());
    int src = open_fd("src", O_RDONLY);
    int dst = open_fd("dst", O_RDWR);
    pwrite_all(dst, 0, 4096, 'A');
    loff_t in = 65536, out = 65536;
    ASSERT_EQ(::copy_file_range(src, &in, dst, &out, 65536, 0), 65536);
    Ranges expected{{0, 4096}, {65536, 65536}};
    if (GetParam() == FsType::xfs) {
        file_clone_range r{};
        r.src_fd = src;
        r.src_offset = 131072;
        r.src_length = 65536;
        r.dest_offset = 196608;
        ASSERT_EQ(::ioctl(dst, FICLONERANGE, &r), 0) << std::strerror(errno);
        expected = {{0, 4096}, {65536, 65536}, {196608, 65536}};
    }
    ::close(src);
    ::close(dst);
    auto got = changes();
    auto writes = with_op(got, "write", "dst");
    ASSERT_FALSE(writes.empty()) << ::testing::PrintToString(describe(got));
    Ranges all;
    for (auto& w : writes) {
        EXPECT_FALSE(names_whole_file(w)) << w.dump();
        for (auto& r : ranges_of(w)) all.push_back(r);
    }
    EXPECT_EQ(merged(all), expected);
}

// ext4 and XFS move the mtime of a collapse they then refuse (unaligned):
// no fanotify event, but the failed call is seen and the file read again.
TEST_P(ContentElsewhere, AFailedFallocateThatMovedTheMtimeIsJournaled) {
    write_file(at("f"), std::string(1 << 20, 'f'));
    ASSERT_NO_FATAL_FAILURE(start());
    int64_t before = mtime_ns("f");  // read: the next update moves it
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    int fd = open_fd("f", O_RDWR);
    EXPECT_NE(::fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 327231, 275591), 0);
    int64_t after = mtime_ns("f");
    auto got = changes();
    ::close(fd);
    if (after == before) GTEST_SKIP() << "this kernel left the mtime alone";
    auto writes = with_op(got, "write", "f");
    ASSERT_EQ(writes.size(), 1u) << ::testing::PrintToString(describe(got));
    EXPECT_EQ(writes[0].value("mtime_ns", int64_t{0}), after);
}

// An O_TMPFILE written, then linked in: its create event is all there is,
// and the content it already has is journaled: with the range eBPF saw
// written (the file was born while it watched), or whole without eBPF.
TEST_P(ContentElsewhere, ALinkedInTmpfileIsJournaledWithItsContent) {
    ASSERT_NO_FATAL_FAILURE(start());
    int fd = ::open(root().c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    pwrite_all(fd, 0, 1600, 't');
    auto proc = "/proc/self/fd/" + std::to_string(fd);
    ASSERT_EQ(::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, at("t").c_str(), AT_SYMLINK_FOLLOW), 0) << std::strerror(errno);
    ::close(fd);
    auto got = changes();
    auto writes = with_op(got, "write", "t");
    ASSERT_EQ(writes.size(), 1u) << ::testing::PrintToString(describe(got));
    if (!names_whole_file(writes[0])) EXPECT_EQ(ranges_of(writes[0]), (Ranges{{0, 1600}})) << writes[0].dump();
    EXPECT_EQ(writes[0].value("size", 0), 1600);
}

INSTANTIATE_TEST_SUITE_P(Filesystems, ContentElsewhere, ::testing::Values(FsType::ext4, FsType::xfs), fs_param_name);

}  // namespace
}  // namespace iz::test::agent
