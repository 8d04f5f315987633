// izlog, the real binary: output modes, windows, filters, stats, errors.
#include <sys/stat.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "izlog_fixture.hpp"

using namespace iz::journal;
using iz::test::izlog::Izlog;
using iz::test::izlog::make;
namespace fs = std::filesystem;

namespace {
int64_t at_second(int64_t sec) { return iz::test::izlog::kT0 + sec * iz::test::izlog::kSec; }
}  // namespace

TEST_F(Izlog, ShortShowsEverythingInOrder) {
    EXPECT_EQ(ok({}),
              "Nov 25 10:00:00 start       \"watching\"\n"
              "Nov 25 10:00:01 mkdir       src mode=0755 sh[100] uid=1000\n"
              "Nov 25 10:00:02 create      src/a.c mode=0644 sh[100] uid=1000\n"
              "Nov 25 10:00:03 write       src/a.c ranges=0+100,4096+10 size=4106 cc[200] uid=1000\n"
              "Nov 25 10:00:04 close_write src/a.c size=4106 cc[200] uid=1000\n"
              "Nov 25 10:00:05 setattr     src/a.c mode=0600 sh[100] uid=0\n"
              "Nov 25 10:00:06 symlink     latest -> src/a.c sh[100] uid=1000\n"
              "Nov 25 10:00:07 rename      src/a.c -> docs/a.c sh[100] uid=1000\n"
              "Nov 25 10:00:08 write       docs/b.txt ranges=0+5 size=5 sh[100] uid=1000\n"
              "Nov 25 10:00:09 unlink      latest sh[100] uid=1000\n");
}

TEST_F(Izlog, ShortIsoAndCat) {
    EXPECT_EQ(ok({"-o", "short-iso", "-n", "1"}), "2026-11-25T10:00:09+0000 unlink      latest sh[100] uid=1000\n");
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
    EXPECT_EQ(ok({"-o", "cat", "-r", "--until", "2026-11-25 10:00:02", "--since", "2026-11-25 10:00:01"}),
              "create src/a.c\nmkdir src\n");
    EXPECT_EQ(ok({"-o", "cat", "-r", "-n", "1", "--until", "2026-11-25 10:00:07.5"}), "rename src/a.c -> docs/a.c\n");
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
    // Disk usage is what the segments occupy (allocated blocks).
    uint64_t disk = 0;
    for (auto& e : fs::directory_iterator(dir)) {
        struct stat st{};
        if (e.path().extension() == ".izj" && ::stat(e.path().c_str(), &st) == 0)
            disk += static_cast<uint64_t>(st.st_blocks) * 512;
    }
    auto disk_line = fmt::format("disk usage:    {} bytes ({:.1f} MiB)\n", disk, static_cast<double>(disk) / (1 << 20));
    EXPECT_EQ(ok({"--stats"}),
              "records:       10\n"
              "lsn range:     1..10\n"
              "time span:     2026-11-25T10:00:00.000000Z .. 2026-11-25T10:00:09.000000Z (9.000 s)\n"
              "bytes written: 115\n"
              "segments:      1\n" +
                  disk_line +
                  "per op:\n"
                  "  create       1\n"
                  "  mkdir        1\n"
                  "  symlink      1\n"
                  "  unlink       1\n"
                  "  rename       1\n"
                  "  setattr      1\n"
                  "  write        2\n"
                  "  close_write  1\n"
                  "  start        1\n");
    // The window and filters apply: only docs/b.txt's write here.
    EXPECT_EQ(ok({"--stats", "--op", "write", "--since", "2026-11-25 10:00:05"}),
              "records:       1\n"
              "lsn range:     9..9\n"
              "time span:     2026-11-25T10:00:08.000000Z .. 2026-11-25T10:00:08.000000Z (0.000 s)\n"
              "bytes written: 5\n"
              "segments:      1\n" +
                  disk_line +
                  "per op:\n"
                  "  write        1\n");
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
    auto both = izlog({"-r", "-f"});
    EXPECT_EQ(both.exit_code, 1);
    EXPECT_EQ(both.err, "izlog: --follow excludes --reverse\n");
    auto bad_until = izlog({"--until", "2026-11-31 10:00"});
    EXPECT_EQ(bad_until.exit_code, 1);
    EXPECT_TRUE(bad_until.err.starts_with("izlog: failed to parse time '2026-11-31 10:00'")) << bad_until.err;
    auto bad_format = izlog({"-o", "xml"});
    EXPECT_EQ(bad_format.exit_code, 1);
    EXPECT_TRUE(bad_format.err.starts_with("izlog: unknown output mode 'xml'")) << bad_format.err;
}

TEST_F(Izlog, JsonCarriesOptionalFieldsOnlyWhereTheyApply) {
    auto mv = make(Op::rename, "new.txt", 40);
    mv.target = "old.txt";
    mv.replaced = true;
    mv.version = 7;
    auto attr = make(Op::setattr, "f", 41);
    attr.mode = 0100640;
    attr.owner_uid = 33;
    attr.owner_gid = 34;
    attr.size = 0;
    attr.mtime_ns = at_second(41) + 123'456'789;
    attr.atime_ns = at_second(41);
    auto xa = make(Op::setxattr, "f", 42);
    xa.xattr_name = "user.tag";
    xa.xattr_value = "v";
    auto conflict = make(Op::conflict, "f", 43);
    conflict.pid.reset();
    conflict.uid.reset();
    conflict.gid.reset();
    conflict.comm.clear();
    conflict.message = "both sides wrote";
    append({mv, attr, xa, conflict});
    EXPECT_EQ(ok({"-o", "json", "--cursor", "11"}),
              R"({"cursor":"11","lsn":11,"time":"2026-11-25T10:00:40.000000Z","time_ns":1795600840000000000,"op":"rename",)"
              R"("path":"new.txt","target":"old.txt","pid":100,"uid":1000,"gid":1000,"comm":"sh","version":7,"replaced":true})"
              "\n"
              R"({"cursor":"12","lsn":12,"time":"2026-11-25T10:00:41.000000Z","time_ns":1795600841000000000,"op":"setattr",)"
              R"("path":"f","pid":100,"uid":1000,"gid":1000,"comm":"sh","mode":"0100640","owner_uid":33,"owner_gid":34,)"
              R"("size":0,"mtime_ns":1795600841123456789,"atime_ns":1795600841000000000})"
              "\n"
              R"({"cursor":"13","lsn":13,"time":"2026-11-25T10:00:42.000000Z","time_ns":1795600842000000000,"op":"setxattr",)"
              R"("path":"f","pid":100,"uid":1000,"gid":1000,"comm":"sh","xattr_name":"user.tag"})"
              "\n"
              R"({"cursor":"14","lsn":14,"time":"2026-11-25T10:00:43.000000Z","time_ns":1795600843000000000,"op":"conflict",)"
              R"("path":"f","message":"both sides wrote"})"
              "\n");
    EXPECT_EQ(ok({"--cursor", "11"}),
              "Nov 25 10:00:40 rename      new.txt -> old.txt (replaced) sh[100] uid=1000\n"
              "Nov 25 10:00:41 setattr     f mode=0640 owner=33:34 size=0 sh[100] uid=1000\n"
              "Nov 25 10:00:42 setxattr    f name=user.tag sh[100] uid=1000\n"
              "Nov 25 10:00:43 conflict    f \"both sides wrote\"\n");
}

// An exchange moves both ways, and is named as such everywhere.
TEST_F(Izlog, ExchangeIsShownBothWays) {
    auto x = make(Op::exchange, "a", 50);
    x.target = "b";
    append({x});
    EXPECT_EQ(ok({"-n", "1"}), "Nov 25 10:00:50 exchange    a <-> b sh[100] uid=1000\n");
    EXPECT_EQ(ok({"--op", "exchange", "-o", "cat"}), "exchange a <-> b\n");
    EXPECT_NE(ok({"-o", "json", "-n", "1"}).find(R"("op":"exchange","path":"a","target":"b")"), std::string::npos);
}

// A change that came from another node of a shared fileset shows whose it
// was and its LSN there, in every output.
TEST_F(Izlog, OriginOfAChangeFromElsewhereIsShown) {
    auto w = make(Op::write, "docs/b.txt", 60);
    w.size = 5;
    w.pid.reset();
    w.uid.reset();
    w.gid.reset();
    w.comm.clear();
    w.origin = "laptop";
    w.origin_lsn = 43;
    append({w});
    EXPECT_EQ(ok({"-n", "1"}), "Nov 25 10:01:00 write       docs/b.txt ranges=whole-file size=5 origin=laptop@43\n");
    EXPECT_NE(ok({"-o", "json", "-n", "1"}).find(R"("path":"docs/b.txt","origin":"laptop","origin_lsn":43,)"),
              std::string::npos);
    EXPECT_NE(ok({"-o", "verbose", "-n", "1"}).find("    ORIGIN=laptop@43\n"), std::string::npos);
    // A local record shows none.
    EXPECT_EQ(ok({"-n", "1", "--op", "unlink"}), "Nov 25 10:00:09 unlink      latest sh[100] uid=1000\n");
}

// The demo journal maker has a real command line: --help prints it and
// writes no journal (there was one in a directory named '--help').
TEST(DemoJournal, HelpPrintsUsageAndWritesNothing) {
    auto dir = fs::temp_directory_path() / ("iz-demo-journal-test-" + std::to_string(getpid()));
    fs::create_directories(dir);
    auto back = fs::current_path();
    fs::current_path(dir);
    auto r = iz::test::run_process({iz::test::bin_path("iz-demo-journal").string(), "--help"});
    auto bad = iz::test::run_process({iz::test::bin_path("iz-demo-journal").string(), "--bogus"});
    auto none = iz::test::run_process({iz::test::bin_path("iz-demo-journal").string()});
    auto made = iz::test::run_process({iz::test::bin_path("iz-demo-journal").string(), "j"});
    fs::current_path(back);
    std::vector<std::string> left;
    for (auto& e : fs::directory_iterator(dir)) left.push_back(e.path().filename().string());
    fs::remove_all(dir);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("DIR"), std::string::npos) << r.out;
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(none.exit_code, 0);
    EXPECT_EQ(made.exit_code, 0) << made.err;
    EXPECT_EQ(left, std::vector<std::string>{"j"});  // only the journal asked for
}
