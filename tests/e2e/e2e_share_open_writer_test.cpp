// End to end, shared filesets: a file open for writing on one agent is not
// replaced under its writer by another agent's change. On B a process
// holds the file open and goes on writing while A's version arrives; B's
// receiver holds that forward until the writer closes, so B's bytes are
// journaled and go through the conflict rules: nothing either side wrote
// is lost, and A, B and the server end equal by the full manifest.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "e2e_share_fixture.hpp"

namespace fs = std::filesystem;

namespace iz::test::e2e {
namespace {

class ShareOpenWriter : public ShareFixture {
protected:
    ShareOpenWriter() : ShareFixture("openw") {}
};

// What `dir` holds at `name` and at its conflict copies.
std::vector<std::string> versions_of(const fs::path& dir, const std::string& name) {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(dir)) {
        auto n = e.path().filename().string();
        if (n == name || n.starts_with(name + ".conflict-")) out.push_back(read_file(e.path()));
    }
    return out;
}

void write_all(int fd, const std::string& bytes) {
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size())) << std::strerror(errno);
}

TEST_F(ShareOpenWriter, AFileOpenForWritingIsNotReplacedUnderItsWriter) {
    const std::string base = "the shared base\n";
    start(*a_, "a");
    start(*b_, "b");
    write_file(a_->dir() / "live.log", base);
    sync(*a_);
    sync(*b_);
    ASSERT_EQ(read_file(b_->dir() / "live.log"), base);

    // On B a writer appends and keeps the file open.
    int fd = ::open((b_->dir() / "live.log").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const std::string b1 = "B's first line, written with the file held open\n";
    write_all(fd, b1);

    // A changes the same file; its forward reaches B while B's writer is
    // still at work: held (B says so), or, without the fix, applied.
    const std::string from_a = "A's version, made while B was writing\n";
    write_file(a_->dir() / "live.log", from_a);
    sync(*a_);
    ASSERT_TRUE(eventually(
        [&] {
            return b_->log().find("no longer open for writing") != std::string::npos ||
                   read_file(b_->dir() / "live.log") == from_a;
        },
        std::chrono::seconds(30)))
        << b_->log();

    // Held: the writer's file is its own still, and B says why.
    EXPECT_EQ(read_file(b_->dir() / "live.log"), base + b1);
    EXPECT_NE(b_->log().find("waits until 'live.log' is no longer open for writing here"), std::string::npos)
        << b_->log();

    // B's writer writes more and closes.
    const std::string b2 = "B's second line, written after A's version arrived\n";
    write_all(fd, b2);
    ASSERT_EQ(::close(fd), 0) << std::strerror(errno);
    settle(4);

    // Every byte both wrote is present, at the name or its conflict copy,
    // on A, B and the server alike.
    const std::string from_b = base + b1 + b2;
    for (auto& dir : {a_->dir(), b_->dir(), replica()}) {
        auto versions = versions_of(dir, "live.log");
        std::string held;
        for (auto& v : versions) held += "  [" + v + "]\n";
        EXPECT_NE(std::find(versions.begin(), versions.end(), from_a), versions.end())
            << dir << " lacks A's version; it holds:\n" << held;
        EXPECT_NE(std::find(versions.begin(), versions.end(), from_b), versions.end())
            << dir << " lacks B's version (all that B's writer wrote); it holds:\n" << held;
    }
    expect_all_equal("after B's writer closed");
}

}  // namespace
}  // namespace iz::test::e2e
