// What is journaled is the watched directory and nothing else: changes
// elsewhere on the same filesystem (which fanotify reports, the mark being
// on the whole filesystem) and paths matching --exclude leave no record.
// Moving in from outside is a creation with content; moving out, a removal.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "agent_fixture.hpp"

namespace iz::test::agent {
namespace {

using Strings = std::vector<std::string>;

class Scope : public AgentOn {};

TEST_P(Scope, ChangesOutsideTheDirectoryAreNotJournaled) {
    auto other = mount() / "other";
    make_dir(other);
    write_file(other / "kept", "x");
    ASSERT_NO_FATAL_FAILURE(start());
    make_dir(other / "d");
    write_file(other / "d/f", "hello");
    ASSERT_EQ(::rename((other / "d/f").c_str(), (other / "g").c_str()), 0);
    ASSERT_EQ(::chmod((other / "kept").c_str(), 0600), 0);
    ASSERT_EQ(::unlink((other / "kept").c_str()), 0);
    write_file(mount() / "top", "at the mount root");
    // Something inside, so we know the agent was listening.
    write_file(at("inside"), "");
    EXPECT_EQ(described_changes(), Strings{"create inside"});
    EXPECT_GT(watch().status().value("events_outside", 0), 0);
}

// The kernel reports a file's link count change (link, unlink, a rename
// over it) on the inode alone, without a directory: those of files inside
// are not events outside.
TEST_P(Scope, AWorkloadInsideCountsNoEventOutside) {
    make_dir(at("d"));
    ASSERT_NO_FATAL_FAILURE(start());
    for (int i = 0; i < 50; ++i) {
        auto f = fmt::format("d/f{}", i);
        write_file(at(f), "data");
        ASSERT_EQ(::link(at(f).c_str(), at(f + ".h").c_str()), 0);
        ASSERT_EQ(::unlink(at(f).c_str()), 0);
        write_file(at(f + ".new"), "new");
        ASSERT_EQ(::rename(at(f + ".new").c_str(), at(f + ".h").c_str()), 0);
        make_dir(at(f + ".dir"));
        ASSERT_EQ(::rmdir(at(f + ".dir").c_str()), 0);
    }
    ASSERT_NO_FATAL_FAILURE(sync());
    auto s = watch().status();
    EXPECT_GE(s.value("events", 0), 300);
    EXPECT_EQ(s.value("events_outside", -1), 0) << s.dump();
}

TEST_P(Scope, MovingInIsACreationWithContentMovingOutARemoval) {
    auto other = mount() / "other";
    make_dir(other);
    write_file(other / "in", "brought along");
    make_dir(other / "tree");
    write_file(other / "tree/leaf", "leaf");
    write_file(at("out"), "leaving");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::rename((other / "in").c_str(), at("in").c_str()), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    ASSERT_EQ(::rename((other / "tree").c_str(), at("tree").c_str()), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    ASSERT_EQ(::rename(at("out").c_str(), (other / "out").c_str()), 0);
    auto got = changes();
    EXPECT_EQ(describe(got), (Strings{"create in", "write in", "mkdir tree", "create tree/leaf", "write tree/leaf",
                                      "unlink out"}));
    auto writes = with_op(got, "write");
    for (auto& w : writes) EXPECT_TRUE(names_whole_file(w)) << w.dump();
}

// A directory moved out leaves with what it holds. The replica removes
// nothing recursively (a directory it is told to remove that still has
// entries is kept aside as its own, with them), so each entry's removal
// comes before its directory's, deepest first.
TEST_P(Scope, ADirectoryMovedOutIsRemovedWithEachEntryBeneathIt) {
    auto other = mount() / "other";
    make_dir(other);
    make_dir(at("tree"));
    write_file(at("tree/a"), "a");
    make_dir(at("tree/sub"));
    write_file(at("tree/sub/leaf"), "leaf");
    ASSERT_EQ(::mkfifo(at("tree/sub/fifo").c_str(), 0600), 0);
    ASSERT_EQ(::symlink("a", at("tree/z").c_str()), 0);
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::rename(at("tree").c_str(), (other / "tree").c_str()), 0);
    EXPECT_EQ(described_changes(), (Strings{"unlink tree/z", "unlink tree/sub/leaf", "unlink tree/sub/fifo",
                                            "rmdir tree/sub", "unlink tree/a", "rmdir tree"}));
}

TEST_P(Scope, ExcludedPathsAreNotJournaled) {
    make_dir(at("cache"));
    write_file(at("cache/old"), "x");
    write_file(at("old.tmp"), "x");
    write_file(at("kept"), "");
    ASSERT_NO_FATAL_FAILURE(start({"--exclude", "*.tmp", "--exclude", "cache"}));
    // Not in the baseline either.
    for (auto& r : mutations_after(watch().journal(), 0)) {
        EXPECT_EQ(r.value("path", "").find("cache"), std::string::npos) << describe(r);
        EXPECT_EQ(r.value("path", "").find(".tmp"), std::string::npos) << describe(r);
    }
    write_file(at("new.tmp"), "scratch");
    ASSERT_EQ(::unlink(at("old.tmp").c_str()), 0);
    write_file(at("cache/new"), "y");
    make_dir(at("cache/sub"));
    write_file(at("cache/sub/deep"), "z");
    make_dir(at("d"));
    write_file(at("d/nested.tmp"), "z");
    append_file(at("kept"), "data");
    EXPECT_EQ(described_changes(), (Strings{"mkdir d", "write kept", "close_write kept"}));

    // The editor's save: written under an excluded name, renamed into place.
    // What appears is a new file with its content; what leaves, a removal.
    mark();
    ASSERT_EQ(::rename(at("new.tmp").c_str(), at("saved").c_str()), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    ASSERT_EQ(::rename(at("kept").c_str(), at("kept.tmp").c_str()), 0);
    EXPECT_EQ(described_changes(), (Strings{"create saved", "write saved", "unlink kept"}));
}

INSTANTIATE_TEST_SUITE_P(Filesystems, Scope, ::testing::Values(FsType::ext4, FsType::xfs), fs_param_name);

}  // namespace
}  // namespace iz::test::agent
