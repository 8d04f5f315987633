// status, sync and stop of a running izwatch: status --json has the
// documented fields with values that agree with the journal; stop makes
// everything captured durable (also what was never synced), records a stop
// and removes the control socket; --foreground serves until SIGTERM.
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <fstream>

#include "agent_fixture.hpp"

namespace iz::test::agent {
namespace {

class Lifecycle : public AgentOn {};

// The queue length comes from a sysctl read at fanotify_init: the agent
// sets it for that moment only.
uint32_t system_queue_events() {
    std::ifstream in("/proc/sys/fs/fanotify/max_queued_events");
    uint32_t v = 0;
    in >> v;
    return v;
}

TEST_P(Lifecycle, StatusJsonHasTheDocumentedFields) {
    auto system_queue = system_queue_events();
    ASSERT_NO_FATAL_FAILURE(start());
    EXPECT_EQ(system_queue_events(), system_queue) << "the system's fanotify queue length was not put back";
    for (int i = 0; i < 300; ++i) write_file(at(fmt::format("f{}", i)), "data");
    ASSERT_NO_FATAL_FAILURE(sync());
    auto s = watch().status();
    ASSERT_TRUE(s.is_object());
    EXPECT_EQ(s.value("ok", false), true);
    EXPECT_EQ(s.value("dir", ""), root().string());
    EXPECT_EQ(s.value("pid", 0), watch().pid());
    EXPECT_EQ(s.value("journal", ""), watch().journal_dir().string());
    EXPECT_EQ(s.value("capture", ""), "fanotify+ebpf");
    EXPECT_NE(s.value("capture_detail", "").find(fs_name(GetParam())), std::string::npos) << s.dump();
    ASSERT_TRUE(s.contains("events_per_s") && s["events_per_s"].is_number()) << s.dump();
    EXPECT_EQ(s.value("overflows", -1), 0);
    EXPECT_EQ(s.value("queue_events", 0), 262144);
    EXPECT_EQ(s.value("rescans", -1), 1);
    EXPECT_GE(s.value("events", 0), 300);
    EXPECT_EQ(s.value("events_outside", -1), 0);
    EXPECT_GT(s.value("journal_disk_bytes", 0), 0);

    // records counts what capture journaled (all but the start record); the
    // head LSN is the last record, durable after a sync.
    auto journal = watch().journal();
    ASSERT_FALSE(journal.empty());
    EXPECT_EQ(s.value("head_lsn", uint64_t{0}), journal.back().value("lsn", uint64_t{0}));
    EXPECT_EQ(s.value("durable_lsn", uint64_t{0}), s.value("head_lsn", uint64_t{0}));
    EXPECT_EQ(s.value("records", size_t{0}), journal.size() - 1);
    EXPECT_EQ(with_op(journal, "create").size(), 300u);

    // The rate follows a burst, then falls back to zero.
    for (int i = 0; i < 300; ++i) write_file(at(fmt::format("g{}", i)), "data");
    EXPECT_TRUE(eventually([&] { return watch().status().value("events_per_s", 0.0) > 0; }, std::chrono::seconds(3)));
    EXPECT_TRUE(eventually([&] { return watch().status().value("events_per_s", 1.0) == 0; }, std::chrono::seconds(4)));
}

TEST_P(Lifecycle, StatusWithoutADirectoryListsEveryWatch) {
    ASSERT_NO_FATAL_FAILURE(start({"--no-bpf"}));
    auto r = watch().izwatch({"status", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto all = json::parse(r.out, nullptr, false);
    ASSERT_TRUE(all.is_array()) << r.out;
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].value("dir", ""), root().string());
    EXPECT_EQ(all[0].value("capture", ""), "fanotify only");
    EXPECT_NE(all[0].value("capture_detail", "").find("--no-bpf"), std::string::npos);

    auto human = watch().izwatch({"status", root().string()});
    ASSERT_EQ(human.exit_code, 0) << human.err;
    EXPECT_TRUE(human.out.starts_with(root().string() + "\n")) << human.out;
    EXPECT_NE(human.out.find(fmt::format("agent pid:   {}", watch().pid())), std::string::npos) << human.out;
    EXPECT_NE(human.out.find("capture:     fanotify only"), std::string::npos) << human.out;
}

TEST_P(Lifecycle, StopLeavesWhatStatusSaidDurable) {
    ASSERT_NO_FATAL_FAILURE(start());
    for (int i = 0; i < 100; ++i) write_file(at(fmt::format("f{}", i)), "data");
    ASSERT_NO_FATAL_FAILURE(sync());
    auto s = watch().status();
    auto records = s.value("records", uint64_t{0});
    auto head = s.value("head_lsn", uint64_t{0});
    pid_t pid = watch().pid();

    auto r = watch().stop();
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out + r.err, "");
    // It replied once everything was durable; the process ends soon after.
    EXPECT_TRUE(eventually([&] { return !izwatch_alive(pid); }, std::chrono::seconds(10)));
    for (auto& e : fs::directory_iterator(watch().run_dir())) EXPECT_NE(e.path().extension(), ".sock") << e.path();

    auto journal = watch().journal();
    ASSERT_EQ(journal.size(), head + 1);  // and the stop record
    for (size_t i = 0; i < journal.size(); ++i) EXPECT_EQ(journal[i].value("lsn", uint64_t{0}), i + 1);
    EXPECT_EQ(journal.front().value("op", ""), "start");
    EXPECT_EQ(journal.back().value("op", ""), "stop");
    EXPECT_EQ(journal.size() - 2, records);  // capture's own, between start and stop

    auto verified = run_process({bin_path("izlog").string(), "-D", watch().journal_dir().string(), "--verify"});
    EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;

    auto after = watch().izwatch({"status", root().string()});
    EXPECT_NE(after.exit_code, 0);
    EXPECT_NE(after.err.find("is not being watched"), std::string::npos) << after.err;
}

// A killed agent holds the journal's lock until the kernel has released
// every file of its process, most of a second after the kill (its eBPF
// links and its fanotify group go first): a start right after the kill
// waits for the lock instead of failing.
TEST_P(Lifecycle, StartRightAfterAKillWaitsForTheDeadAgentsJournalLock) {
    ASSERT_NO_FATAL_FAILURE(start());
    write_file(at("before"), "x");
    ASSERT_NO_FATAL_FAILURE(sync());
    ASSERT_EQ(::kill(watch().pid(), SIGKILL), 0);
    auto r = watch().start();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    write_file(at("after"), "y");
    auto got = described_changes();
    EXPECT_NE(std::find(got.begin(), got.end(), "create after"), got.end()) << fmt::format("{}", fmt::join(got, "\n"));
}

// Another agent writing to the same journal is waited for only so long,
// and then named.
TEST_P(Lifecycle, AJournalHeldByALiveAgentIsRefusedAfterAWait) {
    ASSERT_NO_FATAL_FAILURE(start());
    make_dir(mount() / "other");
    auto begun = std::chrono::steady_clock::now();
    auto r = watch().izwatch({"start", (mount() / "other").string(), "--journal", watch().journal_dir().string(),
                              "--state-dir", (work_->path() / "other-state").string()});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_GE(std::chrono::steady_clock::now() - begun, std::chrono::seconds(10));
    EXPECT_NE(r.err.find("is still open by another writer after waiting 10.0 s"), std::string::npos) << r.err;
    EXPECT_TRUE(izwatch_alive(watch().pid()));
}

TEST_P(Lifecycle, StopWithoutSyncStillJournalsEverything) {
    ASSERT_NO_FATAL_FAILURE(start());
    for (int i = 0; i < 300; ++i) write_file(at(fmt::format("f{}", i)), fmt::format("content {}", i));
    auto r = watch().stop();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto journal = watch().journal();
    EXPECT_EQ(with_op(journal, "create").size(), 300u);
    EXPECT_EQ(with_op(journal, "write").size(), 300u);
    EXPECT_EQ(with_op(journal, "close_write").size(), 300u);
    EXPECT_EQ(journal.back().value("op", ""), "stop");
}

TEST_P(Lifecycle, ForegroundServesUntilSigterm) {
    auto log = work_->path() / "foreground.log";
    ChildProcess daemon({bin_path("izwatch").string(), "start", root().string(), "--foreground", "--journal",
                         watch().journal_dir().string(), "--state-dir", watch().state_dir().string()},
                        log, log, watch().env());
    ASSERT_TRUE(eventually([&] { return watch().status().is_object(); })) << "no status from a foreground izwatch";
    EXPECT_EQ(watch().status().value("pid", 0), daemon.pid());
    write_file(at("made"), "x");
    ASSERT_NO_FATAL_FAILURE(sync());
    daemon.signal(SIGTERM);
    EXPECT_EQ(daemon.wait(std::chrono::seconds(10)), 0);
    auto journal = watch().journal();
    ASSERT_FALSE(journal.empty());
    EXPECT_EQ(journal.back().value("op", ""), "stop");
    EXPECT_EQ(with_op(journal, "create", "made").size(), 1u);
    EXPECT_FALSE(watch().status().is_object());
}

// The watched directory itself deleted: its contents are journaled as
// they go, status says what happened, and the agent can still be synced and
// stopped by the name it was started with.
TEST_P(Lifecycle, RemovingTheWatchedDirectoryItselfIsReportedAndStopStillWorks) {
    ASSERT_NO_FATAL_FAILURE(start());
    fs::create_directories(at("a"));
    write_file(at("a/f"), "data");
    ASSERT_NO_FATAL_FAILURE(sync());
    pid_t pid = watch().pid();
    fs::remove_all(root());

    EXPECT_TRUE(eventually([&] { return watch().status().value("root_removed", false); }, std::chrono::seconds(5)))
        << watch().status().dump();
    auto human = watch().izwatch({"status", root().string()});
    EXPECT_EQ(human.exit_code, 0) << human.err;
    EXPECT_NE(human.out.find("REMOVED:"), std::string::npos) << human.out;
    ASSERT_NO_FATAL_FAILURE(sync());
    auto journal = watch().journal();
    EXPECT_EQ(with_op(journal, "unlink", "a/f").size(), 1u);
    EXPECT_EQ(with_op(journal, "rmdir", "a").size(), 1u);

    auto r = watch().stop();
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(eventually([&] { return !izwatch_alive(pid); }, std::chrono::seconds(10)));
    EXPECT_EQ(watch().journal().back().value("op", ""), "stop");
}

INSTANTIATE_TEST_SUITE_P(Filesystems, Lifecycle, ::testing::Values(FsType::ext4, FsType::xfs), fs_param_name);

}  // namespace
}  // namespace iz::test::agent
