// The receiver's test for a local writer (open_writers.hpp): a file is
// open for writing exactly while some process holds a descriptor open for
// writing or a shared writable mapping of it, and testing takes nothing
// away (the lease is let go: a writer opening afterwards is not held up).
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>

#include "open_writers.hpp"
#include "support/tree.hpp"

namespace iz::agent {
namespace {

class OpenWriters : public ::testing::Test {
protected:
    void SetUp() override {
        block_lease_signal();
        std::ofstream(dir_ / "f") << "some bytes";
    }
    bool writing(const std::string& name) {
        auto r = open_for_writing(dir_ / name);
        EXPECT_TRUE(r) << (r ? "" : r.error().message);
        return r && *r;
    }
    int open_file(int flags) {
        int fd = ::open((dir_ / "f").c_str(), flags | O_CLOEXEC);
        EXPECT_GE(fd, 0) << std::strerror(errno);
        return fd;
    }
    test::TempDir dir_{"openw"};
};

TEST_F(OpenWriters, OpenForWritingOnlyWhileADescriptorForWritingIsOpen) {
    EXPECT_FALSE(writing("f"));
    int reader = open_file(O_RDONLY);
    EXPECT_FALSE(writing("f")) << "a reader is no writer";
    int writer = open_file(O_WRONLY | O_APPEND);
    EXPECT_TRUE(writing("f"));
    EXPECT_TRUE(writing("f")) << "testing changes nothing";
    ::close(writer);
    EXPECT_FALSE(writing("f"));
    int both = open_file(O_RDWR);
    EXPECT_TRUE(writing("f"));
    ::close(both);
    ::close(reader);
    EXPECT_FALSE(writing("f"));
}

TEST_F(OpenWriters, AnotherProcesssWriterCounts) {
    int ready[2], done[2];
    ASSERT_EQ(::pipe(ready), 0);
    ASSERT_EQ(::pipe(done), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0) << std::strerror(errno);
    if (child == 0) {
        ::close(done[1]);  // or the read below never ends
        int fd = ::open((dir_ / "f").c_str(), O_WRONLY);
        char c = fd >= 0 ? 'y' : 'n';
        (void)!::write(ready[1], &c, 1);
        (void)!::read(done[0], &c, 1);  // until the parent closes its end
        ::_exit(0);
    }
    ::close(ready[1]);
    ::close(done[0]);
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ASSERT_EQ(c, 'y');
    EXPECT_TRUE(writing("f"));
    ::close(done[1]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_FALSE(writing("f"));
    ::close(ready[0]);
}

// A shared writable mapping writes the file after its descriptor closed.
TEST_F(OpenWriters, ASharedWritableMappingCountsUntilUnmapped) {
    int fd = open_file(O_RDWR);
    void* map = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(map, MAP_FAILED) << std::strerror(errno);
    ::close(fd);
    EXPECT_TRUE(writing("f"));
    ::munmap(map, 4096);
    EXPECT_FALSE(writing("f"));
}

TEST_F(OpenWriters, WhatIsNoRegularFileIsNotOpenForWriting) {
    EXPECT_FALSE(writing("absent"));
    EXPECT_FALSE(writing("absent/below"));
    std::filesystem::create_directory(dir_ / "d");
    EXPECT_FALSE(writing("d"));
    std::filesystem::create_symlink("f", dir_ / "link");
    int writer = open_file(O_WRONLY);
    EXPECT_FALSE(writing("link")) << "a symlink is not followed";
    ::close(writer);
    ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0) << std::strerror(errno);
    EXPECT_FALSE(writing("fifo")) << "a fifo is not opened (that would block or have effects)";
}

// The lease taken to test is let go: a writer opening the file afterwards
// does not wait for a lease break (lease-break-time, 45 s by default).
TEST_F(OpenWriters, TestingLeavesNoLeaseBehind) {
    EXPECT_FALSE(writing("f"));
    auto before = std::chrono::steady_clock::now();
    int writer = open_file(O_WRONLY | O_NONBLOCK);  // EWOULDBLOCK if a lease were left
    EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(1));
    if (writer >= 0) ::close(writer);
}

}  // namespace
}  // namespace iz::agent
