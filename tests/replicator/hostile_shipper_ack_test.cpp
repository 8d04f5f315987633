// The shipper tells its owner about acks as they arrive (izwatch answers
// pending syncs from that, without polling).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "support/kernel_handle.hpp"
#include "support/tree.hpp"
#include "hostile_server_harness.hpp"
#include "hostile_shipper_options.hpp"
#include "journal/writer.hpp"
#include "replicator/ship/shipper.hpp"

namespace iz::test {
namespace {

// A journal and a shipper to a live in-process server.
struct ShipperRig {
    ServerHarness server;
    journal::WriterOptions wo;
    replicator::ShipperOptions so;

    ShipperRig() {
        so = shipper_options_for(server, "agent-a");
        wo.dir = so.journal_dir;
    }
};

// Appends a record as the capture journals it (a creation carries a plain
// file's or a directory's mode) and returns its LSN; 0, with the test
// failed, when the writer refused it.
uint64_t append_record(journal::Writer& writer, journal::Op op, const std::string& path, const std::string& target,
                       const journal::FileHandle& h) {
    journal::Record r;
    r.op = op;
    r.path = path;
    r.target = target;
    r.handle = h;
    if (op == journal::Op::create) r.mode = S_IFREG | 0644;
    if (op == journal::Op::mkdir) r.mode = S_IFDIR | 0755;
    auto lsn = writer.append(r);
    EXPECT_TRUE(lsn) << lsn.error().message;
    return lsn ? *lsn : 0;
}

TEST(ShipperAcks, EveryAckReachesTheOwnersHook) {
    ShipperRig rig;
    auto& server = rig.server;
    auto writer = journal::Writer::open(rig.wo);
    ASSERT_TRUE(writer) << writer.error().message;

    std::mutex mu;
    std::condition_variable cv;
    int calls = 0;
    rig.so.on_acked = [&] {
        std::lock_guard lock(mu);
        ++calls;
        cv.notify_all();
    };
    auto shipper = replicator::Shipper::start(rig.so);
    ASSERT_TRUE(shipper) << shipper.error().message;

    journal::Record r;
    r.op = journal::Op::start;
    r.message = "test";
    auto lsn = (*writer)->append(r);
    ASSERT_TRUE(lsn);
    ASSERT_TRUE((*writer)->flush());
    (*shipper)->notify(*lsn);

    // Woken by the hook itself, not by polling status().
    std::unique_lock lock(mu);
    bool acked = cv.wait_for(lock, std::chrono::seconds(10), [&] {
        auto st = (*shipper)->status();
        return !st.empty() && st[0].acked_lsn >= *lsn;
    });
    EXPECT_TRUE(acked) << "last error: " << (*shipper)->status()[0].last_error << "\n" << server.all_logs();
    EXPECT_GE(calls, 1);
    lock.unlock();
    (*shipper)->stop();
    ASSERT_TRUE((*writer)->close());
}

// Records in the journal's file but not reported durable stay on the agent:
// one that vanished with the machine would leave its LSN to another record,
// which the server would then skip as applied.
TEST(ShipperAcks, NothingTravelsPastWhatTheWriterReportsDurable) {
    ShipperRig rig;
    auto writer = journal::Writer::open(rig.wo);
    ASSERT_TRUE(writer) << writer.error().message;
    fs::create_directories(rig.server.base() / "src/d1");
    fs::create_directories(rig.server.base() / "src/d2");
    std::vector<uint64_t> lsns;
    for (auto name : {"d1", "d2"}) {
        journal::Record r;
        r.op = journal::Op::mkdir;
        r.path = name;
        r.mode = 040755;
        auto lsn = (*writer)->append(r);
        ASSERT_TRUE(lsn);
        lsns.push_back(*lsn);
    }
    ASSERT_TRUE((*writer)->flush());
    auto shipper = replicator::Shipper::start(rig.so);
    ASSERT_TRUE(shipper) << shipper.error().message;
    (*shipper)->notify(lsns[0]);
    ASSERT_TRUE((*shipper)->wait_acked(lsns[0], std::chrono::seconds(10)))
        << (*shipper)->status()[0].last_error << "\n" << rig.server.all_logs();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a commit every second at most
    EXPECT_EQ((*shipper)->status()[0].acked_lsn, lsns[0]);
    EXPECT_FALSE(fs::exists(rig.server.fileset_root("fs1") / "d2"));
    (*shipper)->notify(lsns[1]);
    EXPECT_TRUE((*shipper)->wait_acked(lsns[1], std::chrono::seconds(10)));
    EXPECT_TRUE(fs::is_directory(rig.server.fileset_root("fs1") / "d2"));
    (*shipper)->stop();
    ASSERT_TRUE((*writer)->close());
}

// A late write and close_write naming an entry that is now a fifo (by its
// handle: the capture took the handle of what the path holds now), after
// the fifo's own mknod: nothing of them travels. An empty file standing in
// for content that cannot be read replaced the fifo on the server.
TEST(ShipperContent, ALateWriteToWhatIsNowAFifoSendsNothing) {
    ShipperRig rig;
    auto writer = journal::Writer::open(rig.wo);
    ASSERT_TRUE(writer) << writer.error().message;
    auto fifo = rig.server.base() / "src/f";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0640), 0);
    auto kernel = test::kernel_handle(AT_FDCWD, fifo.c_str());
    ASSERT_TRUE(kernel) << strerror(errno);
    journal::FileHandle handle = *kernel;
    uint64_t last = 0;
    for (auto op : {journal::Op::mknod, journal::Op::write, journal::Op::close_write}) {
        journal::Record r;
        r.op = op;
        r.path = "f";
        r.handle = handle;
        if (op == journal::Op::mknod) r.mode = S_IFIFO | 0640;
        else r.size = 0;
        auto lsn = (*writer)->append(r);
        ASSERT_TRUE(lsn);
        last = *lsn;
    }
    ASSERT_TRUE((*writer)->flush());
    auto shipper = replicator::Shipper::start(rig.so);
    ASSERT_TRUE(shipper) << shipper.error().message;
    (*shipper)->notify(last);
    ASSERT_TRUE((*shipper)->wait_acked(last, std::chrono::seconds(10)))
        << (*shipper)->status()[0].last_error << "\n" << rig.server.all_logs();
    struct stat st{};
    ASSERT_EQ(::lstat((rig.server.fileset_root("fs1") / "f").c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "mode 0" << std::oct << st.st_mode << "\n" << rig.server.all_logs();
    (*shipper)->stop();
    ASSERT_TRUE((*writer)->close());
}

// A link record names its first name as the agent read it. Here that name
// holds another regular file (b's) on the server when the link arrives,
// and at the source it no longer names the linked object (a's): linked,
// the second name shared b's inode for good (b's bytes, two links, where
// the source has a's bytes in a file of its own). It travels as a's own
// file instead, with a's xattrs; a link whose first name still names the
// object at the source stays a link.
TEST(ShipperLinks, ALinkWhoseFirstNameNoLongerNamesTheObjectTravelsAsTheObjectItself) {
    ShipperRig rig;
    auto writer = journal::Writer::open(rig.wo);
    ASSERT_TRUE(writer) << writer.error().message;
    auto src = rig.server.base() / "src";
    write_file(src / "first", "b's bytes, at the first name\n", 0644);
    write_file(src / "second", "a's bytes, linked under the second name\n", 0640);
    ASSERT_EQ(::setxattr((src / "second").c_str(), "user.tag", "a", 1, 0), 0) << strerror(errno);
    ASSERT_EQ(::link((src / "second").c_str(), (src / "third").c_str()), 0) << strerror(errno);
    auto b = test::kernel_handle(AT_FDCWD, (src / "first").c_str());
    auto a = test::kernel_handle(AT_FDCWD, (src / "second").c_str());
    ASSERT_TRUE(a && b) << strerror(errno);
    uint64_t last = 0;
    auto append = [&](journal::Op op, const std::string& path, const std::string& target, const journal::FileHandle& h) {
        last = append_record(**writer, op, path, target, h);
    };
    append(journal::Op::create, "first", "", *b);
    append(journal::Op::close_write, "first", "", *b);
    append(journal::Op::link, "first", "second", *a);
    append(journal::Op::link, "second", "third", *a);
    ASSERT_TRUE((*writer)->flush());
    auto shipper = replicator::Shipper::start(rig.so);
    ASSERT_TRUE(shipper) << shipper.error().message;
    (*shipper)->notify(last);
    ASSERT_TRUE((*shipper)->wait_acked(last, std::chrono::seconds(10)))
        << (*shipper)->status()[0].last_error << "\n" << rig.server.all_logs();
    auto dst = rig.server.fileset_root("fs1");
    struct stat first{}, second{}, third{};
    ASSERT_EQ(::lstat((dst / "first").c_str(), &first), 0);
    ASSERT_EQ(::lstat((dst / "second").c_str(), &second), 0) << rig.server.all_logs();
    ASSERT_EQ(::lstat((dst / "third").c_str(), &third), 0) << rig.server.all_logs();
    EXPECT_NE(second.st_ino, first.st_ino) << "the second name shares the first name's inode\n" << rig.server.all_logs();
    EXPECT_EQ(first.st_nlink, 1u);
    EXPECT_EQ(read_file(dst / "first"), "b's bytes, at the first name\n");
    EXPECT_EQ(read_file(dst / "second"), "a's bytes, linked under the second name\n");
    EXPECT_EQ(second.st_mode & 07777, 0640u);
    char tag[8] = {};
    EXPECT_EQ(::getxattr((dst / "second").c_str(), "user.tag", tag, sizeof tag), 1) << strerror(errno);
    EXPECT_STREQ(tag, "a");
    // Its first name names the object at the source: a link, as before.
    EXPECT_EQ(third.st_ino, second.st_ino);
    EXPECT_EQ(second.st_nlink, 2u);
    (*shipper)->stop();
    ASSERT_TRUE((*writer)->close());
}

// The usual reason a first name no longer names the object at ship time:
// it was renamed after the link, by a record journaled after it. The
// server has the object at that name when the link applies: still a link.
TEST(ShipperLinks, ALinkWhoseFirstNameMovedOnByALaterRecordStaysALink) {
    ShipperRig rig;
    auto writer = journal::Writer::open(rig.wo);
    ASSERT_TRUE(writer) << writer.error().message;
    auto src = rig.server.base() / "src";
    fs::create_directories(src / "d2");
    write_file(src / "d2/moved", "one file, two names\n", 0644);
    ASSERT_EQ(::link((src / "d2/moved").c_str(), (src / "second").c_str()), 0) << strerror(errno);
    auto h = test::kernel_handle(AT_FDCWD, (src / "second").c_str());
    ASSERT_TRUE(h) << strerror(errno);
    uint64_t last = 0;
    auto append = [&](journal::Op op, const std::string& path, const std::string& target, const journal::FileHandle& h) {
        last = append_record(**writer, op, path, target, h);
    };
    append(journal::Op::mkdir, "d", "", {});
    append(journal::Op::create, "d/first", "", *h);
    append(journal::Op::close_write, "d/first", "", *h);
    append(journal::Op::link, "d/first", "second", *h);
    append(journal::Op::rename, "d/first", "d/moved", *h);
    append(journal::Op::rename, "d", "d2", {});
    ASSERT_TRUE((*writer)->flush());
    auto shipper = replicator::Shipper::start(rig.so);
    ASSERT_TRUE(shipper) << shipper.error().message;
    (*shipper)->notify(last);
    ASSERT_TRUE((*shipper)->wait_acked(last, std::chrono::seconds(10)))
        << (*shipper)->status()[0].last_error << "\n" << rig.server.all_logs();
    auto dst = rig.server.fileset_root("fs1");
    struct stat moved{}, second{};
    ASSERT_EQ(::lstat((dst / "d2/moved").c_str(), &moved), 0) << rig.server.all_logs();
    ASSERT_EQ(::lstat((dst / "second").c_str(), &second), 0) << rig.server.all_logs();
    EXPECT_EQ(moved.st_ino, second.st_ino) << rig.server.all_logs();
    EXPECT_EQ(second.st_nlink, 2u);
    EXPECT_EQ(read_file(dst / "second"), "one file, two names\n");
    (*shipper)->stop();
    ASSERT_TRUE((*writer)->close());
}

// The same move, which the capture journals only once it is settled (a
// busy agent reads its events late, later than any wait the shipper would
// make): the shipper settles the capture before it gives the link up, and
// the link stays a link. Given up, the second name was a file of its own on
// the replica until a verify repaired the group.
TEST(ShipperLinks, ALinkWhoseFirstNameMovedOnByARecordJournaledOnlyWhenSettledStaysALink) {
    ShipperRig rig;
    auto writer = journal::Writer::open(rig.wo);
    ASSERT_TRUE(writer) << writer.error().message;
    auto src = rig.server.base() / "src";
    fs::create_directories(src / "d2");
    write_file(src / "d2/moved", "one file, two names\n", 0644);
    ASSERT_EQ(::link((src / "d2/moved").c_str(), (src / "second").c_str()), 0) << strerror(errno);
    auto h = test::kernel_handle(AT_FDCWD, (src / "second").c_str());
    ASSERT_TRUE(h) << strerror(errno);
    std::atomic<uint64_t> last{0};
    auto append = [&](journal::Op op, const std::string& path, const std::string& target, const journal::FileHandle& h) {
        last = append_record(**writer, op, path, target, h);
    };
    append(journal::Op::mkdir, "d", "", {});
    append(journal::Op::create, "d/first", "", *h);
    append(journal::Op::close_write, "d/first", "", *h);
    append(journal::Op::link, "d/first", "second", *h);
    ASSERT_TRUE((*writer)->flush());
    uint64_t link = last;
    // What the capture still holds: journaled by the first settle, or
    // after the link has shipped when nobody settles.
    std::once_flag moved;
    auto journal_moves = [&] {
        std::call_once(moved, [&] {
            append(journal::Op::rename, "d/first", "d/moved", *h);
            append(journal::Op::rename, "d", "d2", {});
            ASSERT_TRUE((*writer)->flush());
        });
    };
    std::atomic<int> settles{0};
    rig.so.settle_capture = [&]() -> Result<uint64_t> {
        ++settles;
        journal_moves();
        return last.load();
    };
    auto shipper = replicator::Shipper::start(rig.so);
    ASSERT_TRUE(shipper) << shipper.error().message;
    (*shipper)->notify(link);
    ASSERT_TRUE((*shipper)->wait_acked(link, std::chrono::seconds(10)))
        << (*shipper)->status()[0].last_error << "\n" << rig.server.all_logs();
    journal_moves();
    (*shipper)->notify(last);
    ASSERT_TRUE((*shipper)->wait_acked(last, std::chrono::seconds(10)))
        << (*shipper)->status()[0].last_error << "\n" << rig.server.all_logs();
    EXPECT_GE(settles.load(), 1);
    auto dst = rig.server.fileset_root("fs1");
    struct stat moved_st{}, second{};
    ASSERT_EQ(::lstat((dst / "d2/moved").c_str(), &moved_st), 0) << rig.server.all_logs();
    ASSERT_EQ(::lstat((dst / "second").c_str(), &second), 0) << rig.server.all_logs();
    EXPECT_EQ(moved_st.st_ino, second.st_ino) << "the link group is split on the replica\n" << rig.server.all_logs();
    EXPECT_EQ(second.st_nlink, 2u);
    EXPECT_EQ(read_file(dst / "second"), "one file, two names\n");
    (*shipper)->stop();
    ASSERT_TRUE((*writer)->close());
}

// A directory whose mtime could not be read when its records shipped (a
// rename of its parent, not journaled yet, had taken its path away at the
// source) is set once the shipper has caught up with that rename, by the
// worker that noted it. The note lived in that worker's memory: an agent
// restarted in between (after kill -9 too) forgot it, and the replica kept
// the time the server gave the directory for good. A session now starts
// from the records before the server's resume point.
TEST(ShipperDirTimes, ADirectoryAStoppedShipperLeftStaleGetsTheSourcesMtime) {
    ShipperRig rig;
    auto writer = journal::Writer::open(rig.wo);
    ASSERT_TRUE(writer) << writer.error().message;
    auto src = rig.server.base() / "src";
    fs::create_directories(src / "e/a");
    write_file(src / "e/a/f", "in a directory whose parent moved\n", 0644);
    constexpr int64_t mtime = 1'600'000'000'123'456'789;
    const timespec times[2] = {{0, UTIME_OMIT}, {mtime / 1'000'000'000, mtime % 1'000'000'000}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (src / "e/a").c_str(), times, 0), 0) << strerror(errno);
    auto e = test::kernel_handle(AT_FDCWD, (src / "e").c_str());
    auto a = test::kernel_handle(AT_FDCWD, (src / "e/a").c_str());
    auto f = test::kernel_handle(AT_FDCWD, (src / "e/a/f").c_str());
    ASSERT_TRUE(e && a && f) << strerror(errno);
    uint64_t last = 0;
    auto append = [&](journal::Op op, const std::string& path, const std::string& target, const journal::FileHandle& h) {
        last = append_record(**writer, op, path, target, h);
    };
    append(journal::Op::mkdir, "d", "", *e);
    append(journal::Op::mkdir, "d/a", "", *a);
    append(journal::Op::create, "d/a/f", "", *f);
    append(journal::Op::close_write, "d/a/f", "", *f);
    ASSERT_TRUE((*writer)->flush());
    {
        auto first = replicator::Shipper::start(rig.so);
        ASSERT_TRUE(first) << first.error().message;
        (*first)->notify(last);
        ASSERT_TRUE((*first)->wait_acked(last, std::chrono::seconds(10)))
            << (*first)->status()[0].last_error << "\n" << rig.server.all_logs();
        (*first)->stop();
    }
    // The agent that journals the rename is another one.
    append(journal::Op::rename, "d", "e", *e);
    ASSERT_TRUE((*writer)->flush());
    auto second = replicator::Shipper::start(rig.so);
    ASSERT_TRUE(second) << second.error().message;
    (*second)->notify(last);
    ASSERT_TRUE((*second)->wait_acked(last, std::chrono::seconds(10)))
        << (*second)->status()[0].last_error << "\n" << rig.server.all_logs();
    auto dst = rig.server.fileset_root("fs1");
    EXPECT_EQ(read_file(dst / "e/a/f"), "in a directory whose parent moved\n");
    EXPECT_EQ(mtime_ns(dst / "e/a"), mtime) << rig.server.all_logs();
    EXPECT_EQ(mtime_ns(dst / "e"), mtime_ns(src / "e"));
    (*second)->stop();
    ASSERT_TRUE((*writer)->close());
}

// A mkdir or create journaled without attributes (the agent knew the entry
// only from its create event: it had moved on, or another object had its
// name, by the time the event was read), and no later record naming them:
// the replica must still get the source's mode, owner and mtime, never the
// server's default (0700 for a directory).
TEST(ShipperAttributes, ACreationJournaledWithoutAModeGetsTheSourcesAttributes) {
    ShipperRig rig;
    auto writer = journal::Writer::open(rig.wo);
    ASSERT_TRUE(writer) << writer.error().message;
    auto src = rig.server.base() / "src";
    constexpr int64_t mtime = 1'600'000'000'123'456'789;
    const timespec times[2] = {{0, UTIME_OMIT}, {mtime / 1'000'000'000, mtime % 1'000'000'000}};
    ASSERT_EQ(::mkdir((src / "d").c_str(), 0700), 0);
    ASSERT_EQ(::chmod((src / "d").c_str(), 0751), 0);
    ASSERT_EQ(::chown((src / "d").c_str(), 1234, 5678), 0);
    ASSERT_EQ(::utimensat(AT_FDCWD, (src / "d").c_str(), times, 0), 0);
    write_file(src / "f", "", 0600);
    ASSERT_EQ(::chmod((src / "f").c_str(), 0640), 0);
    ASSERT_EQ(::utimensat(AT_FDCWD, (src / "f").c_str(), times, 0), 0);
    uint64_t last = 0;
    for (auto [op, name] : {std::pair{journal::Op::mkdir, "d"}, std::pair{journal::Op::create, "f"}}) {
        auto kernel = test::kernel_handle(AT_FDCWD, (src / name).c_str());
        ASSERT_TRUE(kernel) << strerror(errno);
        journal::Record r;
        r.op = op;
        r.path = name;
        r.handle = *kernel;
        auto lsn = (*writer)->append(r);
        ASSERT_TRUE(lsn);
        last = *lsn;
    }
    // The directory's own mtime, not the one its entry's creation left.
    ASSERT_EQ(::utimensat(AT_FDCWD, src.c_str(), times, 0), 0);
    ASSERT_TRUE((*writer)->flush());
    auto shipper = replicator::Shipper::start(rig.so);
    ASSERT_TRUE(shipper) << shipper.error().message;
    (*shipper)->notify(last);
    ASSERT_TRUE((*shipper)->wait_acked(last, std::chrono::seconds(10)))
        << (*shipper)->status()[0].last_error << "\n" << rig.server.all_logs();
    struct stat st{};
    ASSERT_EQ(::lstat((rig.server.fileset_root("fs1") / "d").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode, S_IFDIR | 0751u) << std::oct << st.st_mode;
    EXPECT_EQ(st.st_uid, 1234u);
    EXPECT_EQ(st.st_gid, 5678u);
    EXPECT_EQ(st.st_mtim.tv_sec * 1'000'000'000 + st.st_mtim.tv_nsec, mtime);
    ASSERT_EQ(::lstat((rig.server.fileset_root("fs1") / "f").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode, S_IFREG | 0640u) << std::oct << st.st_mode;
    EXPECT_EQ(st.st_mtim.tv_sec * 1'000'000'000 + st.st_mtim.tv_nsec, mtime);
    (*shipper)->stop();
    ASSERT_TRUE((*writer)->close());
}

}  // namespace
}  // namespace iz::test
