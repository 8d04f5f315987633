// A store through a mapping into a page a write left dirty raises no event
// (capture.bpf.c). When the file was flushed a moment before and its close
// then comes with no modify event, the close re-journaled the ranges of that
// flush (kept for a libaio write still in flight) as though they said all:
// the store, elsewhere in the page, was journaled nowhere, and the replica
// kept the old bytes (the kill soak on ext4, seed 5031: 3 KiB of an mmap
// store). Its write must name the stored bytes or the whole file.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "agent_fixture.hpp"

namespace iz::test::agent {
namespace {

class MappedClose : public AgentOn {
protected:
    // Waits until the journal holds `count` records `op` of `rel` after LSN `after`.
    bool journaled(const std::string& op, const std::string& rel, uint64_t after, size_t count) {
        for (int i = 0; i < 200; ++i) {
            if (with_op(mutations_after(watch().journal(), after), op, rel).size() >= count) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        return false;
    }
};

TEST_P(MappedClose, AStoreIntoAPageAJustFlushedWriteLeftDirtyIsJournaled) {
    ASSERT_NO_FATAL_FAILURE(start());
    write_file(at("f"), std::string(32768, 'a'));
    ASSERT_NO_FATAL_FAILURE(sync());  // written back: every page clean
    uint64_t before = watch().journal().back().value("lsn", uint64_t{0});
    int fd = ::open(at("f").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_NO_FATAL_FAILURE(pwrite_all(fd, 0, 100, 'b'));  // page 0 dirty, by a write
    ::close(fd);
    ASSERT_TRUE(journaled("close_write", "f", before, 1));  // flushed: its range kept a while
    // A clock tick later, so the store moves the mtime.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    fd = ::open(at("f").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    void* map = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(map, MAP_FAILED);
    static_cast<char*>(map)[2000] = 'M';  // into the dirty page, past the write: no event now
    ASSERT_EQ(::munmap(map, 4096), 0);
    ::close(fd);
    // XFS reports the store's fault (a write of unknown content); ext4
    // says nothing until the close.
    ASSERT_TRUE(journaled("write", "f", before, 2));
    auto writes = with_op(mutations_after(watch().journal(), before), "write", "f");
    bool covers_the_store = false;
    for (auto& w : writes) {
        if (names_whole_file(w)) covers_the_store = true;
        for (auto [off, len] : ranges_of(w))
            if (off <= 2000 && off + len > 2000) covers_the_store = true;
    }
    EXPECT_TRUE(covers_the_store) << "no write names the stored byte: "
                                  << ::testing::PrintToString(describe(mutations_after(watch().journal(), before)));
}

INSTANTIATE_TEST_SUITE_P(Filesystems, MappedClose, ::testing::Values(FsType::ext4, FsType::xfs), fs_param_name);

}  // namespace
}  // namespace iz::test::agent
