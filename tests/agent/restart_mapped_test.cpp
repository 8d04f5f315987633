// A store through a shared mapping into a page a write left dirty is
// reported when the kernel writes the page back (capture.bpf.c), for the
// files the capture saw mapped. An agent killed before that writeback
// takes the knowledge with it, and a later record of the file read the
// mtime the store had moved: the next start found the file as the journal
// left it and sent nothing, and the replica kept the old bytes for good
// (the kill soak, ext4). The start now compares the content of every file
// whose pages are not written back yet.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "agent_fixture.hpp"

namespace iz::test::agent {
namespace {

class RestartMapped : public AgentOn {
protected:
    // Waits until the journal holds a close_write of `rel` after LSN `after`.
    bool journaled_close(const std::string& rel, uint64_t after) {
        for (int i = 0; i < 200; ++i) {
            if (!with_op(mutations_after(watch().journal(), after), "close_write", rel).empty()) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        return false;
    }

    void store_kill_and_restart(bool old_mtime, bool moved = false);
};

// Stores a byte at offset 100 of `f` through a mapping into a page a write
// left dirty, then (when `old_mtime`) sets its mtime back to before this
// run, kills the agent before any writeback, (when `moved`) renames it to
// `g` meanwhile, starts the agent again, and expects the restart to
// journal a write of the stored byte.
void RestartMapped::store_kill_and_restart(bool old_mtime, bool moved) {
    ASSERT_NO_FATAL_FAILURE(start());
    write_file(at("f"), std::string(32768, 'a'));
    ASSERT_NO_FATAL_FAILURE(sync());  // written back: every page clean
    uint64_t before_writes = watch().journal().back().value("lsn", uint64_t{0});
    int fd = ::open(at("f").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_NO_FATAL_FAILURE(pwrite_all(fd, 0, 4096, 'b'));  // page 0 dirty, by a write
    void* map = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(map, MAP_FAILED);
    static_cast<char*>(map)[100] = 'M';  // into the dirty page: no event now
    ASSERT_EQ(::munmap(map, 4096), 0);
    ASSERT_NO_FATAL_FAILURE(pwrite_all(fd, 16384, 4096, 'c'));  // a record that reads the mtime after the store
    if (old_mtime) {
        // As the workload's utimensat: the mtime the tree keeps is now
        // older than the run, the ctime is not.
        struct timespec times[2] = {{0, UTIME_OMIT}, {1'500'000'000, 0}};
        ASSERT_EQ(::futimens(fd, times), 0);
    }
    ::close(fd);
    ASSERT_TRUE(journaled_close("f", before_writes));
    watch().kill_daemon();  // before any writeback
    const std::string name = moved ? "g" : "f";
    if (moved) {
        ASSERT_EQ(::rename(at("f").c_str(), at("g").c_str()), 0);
    }

    uint64_t before = watch().journal().back().value("lsn", uint64_t{0});
    ASSERT_NO_FATAL_FAILURE(start());
    auto writes = with_op(mutations_after(watch().journal(), before), "write", name);
    bool covers_the_store = false;
    for (auto& w : writes) {
        if (names_whole_file(w)) covers_the_store = true;
        for (auto [off, len] : ranges_of(w))
            if (off <= 100 && off + len > 100) covers_the_store = true;
    }
    EXPECT_TRUE(covers_the_store) << "the restart journaled no write of the stored byte: "
                                  << ::testing::PrintToString(describe(mutations_after(watch().journal(), before)));
}

TEST_P(RestartMapped, AStoreIntoADirtyPageBeforeAKillIsSentByTheRestart) { store_kill_and_restart(false); }

// The same with the file's mtime set back to before the run after the
// store (seen in the kill soak, ext4 seed 6065): the tree's mtime said the
// last run never changed the file, and the restart left its content alone.
TEST_P(RestartMapped, AStoreIntoADirtyPageWhoseMtimeWasSetBackIsSentByTheRestart) { store_kill_and_restart(true); }

// And with the file renamed while no agent ran (its directory was, in the
// soak): the saved tree's path named nothing, and the file was not looked
// at. It is found by its handle.
TEST_P(RestartMapped, AStoreIntoADirtyPageOfAFileMovedWhileNoAgentRanIsSentByTheRestart) {
    store_kill_and_restart(true, true);
}

INSTANTIATE_TEST_SUITE_P(Filesystems, RestartMapped, ::testing::Values(FsType::ext4, FsType::xfs), fs_param_name);

}  // namespace
}  // namespace iz::test::agent
