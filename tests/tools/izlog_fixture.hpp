#pragma once
// A journal made for izlog's tests with fixed times (10 records, one a second
// from 2026-11-25T10:00:00Z), and a way to run the real binary on it, so
// whole outputs can be compared exactly.
#include <unistd.h>

#include <gtest/gtest.h>

#include "journal/writer.hpp"
#include "support/process.hpp"

namespace iz::test::izlog {

using namespace iz::journal;
namespace fs = std::filesystem;

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kT0 = 1'795'600'800 * kSec;  // 2026-11-25T10:00:00Z

inline Record make(Op op, std::string path, int64_t sec) {
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
inline std::vector<Record> sample() {
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

    void append(const std::vector<Record>& records, uint64_t segment_bytes = 64 << 10) {
        WriterOptions o;
        o.dir = dir;
        o.segment_bytes = segment_bytes;
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

}  // namespace iz::test::izlog
