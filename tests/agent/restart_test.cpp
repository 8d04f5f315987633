// What changes while no agent runs is found at the next start: the tree
// state persisted at stop is compared with a fresh scan, and the
// differences are journaled as ordinary records; unchanged entries give
// none.
#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>

#include "agent_fixture.hpp"
#include "replay.hpp"

namespace iz::test::agent {
namespace {

using Strings = std::vector<std::string>;

class Restart : public AgentOn {
protected:
    Strings sorted(Strings v) {
        std::sort(v.begin(), v.end());
        return v;
    }

    // The records but the times set on directories, which come wherever the
    // state knew an older mtime than a directory has (its mkdir was read
    // before entries were made in it, or entries changed with no record):
    // each must carry the mtime the directory has.
    std::vector<json> without_directory_times(const std::vector<json>& records) {
        std::vector<json> out;
        for (auto& r : records) {
            struct stat st{};
            if (r.value("op", "") != "setattr" || ::stat(at(r.value("path", "")).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
                out.push_back(r);
                continue;
            }
            EXPECT_EQ(r.value("mtime_ns", int64_t{0}), int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec)
                << r.dump();
        }
        return out;
    }
};

TEST_P(Restart, ChangesMadeWhileStoppedAreJournaledAtTheNextStart) {
    write_file(at("same"), "unchanged");
    make_dir(at("dir"));
    write_file(at("dir/same"), "unchanged");
    write_file(at("mod"), "short");
    write_file(at("del"), "bye");
    write_file(at("ren"), "moving");
    write_file(at("perm"), "p");
    make_dir(at("olddir"));
    // Written back, as files made long before a run are: a file the last
    // run may have changed (its ctime) whose pages are still dirty has its
    // content compared at the start (unflushed_content.hpp), and a chmod or
    // rename while stopped moves the ctime too.
    ::sync();
    ASSERT_NO_FATAL_FAILURE(start());
    auto stopped = watch().stop();
    ASSERT_EQ(stopped.exit_code, 0) << stopped.err;

    append_file(at("mod"), " and longer");
    ASSERT_EQ(::unlink(at("del").c_str()), 0);
    ASSERT_EQ(::rename(at("ren").c_str(), at("ren2").c_str()), 0);
    ASSERT_EQ(::chmod(at("perm").c_str(), 0600), 0);
    ASSERT_EQ(::rmdir(at("olddir").c_str()), 0);
    write_file(at("new"), "fresh");
    make_dir(at("newdir"));
    write_file(at("newdir/empty"), "");

    uint64_t before = watch().journal().back().value("lsn", uint64_t{0});
    ASSERT_NO_FATAL_FAILURE(start());
    auto records = watch().journal();
    auto got = mutations_after(records, before);
    // The renamed file is known by its handle: a rename, and its content stays.
    EXPECT_EQ(sorted(describe(got)), sorted({"write mod", "setattr mod", "unlink del", "rename ren -> ren2",
                                             "setattr perm", "rmdir olddir", "create new", "write new", "setattr new",
                                             "mkdir newdir", "create newdir/empty"}));
    for (auto& r : with_op(got, "setattr", "perm")) EXPECT_EQ(r.value("mode", ""), "0100600");
    for (auto& r : with_op(got, "write", "mod")) EXPECT_EQ(r.value("size", 0), 16);
    // Nobody saw those writes happen: the whole file is what changed.
    for (auto& r : with_op(got, "write")) EXPECT_TRUE(names_whole_file(r)) << r.dump();
    auto last = records.back();
    EXPECT_EQ(last.value("op", ""), "rescan");
    EXPECT_EQ(last.value("message", ""), "restart: 11 differences journaled");

    // The whole journal, across both runs, describes the tree.
    std::vector<std::string> problems;
    auto journaled = replay(records, problems);
    EXPECT_EQ(differences(journaled, list_tree(root())), Strings{});
    EXPECT_EQ(problems, Strings{});

    // Capture goes on with the state the restart found.
    ASSERT_EQ(::rename(at("ren2").c_str(), at("ren3").c_str()), 0);
    EXPECT_EQ(described_changes(), Strings{"rename ren2 -> ren3"});
}

TEST_P(Restart, AnUnchangedTreeGivesNoRecords) {
    write_file(at("a"), "x");
    make_dir(at("d"));
    ASSERT_EQ(::symlink("a", at("d/s").c_str()), 0);
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(watch().stop().exit_code, 0);
    uint64_t before = watch().journal().back().value("lsn", uint64_t{0});
    ASSERT_NO_FATAL_FAILURE(start());
    auto records = watch().journal();
    EXPECT_EQ(describe(mutations_after(records, before)), Strings{});
    EXPECT_EQ(records.back().value("message", ""), "restart: 0 differences journaled");
}

// The state is saved every few seconds; a kill -9 leaves it behind the
// journal. Here it knows none of the moves, and compared with the tree as
// it was saved, the subtree removed while no agent ran looked like files
// and directories at names the replica never held ("unlink a/d/d2" of
// what the replica holds as a directory, "mkdir a"...): the replica kept
// a/d/d2/e/f. The restart compares with what the journal says instead.
TEST_P(Restart, AfterAKillTheRestartRemovesWhatTheJournalMade) {
    ASSERT_NO_FATAL_FAILURE(start());
    make_dir(at("a"));
    make_dir(at("a/d"));
    make_dir(at("a/d/e"));
    write_file(at("a/d/e/f"), "");
    ASSERT_EQ(::rename(at("a/d").c_str(), at("a/d2").c_str()), 0);
    make_dir(at("a/d"));
    ASSERT_EQ(::rename(at("a/d2").c_str(), at("a/d/d2").c_str()), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    watch().kill_daemon();
    fs::remove_all(at("a/d/d2"));

    uint64_t before = watch().journal().back().value("lsn", uint64_t{0});
    ASSERT_NO_FATAL_FAILURE(start());
    auto records = watch().journal();
    // Children first, each as what the replica holds.
    EXPECT_EQ(describe(without_directory_times(mutations_after(records, before))),
              (Strings{"unlink a/d/d2/e/f", "rmdir a/d/d2/e", "rmdir a/d/d2"}));
    std::vector<std::string> problems;
    EXPECT_EQ(differences(replay(records, problems), list_tree(root())), Strings{});
    EXPECT_EQ(problems, Strings{});
}

// Exchanges journaled after the tree was last saved are replayed onto it as
// a replica applies them: the restart then finds nothing to do. (Ignored,
// the saved tree kept each name's old object, and the restart journaled
// the swaps again as renames through temporary names.)
TEST_P(Restart, AfterAKillExchangesJournaledSinceTheSaveAreReplayed) {
    ASSERT_NO_FATAL_FAILURE(start());
    write_file(at("f"), "AAA");
    write_file(at("g"), "BB");
    make_dir(at("a"));
    write_file(at("a/x"), "in a");
    make_dir(at("b"));
    write_file(at("b/y"), "in b");
    ASSERT_NO_FATAL_FAILURE(sync());
    ASSERT_EQ(::renameat2(AT_FDCWD, at("f").c_str(), AT_FDCWD, at("g").c_str(), RENAME_EXCHANGE), 0);
    ASSERT_EQ(::renameat2(AT_FDCWD, at("a").c_str(), AT_FDCWD, at("b").c_str(), RENAME_EXCHANGE), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    watch().kill_daemon();

    uint64_t before = watch().journal().back().value("lsn", uint64_t{0});
    ASSERT_NO_FATAL_FAILURE(start());
    auto records = watch().journal();
    EXPECT_EQ(describe(without_directory_times(mutations_after(records, before))), Strings{});
    std::vector<std::string> problems;
    EXPECT_EQ(differences(replay(records, problems), list_tree(root())), Strings{});
    EXPECT_EQ(problems, Strings{});
}

// An entry is known by its handle, wherever it went while no agent ran: a
// file or directory moved is renamed (a directory with everything in it),
// a new name of a file is a link, names swapped are exchanged (one record,
// which a server that replays it finds done), and no content travels for
// any of them.
TEST_P(Restart, EntriesMovedWhileStoppedAreRenamedNotCopied) {
    ASSERT_NO_FATAL_FAILURE(start());
    {
        // 700 MiB with 4 KiB of data in it.
        int fd = ::open(at("big").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::ftruncate(fd, 700ll << 20), 0);
        ASSERT_NO_FATAL_FAILURE(pwrite_all(fd, 100 << 20, 4096));
        ::close(fd);
    }
    make_dir(at("tree"));
    make_dir(at("tree/sub"));
    write_file(at("tree/sub/x"), "deep");
    write_file(at("tree/y"), "shallow");
    write_file(at("p"), "was p");
    write_file(at("q"), "was q");
    write_file(at("h"), "linked later");
    make_dir(at("outer"));
    make_dir(at("outer/inner"));
    write_file(at("outer/inner/z"), "inside");
    ASSERT_NO_FATAL_FAILURE(sync());
    watch().kill_daemon();

    make_dir(at("dest"));
    ASSERT_EQ(::rename(at("big").c_str(), at("dest/big").c_str()), 0);
    ASSERT_EQ(::rename(at("tree").c_str(), at("renamed-tree").c_str()), 0);
    ASSERT_EQ(::rename(at("p").c_str(), at("swap").c_str()), 0);
    ASSERT_EQ(::rename(at("q").c_str(), at("p").c_str()), 0);
    ASSERT_EQ(::rename(at("swap").c_str(), at("q").c_str()), 0);
    ASSERT_EQ(::link(at("h").c_str(), at("h2").c_str()), 0);
    // Inside out: the inner directory takes the outer one in.
    ASSERT_EQ(::rename(at("outer/inner").c_str(), at("inner").c_str()), 0);
    ASSERT_EQ(::rename(at("outer").c_str(), at("inner/outer").c_str()), 0);

    uint64_t before = watch().journal().back().value("lsn", uint64_t{0});
    ASSERT_NO_FATAL_FAILURE(start());
    auto records = watch().journal();
    auto got = mutations_after(records, before);
    auto namespace_records = without_directory_times(got);
    EXPECT_EQ(describe(namespace_records),
              (Strings{"mkdir dest", "rename big -> dest/big", "link h -> h2", "rename outer/inner -> inner",
                       "rename outer -> inner/outer", "rename tree -> renamed-tree", "exchange q -> p"}));
    EXPECT_EQ(with_op(got, "write"), std::vector<json>{});
    std::vector<std::string> problems;
    EXPECT_EQ(differences(replay(records, problems), list_tree(root())), Strings{});
    EXPECT_EQ(problems, Strings{});
}

// Names shifted by one (f0 to f1, f1 to f2...) while no agent ran: each
// file is renamed once, last first, each into the name the one before
// freed; no temporary names, and no content.
TEST_P(Restart, NamesShiftedByOneAreRenamedOnce) {
    constexpr int kFiles = 2000;
    make_dir(at("logs"));
    for (int i = 0; i < kFiles; ++i) write_file(at(fmt::format("logs/f{}", i)), fmt::format("content {}", i));
    ::sync();  // written back (see ChangesMadeWhileStoppedAreJournaledAtTheNextStart)
    ASSERT_NO_FATAL_FAILURE(start());
    watch().kill_daemon();
    for (int i = kFiles - 1; i >= 0; --i)
        ASSERT_EQ(::rename(at(fmt::format("logs/f{}", i)).c_str(), at(fmt::format("logs/f{}", i + 1)).c_str()), 0);

    uint64_t before = watch().journal().back().value("lsn", uint64_t{0});
    ASSERT_NO_FATAL_FAILURE(start());
    auto records = watch().journal();
    auto got = mutations_after(records, before);
    ASSERT_EQ(got.size(), size_t{kFiles});
    for (int i = 0; i < kFiles; ++i)
        EXPECT_EQ(describe(got[i]), fmt::format("rename logs/f{} -> logs/f{}", kFiles - 1 - i, kFiles - i));
    std::vector<std::string> problems;
    EXPECT_EQ(differences(replay(records, problems), list_tree(root())), Strings{});
    EXPECT_EQ(problems, Strings{});
}

INSTANTIATE_TEST_SUITE_P(Filesystems, Restart, ::testing::Values(FsType::ext4, FsType::xfs), fs_param_name);

}  // namespace
}  // namespace iz::test::agent
