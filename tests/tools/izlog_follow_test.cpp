// izlog -f: records appended after it started show up.
#include <signal.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "izlog_fixture.hpp"

using namespace iz::journal;
using iz::test::izlog::Izlog;
using iz::test::izlog::make;
namespace fs = std::filesystem;

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

TEST_F(Izlog, FollowJsonShowsTheLastTenThenNewRecords) {
    // Two more than -f shows at first, so the window of ten is visible.
    append({make(Op::mkdir, "a", 10), make(Op::mkdir, "b", 11)});
    auto out_file = dir.string() + ".follow-json.out";
    auto read = [&] {
        std::ifstream in(out_file);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    };
    auto lsns = [&] {
        std::vector<uint64_t> v;
        std::istringstream lines(read());
        for (std::string line; std::getline(lines, line);) {
            auto j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_discarded()) return std::vector<uint64_t>{};  // a partial line: not yet
            v.push_back(j["lsn"].get<uint64_t>());
        }
        return v;
    };
    std::vector<uint64_t> first_ten = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    {
        iz::test::ChildProcess follower(
            {iz::test::bin_path("izlog").string(), "-D", dir.string(), "-f", "-o", "json", "--no-pager"}, out_file, "",
            {"TZ=UTC"});
        ASSERT_TRUE(iz::test::eventually([&] { return lsns() == first_ten; })) << read();
        append({make(Op::create, "late/x", 40)});
        auto expected = first_ten;
        expected.push_back(13);
        ASSERT_TRUE(iz::test::eventually([&] { return lsns() == expected; })) << read();
        auto last_line = read().substr(read().rfind('{'));
        EXPECT_EQ(last_line,
                  R"({"cursor":"13","lsn":13,"time":"2026-11-25T10:00:40.000000Z","time_ns":1795600840000000000,)"
                  R"("op":"create","path":"late/x","pid":100,"uid":1000,"gid":1000,"comm":"sh"})"
                  "\n");
        follower.signal(SIGTERM);
        EXPECT_EQ(follower.wait(std::chrono::seconds(5)), 0);
    }
    fs::remove(out_file);
}

TEST_F(Izlog, FollowFromACursorShowsEverythingAfterItThenNewRecords) {
    auto out_file = dir.string() + ".follow-cursor.out";
    auto read = [&] {
        std::ifstream in(out_file);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    };
    {
        iz::test::ChildProcess follower({iz::test::bin_path("izlog").string(), "-D", dir.string(), "-f", "-o", "cat",
                                         "--after-cursor", "7", "--path", "docs", "--show-cursor"},
                                        out_file, "", {"TZ=UTC"});
        ASSERT_TRUE(iz::test::eventually([&] { return read() == "rename src/a.c -> docs/a.c\nwrite docs/b.txt\n"; }))
            << read();
        append({make(Op::mkdir, "elsewhere", 30), make(Op::create, "docs/c", 31)});
        EXPECT_TRUE(iz::test::eventually([&] {
            return read() == "rename src/a.c -> docs/a.c\nwrite docs/b.txt\ncreate docs/c\n";
        })) << read();
        follower.signal(SIGINT);
        EXPECT_EQ(follower.wait(std::chrono::seconds(5)), 0);
        EXPECT_EQ(read(), "rename src/a.c -> docs/a.c\nwrite docs/b.txt\ncreate docs/c\n-- cursor: 12\n");
    }
    fs::remove(out_file);
}

TEST_F(Izlog, FollowWithNoLinesShowsOnlyNewRecords) {
    auto out_file = dir.string() + ".follow-none.out";
    auto read = [&] {
        std::ifstream in(out_file);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    };
    {
        iz::test::ChildProcess follower(
            {iz::test::bin_path("izlog").string(), "-D", dir.string(), "-f", "-n", "0", "-o", "cat"}, out_file, "",
            {"TZ=UTC"});
        // Nothing to see until something is appended; give it time to start.
        EXPECT_FALSE(iz::test::eventually([&] { return !read().empty(); }, std::chrono::seconds(1))) << read();
        append({make(Op::rmdir, "old", 30)});
        EXPECT_TRUE(iz::test::eventually([&] { return read() == "rmdir old\n"; })) << read();
    }
    fs::remove(out_file);
}
