// End to end, shared filesets when things go wrong: two real izwatch agents
// in send-receive mode share a fileset through one real izreplicate (the
// e2e hosts of e2e_share_test.cpp), and a forward meets a real fault on the
// receiving agent. Nothing the others did is lost there: it arrives once
// the fault is gone, `izwatch sync` names it meanwhile, and `izwatch
// status` shows what is still to receive.
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "e2e_share_fixture.hpp"

namespace fs = std::filesystem;

namespace iz::test::e2e {
namespace {

class ShareReliability : public ShareFixture {
protected:
    ShareReliability() : ShareFixture("shrel") {}

    void expect_equal(AgentHost& agent, const std::string& when) {
        auto m = manifest(agent.dir());
        auto ms = manifest(replica());
        EXPECT_TRUE(m == ms) << when << ": " << agent.dir() << " differs from the server's replica:\n"
                             << manifest_diff(m, ms);
    }

    // The status of the server forwards come from, as `izwatch status --json` has it.
    nlohmann::json receiving_status(AgentHost& agent) {
        auto st = agent.status();
        if (!st.is_object() || !st.contains("servers") || st["servers"].empty()) return nlohmann::json::object();
        return st["servers"][0];
    }
};

// A's filesystem is full when B's file is forwarded to it: the forward
// fails with ENOSPC. It is not passed over: sync on A fails naming the
// path and the error, status shows it and what is still to receive, and
// once space is freed the file (and what B did after it) arrives.
TEST_F(ShareReliability, AForwardFailingForLackOfSpaceArrivesOnceSpaceIsFreed) {
    start(*a_, "a");
    start(*b_, "b");
    const fs::path A = a_->dir(), B = b_->dir();
    write_file(B / "before.txt", "before the disk filled\n");
    sync(*b_);
    sync(*a_);
    ASSERT_EQ(read_file(A / "before.txt"), "before the disk filled\n");

    // Outside the watched directory, on its filesystem.
    const fs::path filler = A.parent_path() / "filler";
    ASSERT_GT(fill_filesystem(filler), 0u);
    {
        // (statvfs counts ext4's reserve for metadata as free: try instead.)
        const fs::path probe = A.parent_path() / "probe";
        int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ASSERT_GE(fd, 0);
        auto bytes = pattern(1 << 20, 3);
        auto n = ::write(fd, bytes.data(), bytes.size());
        int err = errno;
        ::close(fd);
        fs::remove(probe);
        ASSERT_TRUE(n < 0 && err == ENOSPC) << "the filesystem is not full: wrote " << n;
    }

    const std::string big = pattern(2 << 20, 7);
    write_file(B / "big.bin", big);
    write_file(B / "after.txt", "made after big.bin\n");
    sync(*b_);

    auto r = a_->sync(15);
    EXPECT_NE(r.exit_code, 0) << "sync said done while A lacks big.bin:\n" << r.out;
    EXPECT_NE(r.err.find("big.bin"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(A / "after.txt")) << "a later record passed the one that failed";

    auto srv = receiving_status(*a_);
    ASSERT_TRUE(srv.contains("receive_error")) << srv.dump();
    EXPECT_NE(srv["receive_error"].get<std::string>().find("big.bin"), std::string::npos) << srv.dump();
    ASSERT_TRUE(srv.contains("records_to_receive")) << srv.dump();
    EXPECT_GE(srv["records_to_receive"].get<uint64_t>(), 2u) << srv.dump();
    EXPECT_EQ(srv.value("records_to_receive", uint64_t{0}) + srv.value("received_lsn", uint64_t{0}),
              srv.value("server_head", uint64_t{0}))
        << srv.dump();
    auto text = a_->izwatch("status");
    EXPECT_NE(text.out.find("records to receive"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("big.bin"), std::string::npos) << text.out;

    fs::remove_all(filler);
    ::sync();
    sync(*a_);
    EXPECT_TRUE(read_file(A / "big.bin") == big) << "big.bin differs on A";
    EXPECT_EQ(read_file(A / "after.txt"), "made after big.bin\n");
    expect_equal(*a_, "after space was freed on A");
    expect_equal(*b_, "B");
    // (B's agent may still send a record of its own, an mtime, meanwhile.)
    eventually(
        [&] {
            srv = receiving_status(*a_);
            return srv.value("records_to_receive", uint64_t{99}) == 0;
        },
        std::chrono::seconds(20));
    EXPECT_EQ(srv.value("records_to_receive", uint64_t{99}), 0u) << srv.dump();
    EXPECT_EQ(srv.value("receive_error", std::string("absent")), "") << srv.dump();
}

// A receive-only agent is a read-only replica: what A does reaches it, but
// its own user's changes are never sent. They are kept (not destroyed) and
// reported: in `izwatch status`, in its journal (izlog, without an origin)
// and as warnings in its log.
TEST_F(ShareReliability, AReceiveOnlyAgentKeepsAndReportsItsLocalChangesAndNeverSendsThem) {
    start(*a_, "a");
    start(*b_, "b", "receive-only");
    const fs::path A = a_->dir(), B = b_->dir();
    write_file(A / "shared.txt", "from A\n");
    fs::create_directories(A / "docs");
    write_file(A / "docs/plan.txt", "the plan\n");
    sync(*a_);
    sync(*b_);
    EXPECT_EQ(read_file(B / "shared.txt"), "from A\n");
    expect_equal(*b_, "after A's changes reached B");

    // B's user edits a file and adds one.
    write_file(B / "docs/plan.txt", "B's own plan\n");
    write_file(B / "mine.txt", "B only\n");
    sync(*b_);
    nlohmann::json st;
    eventually(
        [&] {
            st = b_->status();
            return st.value("local_changes", uint64_t{0}) >= 2;
        },
        std::chrono::seconds(15));
    ASSERT_GE(st.value("local_changes", uint64_t{0}), 2u) << st.dump();
    auto paths = st.value("local_change_paths", std::vector<std::string>{});
    EXPECT_NE(std::find(paths.begin(), paths.end(), "mine.txt"), paths.end()) << st.dump();
    EXPECT_NE(std::find(paths.begin(), paths.end(), "docs/plan.txt"), paths.end()) << st.dump();
    auto text = b_->izwatch("status");
    EXPECT_NE(text.out.find("LOCAL CHANGES"), std::string::npos) << text.out;
    EXPECT_NE(b_->log().find("receive-only: a local change is kept here and not sent"), std::string::npos) << b_->log();

    // Kept on B, and never sent: neither the server nor A has them.
    EXPECT_EQ(read_file(B / "docs/plan.txt"), "B's own plan\n");
    EXPECT_EQ(read_file(B / "mine.txt"), "B only\n");
    sync(*a_);
    EXPECT_FALSE(fs::exists(replica() / "mine.txt"));
    EXPECT_EQ(read_file(replica() / "docs/plan.txt"), "the plan\n");
    EXPECT_FALSE(fs::exists(A / "mine.txt"));
    EXPECT_EQ(read_file(A / "docs/plan.txt"), "the plan\n");

    // What A does next still reaches B.
    write_file(A / "later.txt", "later, from A\n");
    sync(*a_);
    sync(*b_);
    EXPECT_EQ(read_file(B / "later.txt"), "later, from A\n");
    EXPECT_FALSE(fs::exists(replica() / "mine.txt"));
}

// A is killed while B's burst of files is being applied on it: some are
// applied and not yet committed. The restart's rescan finds them in the
// directory; none may be journaled on A as a change of A's own (it would
// be sent back as A's), and the server's journal has none from A.
TEST_F(ShareReliability, ChangesAppliedButNotCommittedWhenTheAgentIsKilledDoNotComeBackAsLocalOnes) {
    start(*a_, "a");
    start(*b_, "b");
    const fs::path A = a_->dir(), B = b_->dir();
    write_file(B / "first.txt", "first\n");
    sync(*b_);
    sync(*a_);
    constexpr int kFiles = 300;
    fs::create_directories(B / "burst");
    for (int i = 0; i < kFiles; ++i) write_file(B / fmt::format("burst/f{:03}.txt", i), pattern(4096 + i, i));
    sync(*b_);
    // Killed as soon as the burst begins to arrive.
    ASSERT_TRUE(eventually([&] { return fs::exists(A / "burst/f005.txt"); }, std::chrono::seconds(30)));
    a_->kill9();
    start(*a_, "a");
    sync(*a_);
    // Directory times aside (the applier's and the capture's echo of them
    // on a live agent are a gap of their own): every entry and byte equal.
    auto without_dir_times = [](const std::string& m) {
        std::istringstream in(m);
        std::string out;
        for (std::string line; std::getline(in, line);) {
            if (line.find(" d mode=") != std::string::npos)
                if (auto at = line.find(" mtime="); at != std::string::npos)
                    line.erase(at, line.find(' ', at + 1) - at);
            out += line + "\n";
        }
        return out;
    };
    auto ma = without_dir_times(manifest(A)), ms = without_dir_times(manifest(replica()));
    EXPECT_TRUE(ma == ms) << "after A's restart, A differs from the server's replica:\n" << manifest_diff(ma, ms);
    size_t local = 0;
    for (auto& r : journal_records(a_->journal())) {
        auto path = r.value("path", "");
        if (r.value("origin", "").empty() && path.starts_with("burst"))
            ADD_FAILURE() << "applied from B, journaled on A as A's own (" << ++local << "): " << r.dump();
        if (local >= 5) break;
    }
    // (Directory times alone are left out: the capture journals those the
    // applier sets on a live agent too, a gap of its own.)
    for (auto& r : journal_records(server_journal()))
        if (r.value("path", "").starts_with("burst/"))
            EXPECT_NE(r.value("origin", ""), "a") << "sent back by A: " << r.dump();
}

}  // namespace
}  // namespace iz::test::e2e
