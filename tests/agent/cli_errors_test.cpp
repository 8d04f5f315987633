// izwatch refuses what it cannot do with one clear line on stderr and a
// non-zero exit, and leaves nothing running behind.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "agent_fixture.hpp"

namespace iz::test::agent {
namespace {

// "izwatch: <reason>\n" and nothing else.
void expect_one_line_error(const ProcessResult& r, const std::string& needle) {
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_TRUE(r.err.starts_with("izwatch: ")) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.err.ends_with("\n")) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "'" << needle << "' not in: " << r.err;
}

class CliErrors : public ::testing::Test {
protected:
    TempDir work_{"agent-cli"};
    Watch watch_{work_.path() / "dir", work_.path()};
    void SetUp() override { fs::create_directory(work_.path() / "dir"); }
    // Nothing answers on the private run directory.
    void expect_nothing_running() {
        auto s = watch_.izwatch({"status", "--json"});
        EXPECT_EQ(s.exit_code, 0) << s.err;
        EXPECT_EQ(s.out, "[]\n");
    }
};

TEST_F(CliErrors, MissingDirectory) {
    auto missing = (work_.path() / "nope").string();
    Watch w(missing, work_.path());
    expect_one_line_error(w.start(), fmt::format("'{}' does not exist", missing));
    expect_nothing_running();
}

TEST_F(CliErrors, DirectoryIsAFile) {
    auto file = work_.path() / "file";
    write_file(file, "x");
    Watch w(file, work_.path());
    expect_one_line_error(w.start(), fmt::format("'{}' is not a directory", file.string()));
    expect_nothing_running();
}

TEST_F(CliErrors, NotRoot) {
    // nobody must be able to reach the directory to get as far as the check.
    fs::permissions(work_.path(), fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    auto r = run_process({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin_path("izwatch").string(),
                          "start", watch_.dir().string(), "--journal", watch_.journal_dir().string(), "--state-dir",
                          watch_.state_dir().string()},
                         watch_.env());
    expect_one_line_error(r, "needs root");
    expect_nothing_running();
    EXPECT_FALSE(fs::exists(watch_.journal_dir()));
}

TEST_F(CliErrors, StopStatusAndSyncOfAnUnwatchedDirectory) {
    auto dir = watch_.dir().string();
    auto not_watched = fmt::format("'{}' is not being watched", dir);
    expect_one_line_error(watch_.izwatch({"stop", dir}), not_watched);
    expect_one_line_error(watch_.izwatch({"status", dir}), not_watched);
    expect_one_line_error(watch_.izwatch({"sync", dir}), not_watched);
}

// ramfs has no file handles (no export operations, no fsid): fanotify
// cannot report FIDs on it, and the daemon must say so before detaching.
TEST_F(CliErrors, FilesystemWithoutFileHandles) {
    auto mnt = work_.path() / "ramfs";
    fs::create_directory(mnt);
    ASSERT_EQ(::mount("none", mnt.c_str(), "ramfs", 0, nullptr), 0) << std::strerror(errno);
    struct Unmount {
        fs::path p;
        ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
    } unmount{mnt};
    fs::create_directory(mnt / "w");
    Watch w(mnt / "w", work_.path());
    expect_one_line_error(w.start(), "without fanotify file-handle support");
    expect_nothing_running();
}

TEST_F(CliErrors, MetricsAddressThatIsNotOne) {
    expect_one_line_error(watch_.start({"--metrics", "nowhere"}), "--metrics 'nowhere': ");
    expect_nothing_running();
}

// Parsed by the command line, before capture is armed: no journal is
// begun for a start that cannot ship.
TEST_F(CliErrors, ServerAddressThatIsNotOne) {
    expect_one_line_error(watch_.start({"--server", "nowhere", "--key", "/dev/null"}),
                          "--server 'nowhere': invalid endpoint 'nowhere': missing ':PORT'");
    EXPECT_FALSE(fs::exists(watch_.journal_dir()));
    expect_nothing_running();
}

// A metrics address that is taken fails the start (after capture was
// armed: it is bound by the daemon), and nothing stays running.
class CliMetrics : public AgentOn {};

TEST_P(CliMetrics, ATakenMetricsAddressFailsTheStart) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct Close {
        int fd;
        ~Close() { ::close(fd); }
    } close_it{fd};
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(fd, 1), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    auto taken = fmt::format("127.0.0.1:{}", ntohs(a.sin_port));
    expect_one_line_error(watch().start({"--metrics", taken}),
                          fmt::format("listen for metrics on '{}': Address already in use", taken));
    auto s = watch().izwatch({"status", "--json"});
    EXPECT_EQ(s.out, "[]\n") << s.err;
}

INSTANTIATE_TEST_SUITE_P(Filesystems, CliMetrics, ::testing::Values(FsType::ext4), fs_param_name);

class CliAlreadyWatched : public AgentOn {};

TEST_P(CliAlreadyWatched, SecondStartIsRefused) {
    ASSERT_NO_FATAL_FAILURE(start());
    Watch second(root(), work_->path() / "second", watch().run_dir());
    auto r = second.start();
    expect_one_line_error(r, fmt::format("'{}' is already watched (izwatch pid {})", root().string(), watch().pid()));
    // The first one is untouched.
    EXPECT_TRUE(izwatch_alive(watch().pid()));
    EXPECT_TRUE(watch().status().is_object());
}

TEST_P(CliAlreadyWatched, SameDirectoryThroughAnotherPathIsRefused) {
    ASSERT_NO_FATAL_FAILURE(start());
    auto alias = work_->path() / "alias";
    fs::create_directory_symlink(root(), alias);
    Watch second(alias, work_->path() / "second", watch().run_dir());
    expect_one_line_error(second.start(), "is already watched");
}

INSTANTIATE_TEST_SUITE_P(Filesystems, CliAlreadyWatched, ::testing::Values(FsType::ext4), fs_param_name);

}  // namespace
}  // namespace iz::test::agent
