#include "agent_fixture.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace iz::test::agent {

void AgentOn::SetUp() {
    // Expected modes below assume it; the runner's umask may differ.
    ::umask(022);
    auto made = ScratchFs::make(GetParam(), 320, "agent");
    ASSERT_TRUE(made.has_value()) << made.error().message;
    fs_ = std::move(*made);
    work_ = std::make_unique<TempDir>("agent-work");
    root_ = fs_->mount_point() / "w";
    fs::create_directory(root_);
    watch_ = std::make_unique<Watch>(root_, work_->path());
}

void AgentOn::TearDown() {
    // Daemon first (it holds the mount busy), then the mount, then its files.
    watch_.reset();
    fs_.reset();
    work_.reset();
}

void AgentOn::start(const std::vector<std::string>& extra) {
    auto r = watch_->start(extra);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_GT(watch_->pid(), 0) << "izwatch started but status does not answer";
    mark();
}

void AgentOn::sync() {
    auto r = watch_->sync();
    ASSERT_EQ(r.exit_code, 0) << r.err;
}

void AgentOn::mark() {
    auto s = watch_->status();
    ASSERT_TRUE(s.is_object());
    mark_ = s.value("head_lsn", uint64_t{0});
}

std::vector<json> AgentOn::changes() {
    auto r = watch_->sync();
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return mutations_after(watch_->journal(), mark_);
}

std::string fs_param_name(const ::testing::TestParamInfo<FsType>& info) { return fs_name(info.param); }

void write_file(const fs::path& p, const std::string& data, mode_t mode) {
    int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, mode);
    ASSERT_GE(fd, 0) << p << ": " << std::strerror(errno);
    if (!data.empty()) {
        EXPECT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size())) << p;
    }
    ::close(fd);
}

void append_file(const fs::path& p, const std::string& data) {
    int fd = ::open(p.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    ASSERT_GE(fd, 0) << p << ": " << std::strerror(errno);
    EXPECT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size())) << p;
    ::close(fd);
}

void make_dir(const fs::path& p, mode_t mode) { ASSERT_EQ(::mkdir(p.c_str(), mode), 0) << p << ": " << std::strerror(errno); }

void pwrite_all(int fd, uint64_t offset, size_t length, char fill) {
    std::string data(length, fill);
    ASSERT_EQ(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(length));
}

}  // namespace iz::test::agent
