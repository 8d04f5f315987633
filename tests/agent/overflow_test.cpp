// A fanotify queue overflow loses events; the agent must say so (an
// overflow record), rescan, and journal exactly the differences, so that
// the journal still describes the tree. The overflow is forced by stopping
// the daemon (SIGSTOP) while far more than its queue's 16384 events happen.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <map>

#include "agent_fixture.hpp"
#include "replay.hpp"

namespace iz::test::agent {
namespace {

class Overflow : public AgentOn {};

TEST_P(Overflow, OverflowIsJournaledAndTheRescanRestoresTheTree) {
    constexpr int kFiles = 20000;
    for (int d = 0; d < 4; ++d) make_dir(at(fmt::format("d{}", d)));
    write_file(at("d0/before"), "baseline");
    write_file(at("gone"), "baseline");
    ASSERT_NO_FATAL_FAILURE(start({"--queue-events", "16384"}));
    pid_t pid = watch().pid();

    ASSERT_EQ(::kill(pid, SIGSTOP), 0);
    for (int i = 0; i < kFiles; ++i) ASSERT_NO_FATAL_FAILURE(write_file(at(fmt::format("d{}/f{}", i % 4, i)), "0123456789"));
    for (int i = 0; i < kFiles; i += 10) ASSERT_EQ(::unlink(at(fmt::format("d{}/f{}", i % 4, i)).c_str()), 0);
    for (int i = 1; i < kFiles; i += 10)
        ASSERT_EQ(::rename(at(fmt::format("d{}/f{}", i % 4, i)).c_str(), at(fmt::format("d{}/r{}", (i + 1) % 4, i)).c_str()), 0);
    for (int i = 2; i < kFiles; i += 100) ASSERT_EQ(::chmod(at(fmt::format("d{}/f{}", i % 4, i)).c_str(), 0600), 0);
    make_dir(at("late"));
    write_file(at("late/x"), "x");
    ASSERT_EQ(::rename(at("d3").c_str(), at("d3moved").c_str()), 0);
    ASSERT_EQ(::unlink(at("gone").c_str()), 0);
    ASSERT_EQ(::kill(pid, SIGCONT), 0);

    ASSERT_NO_FATAL_FAILURE(sync());
    auto records = watch().journal();
    size_t overflow_at = records.size();
    for (size_t i = 0; i < records.size(); ++i)
        if (records[i].value("op", "") == "overflow") {
            overflow_at = i;
            break;
        }
    ASSERT_LT(overflow_at, records.size()) << "no overflow record";
    bool rescanned = false;
    for (size_t i = overflow_at + 1; i < records.size(); ++i)
        if (records[i].value("op", "") == "rescan" && records[i].value("message", "").starts_with("overflow")) rescanned = true;
    EXPECT_TRUE(rescanned) << "no rescan after the overflow";

    // The directory renamed while events were lost is known by its handle:
    // one rename, not its files removed one by one and made again.
    bool moved = false;
    for (size_t i = overflow_at + 1; i < records.size(); ++i) {
        auto op = records[i].value("op", "");
        auto path = records[i].value("path", "");
        if (op == "rename" && path == "d3" && records[i].value("target", "") == "d3moved") moved = true;
        EXPECT_FALSE((op == "unlink" || op == "rmdir") && (path == "d3" || path.starts_with("d3/"))) << records[i].dump();
    }
    EXPECT_TRUE(moved) << "no rename of d3 after the overflow";

    std::vector<std::string> problems;
    auto journaled = replay(records, problems);
    auto on_disk = list_tree(root());
    ASSERT_EQ(on_disk.size(), 4u + 1 + kFiles - kFiles / 10 + 2);  // dirs, before, files, late/ + late/x
    EXPECT_EQ(differences(journaled, on_disk), std::vector<std::string>{});
    problems.resize(std::min<size_t>(problems.size(), 20));
    EXPECT_EQ(problems, std::vector<std::string>{}) << "records that do not fit the tree they describe";

    // Said the other way round: a deleted file the journal knew of ends with
    // its unlink (one whose events were all lost may never appear).
    std::map<std::string, std::string> last_op;
    for (auto& r : records) {
        last_op[r.value("path", "")] = r.value("op", "");
        if (r.contains("target")) last_op[r["target"].get<std::string>()] = r.value("op", "");
    }
    int deleted_seen = 0;
    for (int i = 0; i < kFiles; i += 10) {
        auto it = last_op.find(fmt::format("d{}/f{}", i % 4, i));
        if (it == last_op.end()) continue;
        ++deleted_seen;
        EXPECT_EQ(it->second, "unlink") << it->first;
    }
    EXPECT_GT(deleted_seen, 0) << "none of the deleted files was journaled at all";

    auto status = watch().status();
    EXPECT_GE(status.value("overflows", 0), 1);
    EXPECT_GE(status.value("rescans", 0), 2);  // the baseline and at least one after the overflow

    // Capture goes on as before.
    mark();
    write_file(at("after"), "");
    EXPECT_EQ(described_changes(), std::vector<std::string>{"create after"});
}

INSTANTIATE_TEST_SUITE_P(Filesystems, Overflow, ::testing::Values(FsType::ext4, FsType::xfs), fs_param_name);

}  // namespace
}  // namespace iz::test::agent
