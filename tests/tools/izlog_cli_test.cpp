// izlog, the real binary, against journals made for the test with fixed
// times, so whole outputs can be compared exactly.
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "journal/writer.hpp"
#include "support/process.hpp"

using namespace iz::journal;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kT0 = 1'795'600'800 * kSec;  // 2026-11-25T10:00:00Z

Record make(Op op, std::string path, int64_t sec) {
    Record r;
    r.op = op;
    r.path = std::move(path);
    r.time_ns = kT0 + sec * kSec;
    r.pid = 100;
    r.uid = 1000;
    r.gid = 1000;
    r.comm = "sh";
    return r;
}

// Ten records, one a second from 10:00:00 UTC.
std::vector<Record> sample() {
    std::vector<Record> v;
    auto start = make(Op::start, "", 0);
    start.pid.reset(); start.uid.reset(); start.gid.reset(); start.comm.clear();
    start.message = "watching";
    v.push_back(start);
    auto mk = make(Op::mkdir, "src", 1);
    mk.mode = 040755;
    v.push_back(mk);
    auto cr = make(Op::create, "src/a.c", 2);
    cr.mode = 0100644;
    v.push_back(cr);
    auto wr = make(Op::write, "src/a.c", 3);
    wr.ranges = {{0, 100}, {4096, 10}};
    wr.size = 4106;
    wr.comm = "cc";
    wr.pid = 200;
    v.push_back(wr);
    auto cw = make(Op::close_write, "src/a.c", 4);
    cw.size = 4106;
    cw.comm = "cc";
    cw.pid = 200;
    v.push_back(cw);
    auto ch = make(Op::setattr, "src/a.c", 5);
    ch.mode = 0100600;
    ch.uid = 0;
    v.push_back(ch);
    auto sl = make(Op::symlink, "latest", 6);
    sl.target = "src/a.c";
    v.push_back(sl);
    auto mv = make(Op::rename, "src/a.c", 7);
    mv.target = "docs/a.c";
    v.push_back(mv);
    auto w2 = make(Op::write, "docs/b.txt", 8);
    w2.ranges = {{0, 5}};
    w2.size = 5;
    v.push_back(w2);
    v.push_back(make(Op::unlink, "latest", 9));
    return v;
}

class Izlog : public ::testing::Test {
protected:
    void SetUp() override {
        dir = fs::temp_directory_path() / ("iz-izlog-test-" + std::to_string(getpid()) + "-" +
                                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir);
        append(sample());
    }
    void TearDown() override { fs::remove_all(dir); }

    void append(const std::vector<Record>& records) {
        WriterOptions o;
        o.dir = dir;
        o.segment_bytes = 64 << 10;
        auto w = Writer::open(o);
        ASSERT_TRUE(w) << w.error().message;
        for (auto& r : records) ASSERT_TRUE((*w)->append(r));
        ASSERT_TRUE((*w)->close());
    }

    iz::test::ProcessResult izlog(std::vector<std::string> args) {
        std::vector<std::string> argv = {iz::test::bin_path("izlog").string(), "-D", dir.string(), "--no-pager"};
        argv.insert(argv.end(), args.begin(), args.end());
        return iz::test::run_process(argv, {"TZ=UTC"});
    }

    std::string ok(std::vector<std::string> args) {
        auto r = izlog(std::move(args));
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(r.err, "");
        return r.out;
    }

    fs::path dir;
};

}  // namespace

TEST_F(Izlog, ShortShowsEverythingInOrder) {
    EXPECT_EQ(ok({}),
              "Nov 25 10:00:00 start        \"watching\"\n"
              "Nov 25 10:00:01 mkdir       src mode=0755 by sh[100] uid=1000\n"
              "Nov 25 10:00:02 create      src/a.c mode=0644 by sh[100] uid=1000\n"
              "Nov 25 10:00:03 write       src/a.c ranges=0+100,4096+10 size=4106 by cc[200] uid=1000\n"
              "Nov 25 10:00:04 close_write src/a.c size=4106 by cc[200] uid=1000\n"
              "Nov 25 10:00:05 setattr     src/a.c mode=0600 by sh[100] uid=0\n"
              "Nov 25 10:00:06 symlink     latest -> src/a.c by sh[100] uid=1000\n"
              "Nov 25 10:00:07 rename      src/a.c -> docs/a.c by sh[100] uid=1000\n"
              "Nov 25 10:00:08 write       docs/b.txt ranges=0+5 size=5 by sh[100] uid=1000\n"
              "Nov 25 10:00:09 unlink      latest by sh[100] uid=1000\n");
}

TEST_F(Izlog, ShortIsoAndCat) {
    EXPECT_EQ(ok({"-o", "short-iso", "-n", "1"}), "2026-11-25T10:00:09+0000 unlink      latest by sh[100] uid=1000\n");
    EXPECT_EQ(ok({"-o", "cat", "-n", "3"}), "rename src/a.c -> docs/a.c\nwrite docs/b.txt\nunlink latest\n");
}

TEST_F(Izlog, JsonHasTheDocumentedKeys) {
    EXPECT_EQ(ok({"-o", "json", "--op", "write", "-n", "1"}),
              R"({"cursor":"9","lsn":9,"time":"2026-11-25T10:00:08.000000Z","time_ns":1795600808000000000,)"
              R"("op":"write","path":"docs/b.txt","pid":100,"uid":1000,"gid":1000,"comm":"sh","ranges":[[0,5]],"size":5})"
              "\n");
    EXPECT_EQ(ok({"-o", "json", "--op", "symlink"}),
              R"({"cursor":"7","lsn":7,"time":"2026-11-25T10:00:06.000000Z","time_ns":1795600806000000000,)"
              R"("op":"symlink","path":"latest","target":"src/a.c","pid":100,"uid":1000,"gid":1000,"comm":"sh"})"
              "\n");
    auto pretty = ok({"-o", "json-pretty", "--op", "mkdir"});
    EXPECT_NE(pretty.find("\n    \"mode\": \"0040755\""), std::string::npos) << pretty;
    EXPECT_TRUE(pretty.starts_with("{\n    \"cursor\": \"2\",\n")) << pretty;
}

TEST_F(Izlog, VerboseListsEveryField) {
    EXPECT_EQ(ok({"-o", "verbose", "--op", "setattr"}),
              "Wed 2026-11-25 10:00:05.000000 UTC [cursor=6]\n"
              "    OP=setattr\n    PATH=src/a.c\n    PID=100\n    UID=0\n    GID=1000\n    COMM=sh\n    MODE=0100600\n");
}

TEST_F(Izlog, LinesReverseAndCursors) {
    EXPECT_EQ(ok({"-o", "cat", "-n", "2", "-r"}), "unlink latest\nwrite docs/b.txt\n");
    EXPECT_EQ(ok({"-o", "cat", "-r", "--after-cursor", "8"}), "unlink latest\nwrite docs/b.txt\n");
    EXPECT_EQ(ok({"-o", "cat", "--cursor", "9"}), "write docs/b.txt\nunlink latest\n");
    EXPECT_EQ(ok({"-o", "cat", "--after-cursor", "9", "--show-cursor"}), "unlink latest\n-- cursor: 10\n");
    EXPECT_EQ(ok({"-o", "cat", "-n", "1", "--show-cursor"}), "unlink latest\n-- cursor: 10\n");
}

TEST_F(Izlog, SinceAndUntil) {
    EXPECT_EQ(ok({"-o", "cat", "--since", "2026-11-25 10:00:07", "--until", "2026-11-25 10:00:08"}),
              "rename src/a.c -> docs/a.c\nwrite docs/b.txt\n");
    EXPECT_EQ(ok({"-o", "cat", "--since", "@1795600808"}), "write docs/b.txt\nunlink latest\n");
    EXPECT_EQ(ok({"-o", "cat", "--until", "2026-11-25T10:00:01Z"}), "start\nmkdir src\n");
    // Relative times: the journal is from 2026-11-25, long before or after
    // the clock of whoever runs this, so one side is empty and one full.
    auto past = ok({"-o", "cat", "--since", "-1h"});
    auto future = ok({"-o", "cat", "--until", "-1h"});
    EXPECT_EQ(past.empty() ? future : past, ok({"-o", "cat"}));
    EXPECT_EQ(ok({"-o", "cat", "--since", "2026-11-25 10:00:05", "-n", "1"}), "unlink latest\n");
}

TEST_F(Izlog, Filters) {
    EXPECT_EQ(ok({"-o", "cat", "--path", "src"}),
              "mkdir src\ncreate src/a.c\nwrite src/a.c\nclose_write src/a.c\nsetattr src/a.c\nrename src/a.c -> docs/a.c\n");
    EXPECT_EQ(ok({"-o", "cat", "--path", "*.txt"}), "write docs/b.txt\n");
    EXPECT_EQ(ok({"-o", "cat", "--path", "sr"}), "");
    EXPECT_EQ(ok({"-o", "cat", "--op", "write,unlink"}), "write src/a.c\nwrite docs/b.txt\nunlink latest\n");
    EXPECT_EQ(ok({"-o", "cat", "--op", "mkdir", "--op", "rename"}), "mkdir src\nrename src/a.c -> docs/a.c\n");
    EXPECT_EQ(ok({"-o", "cat", "--pid", "200"}), "write src/a.c\nclose_write src/a.c\n");
    EXPECT_EQ(ok({"-o", "cat", "--uid", "0"}), "setattr src/a.c\n");
    EXPECT_EQ(ok({"-o", "cat", "--comm", "cc"}), "write src/a.c\nclose_write src/a.c\n");
}

TEST_F(Izlog, Stats) {
    auto out = ok({"--stats"});
    EXPECT_NE(out.find("records:       10\n"), std::string::npos) << out;
    EXPECT_NE(out.find("lsn range:     1..10\n"), std::string::npos) << out;
    EXPECT_NE(out.find("time span:     2026-11-25T10:00:00.000000Z .. 2026-11-25T10:00:09.000000Z (9.000 s)\n"),
              std::string::npos) << out;
    EXPECT_NE(out.find("bytes written: 115\n"), std::string::npos) << out;
    EXPECT_NE(out.find("segments:      1\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  write        2\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  unlink       1\n"), std::string::npos) << out;
    EXPECT_NE(out.find("disk usage:    "), std::string::npos) << out;
}

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

TEST_F(Izlog, ErrorsAreOneLineAndNonZero) {
    auto missing = iz::test::run_process({iz::test::bin_path("izlog").string(), "-D", "/nonexistent/j", "--no-pager"});
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_EQ(missing.err, "izlog: open journal '/nonexistent/j': No such file or directory\n");
    auto bad_time = izlog({"--since", "whenever"});
    EXPECT_EQ(bad_time.exit_code, 1);
    EXPECT_EQ(bad_time.err,
              "izlog: failed to parse time 'whenever' (try '2026-11-25 10:00:00', '-1h', 'today' or '@1764064800')\n");
    auto bad_op = izlog({"--op", "chmod"});
    EXPECT_EQ(bad_op.exit_code, 1);
    EXPECT_TRUE(bad_op.err.starts_with("izlog: unknown op 'chmod' (known: create, mkdir,")) << bad_op.err;
    auto bad_format = izlog({"-o", "xml"});
    EXPECT_EQ(bad_format.exit_code, 1);
    EXPECT_TRUE(bad_format.err.starts_with("izlog: unknown output mode 'xml'")) << bad_format.err;
}

TEST_F(Izlog, FollowShowsRecordsAppendedAfterItStarted) {
    auto out_file = dir.string() + ".follow.out";
    {
        iz::test::ChildProcess follower({iz::test::bin_path("izlog").string(), "-D", dir.string(), "-f", "-o", "cat", "-n", "2"},
                                        out_file, "", {"TZ=UTC"});
        auto read = [&] {
            std::ifstream in(out_file);
            std::stringstream ss;
            ss << in.rdbuf();
            return ss.str();
        };
        ASSERT_TRUE(iz::test::eventually([&] { return read() == "write docs/b.txt\nunlink latest\n"; })) << read();
        // The follower holds no lock: another writer appends meanwhile.
        append({make(Op::mkdir, "late", 30), make(Op::rmdir, "late", 31)});
        EXPECT_TRUE(iz::test::eventually([&] {
            return read() == "write docs/b.txt\nunlink latest\nmkdir late\nrmdir late\n";
        })) << read();
        follower.signal(SIGINT);
        EXPECT_EQ(follower.wait(std::chrono::seconds(5)), 0);
    }
    fs::remove(out_file);
}
