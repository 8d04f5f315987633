// FileMemory across restarts: what a crash may lose of its log only ever
// makes a path unknown (adopted), never a false conflict.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "file_memory.hpp"
#include "support/tree.hpp"

namespace iz::replicator {
namespace {

struct stat file_stat(uint64_t ino, uint64_t size, int64_t mtime_s) {
    struct stat st{};
    st.st_ino = ino;
    st.st_size = static_cast<off_t>(size);
    st.st_mtim.tv_sec = mtime_s;
    return st;
}

class FileMemoryRestart : public ::testing::Test {
protected:
    std::unique_ptr<FileMemory> open() {
        auto m = FileMemory::open(dir_.path());
        EXPECT_TRUE(m) << m.error().message;
        return m ? std::move(*m) : nullptr;
    }
    test::TempDir dir_{"file-memory"};
};

TEST_F(FileMemoryRestart, SyncedRecordsAreKnownAfterReopening) {
    auto m = open();
    m->remember("a", file_stat(10, 5, 100));
    m->alias("b", 10);
    ASSERT_TRUE(m->sync());
    m.reset();
    m = open();
    EXPECT_TRUE(m->ours("a", file_stat(10, 5, 100)));
    EXPECT_TRUE(m->ours("b", file_stat(10, 5, 100)));
    EXPECT_TRUE(m->changed("a", file_stat(10, 6, 100)).has_value()) << "a modified file is not noticed";
    EXPECT_TRUE(m->changed("a", file_stat(11, 5, 100)).has_value()) << "a replaced file is not noticed";
}

// New paths' first records are written a batch at a time: lost in a crash,
// they leave the paths unknown.
TEST_F(FileMemoryRestart, UnsyncedNewPathsAreUnknownAfterACrash) {
    auto m = open();
    for (uint64_t i = 0; i < 100; ++i) m->remember("new" + std::to_string(i), file_stat(100 + i, i, 100));
    m.reset();  // no sync: what a kill -9 leaves
    m = open();
    EXPECT_EQ(m->paths(), 0u);
    EXPECT_FALSE(m->changed("new1", file_stat(999, 1, 1)).has_value());
}

// A known path's new record must survive a crash of the process (it sits in
// the page cache): lost, the old record would call the replicator's own
// change a change behind its back.
TEST_F(FileMemoryRestart, ANewRecordOfAKnownPathSurvivesACrash) {
    auto m = open();
    m->remember("a", file_stat(10, 5, 100));
    ASSERT_TRUE(m->sync());
    m->doubt(10);
    m->remember("a", file_stat(11, 7, 200));  // replaced by new content
    m->remember("fresh", file_stat(12, 1, 100));
    m.reset();  // no sync
    m = open();
    EXPECT_FALSE(m->changed("a", file_stat(11, 7, 200)).has_value());
    EXPECT_TRUE(m->ours("a", file_stat(11, 7, 200)));
}

// A path forgotten, flushed (the applier records progress past that
// operation) and made again by the replicator: whatever part of the rest a
// crash loses, the new file is never taken for a change behind its back.
TEST_F(FileMemoryRestart, APathForgottenAndMadeAgainIsNeverAFalseConflict) {
    auto m = open();
    m->remember("a", file_stat(10, 5, 100));
    ASSERT_TRUE(m->sync());
    m->forget("a");
    m->flush();
    m->remember("a", file_stat(20, 9, 300));
    m.reset();  // no sync
    m = open();
    EXPECT_FALSE(m->changed("a", file_stat(20, 9, 300)).has_value());
}

// A changed inode's new record waits (a setattr, a write in place): lost,
// the doubt logged before the change leaves the inode unknown, never a
// false conflict.
TEST_F(FileMemoryRestart, ANewRecordOfTheSameInodeMayBeLostWithoutAFalseConflict) {
    auto m = open();
    m->remember("a", file_stat(10, 5, 100));
    ASSERT_TRUE(m->sync());
    m->doubt(10);
    m->remember("a", file_stat(10, 9, 200));
    EXPECT_TRUE(m->ours("a", file_stat(10, 9, 200)));
    m.reset();  // killed: no flush, no sync
    m = open();
    EXPECT_FALSE(m->changed("a", file_stat(10, 9, 200)).has_value());
    EXPECT_FALSE(m->ours("a", file_stat(10, 5, 100))) << "the doubt was lost";
}

// Forgets wait for company like first records; lost, the removal that
// logged them is replayed and forgets again.
TEST_F(FileMemoryRestart, AWaitingForgetIsLostWithTheProcessAndForgottenAgainOnReplay) {
    auto m = open();
    m->remember("a", file_stat(10, 5, 100));
    ASSERT_TRUE(m->sync());
    m->forget("a");
    m.reset();  // killed: no flush, no sync
    m = open();
    EXPECT_TRUE(m->ours("a", file_stat(10, 5, 100)));
    m->forget("a");
    EXPECT_FALSE(m->ours("a", file_stat(10, 5, 100)));
    m->flush();
    m.reset();
    m = open();
    EXPECT_FALSE(m->ours("a", file_stat(10, 5, 100)));
}

// "a.txt" sorts between "a" and "a/x": forgetting or moving the directory
// "a" still reaches everything beneath it, and nothing beside it.
TEST_F(FileMemoryRestart, ADirectoryIsForgottenAndMovedWholeBesideSimilarNames) {
    auto m = open();
    m->remember("a.txt", file_stat(1, 1, 100));
    m->remember("a/x", file_stat(2, 1, 100));
    m->remember("a-b/y", file_stat(3, 1, 100));
    m->remember("a/z/w", file_stat(4, 1, 100));
    m->move("a", "b");
    EXPECT_TRUE(m->ours("b/x", file_stat(2, 1, 100)));
    EXPECT_TRUE(m->ours("b/z/w", file_stat(4, 1, 100)));
    EXPECT_FALSE(m->ours("a/x", file_stat(2, 1, 100)));
    m->forget("b");
    EXPECT_FALSE(m->ours("b/x", file_stat(2, 1, 100)));
    EXPECT_FALSE(m->ours("b/z/w", file_stat(4, 1, 100)));
    EXPECT_TRUE(m->ours("a.txt", file_stat(1, 1, 100)));
    EXPECT_TRUE(m->ours("a-b/y", file_stat(3, 1, 100)));
    ASSERT_TRUE(m->sync());
    m.reset();
    m = open();
    EXPECT_FALSE(m->ours("b/x", file_stat(2, 1, 100)));
    EXPECT_TRUE(m->ours("a.txt", file_stat(1, 1, 100)));
}

}  // namespace
}  // namespace iz::replicator
