// renameat2's flags: RENAME_EXCHANGE swaps two names (fanotify reports it
// as two moves and no delete), RENAME_NOREPLACE is a rename that fails
// rather than replace anything, RENAME_WHITEOUT leaves a whiteout (a
// character device 0:0) at the old name without an event of its own.
// Replayed, the journal must give the tree as it is.
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "agent_fixture.hpp"
#include "replay.hpp"

namespace iz::test::agent {
namespace {

using Strings = std::vector<std::string>;

class RenameFlags : public AgentOn {
protected:
    int rename2(const std::string& from, const std::string& to, unsigned flags) {
        return ::renameat2(AT_FDCWD, at(from).c_str(), AT_FDCWD, at(to).c_str(), flags);
    }
    void expect_journal_gives_the_tree() {
        std::vector<std::string> problems;
        EXPECT_EQ(differences(replay(watch().journal(), problems), list_tree(root())), Strings{});
        EXPECT_EQ(problems, Strings{});
    }
};

TEST_P(RenameFlags, ExchangeOfTwoFilesIsOneRecord) {
    write_file(at("f"), "AAA");
    write_file(at("g"), "BB");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(rename2("f", "g", RENAME_EXCHANGE), 0) << std::strerror(errno);
    auto got = changes();
    ASSERT_EQ(describe(got), Strings{"exchange f -> g"});
    EXPECT_EQ(got[0].value("pid", 0), getpid());
    // Each name goes on with its new file.
    mark();
    append_file(at("f"), "+f");
    ASSERT_NO_FATAL_FAILURE(sync());
    append_file(at("g"), "+g");
    EXPECT_EQ(described_changes(), (Strings{"write f", "close_write f", "write g", "close_write g"}));
    expect_journal_gives_the_tree();
}

TEST_P(RenameFlags, ExchangeOfTwoDirectoriesTakesTheirEntriesAlong) {
    make_dir(at("a"));
    write_file(at("a/x"), "in a");
    make_dir(at("b"));
    write_file(at("b/y"), "in b");
    make_dir(at("b/sub"));
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(rename2("a", "b", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_NO_FATAL_FAILURE(sync());
    append_file(at("a/y"), "more");
    write_file(at("a/sub/new"), "");
    ASSERT_NO_FATAL_FAILURE(sync());
    ASSERT_EQ(::unlink(at("b/x").c_str()), 0);
    EXPECT_EQ(described_changes(), (Strings{"exchange a -> b", "write a/y", "close_write a/y", "create a/sub/new",
                                            "unlink b/x"}));
    expect_journal_gives_the_tree();
}

TEST_P(RenameFlags, ExchangeOfAFileAndADirectory) {
    write_file(at("f"), "file");
    make_dir(at("d"));
    write_file(at("d/inner"), "inner");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(rename2("d", "f", RENAME_EXCHANGE), 0) << std::strerror(errno);
    EXPECT_EQ(described_changes(), Strings{"exchange d -> f"});
    expect_journal_gives_the_tree();
}

// Read late, after more changes to both names (one of them gone, so the
// exchange cannot be recognised when its first move is read): the journal
// still gives the tree.
TEST_P(RenameFlags, ExchangesReadLateStillReplayToTheTree) {
    write_file(at("f"), "AAA");
    write_file(at("g"), "BB");
    write_file(at("p"), "P");
    write_file(at("q"), "QQ");
    make_dir(at("a"));
    write_file(at("a/x"), "in a");
    make_dir(at("b"));
    write_file(at("b/y"), "in b");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    ASSERT_EQ(rename2("f", "g", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(::unlink(at("f").c_str()), 0);
    ASSERT_EQ(rename2("p", "q", RENAME_EXCHANGE), 0) << std::strerror(errno);
    append_file(at("p"), "+p");
    ASSERT_EQ(rename2("a", "b", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(::rename(at("b").c_str(), at("c").c_str()), 0);
    write_file(at("a/z"), "new in a");
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    expect_journal_gives_the_tree();
}

// An exchange of a file with a directory that moved on before the exchange
// was read: the directory is no longer at the file's old name, so it cannot
// be seen to have gone there. A rename can never put a file over a
// directory (nor a directory over a file), so the first move is still an
// exchange; taken for a rename that replaced the directory, the journal
// dropped the directory's entries (a link in it among them) and made it
// again, empty, at its new name.
TEST_P(RenameFlags, AFileExchangedWithADirectoryThatMovedOnIsStillAnExchange) {
    write_file(at("f"), "file");
    make_dir(at("d"));
    write_file(at("d/inner"), "inner");
    write_file(at("other"), "linked");
    ASSERT_EQ(::link(at("other").c_str(), at("d/h").c_str()), 0) << std::strerror(errno);
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    ASSERT_EQ(rename2("f", "d", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(::rename(at("f").c_str(), at("e").c_str()), 0) << std::strerror(errno);
    ASSERT_EQ(::link(at("other").c_str(), at("e/h2").c_str()), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    auto described = describe(changes());
    EXPECT_EQ(described, (Strings{"exchange f -> d", "rename f -> e", "link other -> e/h2"}))
        << fmt::format("{}", fmt::join(described, "\n"));
    expect_journal_gives_the_tree();
}

// With a name outside the watched directory: the file that arrives is
// journaled with its content, after the removal of the one that left (a
// creation over a name the replica has a file of its own at would read
// there as a replay, and keep that file's xattrs and other names).
TEST_P(RenameFlags, ExchangeWithANameOutsideBringsTheOtherFileIn) {
    make_dir(mount() / "other");
    write_file(mount() / "other/o", "from outside");
    write_file(at("f"), "inside");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::renameat2(AT_FDCWD, (mount() / "other/o").c_str(), AT_FDCWD, at("f").c_str(), RENAME_EXCHANGE), 0)
        << std::strerror(errno);
    auto got = changes();
    auto described = describe(got);
    ASSERT_GE(described.size(), 2u) << fmt::format("{}", fmt::join(described, "\n"));
    EXPECT_EQ(described[0], "unlink f") << fmt::format("{}", fmt::join(described, "\n"));
    EXPECT_EQ(described[1], "create f") << fmt::format("{}", fmt::join(described, "\n"));
    auto writes = with_op(got, "write", "f");
    ASSERT_EQ(writes.size(), 1u) << fmt::format("{}", fmt::join(describe(got), "\n"));
    EXPECT_TRUE(names_whole_file(writes[0]));
}

// A directory exchanged with a file from outside and back before the
// events are read: the file's arrival is read when the directory is at its
// name again, as the tree has it. Nothing there was replaced by the file:
// taken for a replacement, the journal removed the directory and made the
// file there, which its next records then made a directory again over.
// (The directory's own move out and back is journaled as its removal and
// its making again with its contents: they may have changed outside.)
TEST_P(RenameFlags, ADirectoryExchangedWithAFileFromOutsideAndBackIsNotTakenForTheFile) {
    make_dir(mount() / "other");
    write_file(mount() / "other/o", "from outside");
    make_dir(at("d"));
    write_file(at("d/inner"), "inner");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    for (int i = 0; i < 2; ++i)
        ASSERT_EQ(::renameat2(AT_FDCWD, (mount() / "other/o").c_str(), AT_FDCWD, at("d").c_str(), RENAME_EXCHANGE), 0)
            << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    auto described = describe(changes());
    EXPECT_EQ(std::count(described.begin(), described.end(), "create d"), 0)
        << fmt::format("{}", fmt::join(described, "\n"));
    expect_journal_gives_the_tree();
}

TEST_P(RenameFlags, NoReplaceIsARenameAndJournalsNothingWhenItFails) {
    write_file(at("a"), "a");
    write_file(at("b"), "b");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(rename2("a", "b", RENAME_NOREPLACE), -1);
    EXPECT_EQ(errno, EEXIST);
    ASSERT_EQ(rename2("a", "c", RENAME_NOREPLACE), 0) << std::strerror(errno);
    auto got = changes();
    ASSERT_EQ(describe(got), Strings{"rename a -> c"});
    EXPECT_EQ(got[0].value("replaced", true), false);
    expect_journal_gives_the_tree();
}

TEST_P(RenameFlags, WhiteoutLeftAtTheOldNameIsJournaled) {
    write_file(at("a"), "data");
    make_dir(at("d"));
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(rename2("a", "b", RENAME_WHITEOUT), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("d", "e", RENAME_WHITEOUT), 0) << std::strerror(errno);
    struct stat st{};
    ASSERT_EQ(::lstat(at("a").c_str(), &st), 0);
    ASSERT_TRUE(S_ISCHR(st.st_mode));
    auto got = changes();
    ASSERT_EQ(describe(got), (Strings{"rename a -> b", "mknod a", "rename d -> e", "mknod d"}));
    for (auto& r : with_op(got, "mknod")) {
        EXPECT_EQ(r.value("mode", ""), fmt::format("{:07o}", st.st_mode)) << r.dump();
        EXPECT_EQ(r.value("rdev", -1), 0) << r.dump();
        EXPECT_EQ(r.value("owner_uid", -1), static_cast<int>(st.st_uid)) << r.dump();
    }
    expect_journal_gives_the_tree();
}

// Made and renamed before the agent reads the create events: the name
// holds a whiteout by then, not what was made there.
TEST_P(RenameFlags, EntriesRenamedWithAWhiteoutBeforeTheirEventsAreRead) {
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    write_file(at("f"), "content");
    ASSERT_EQ(rename2("f", "f2", RENAME_WHITEOUT), 0) << std::strerror(errno);
    make_dir(at("d"));
    make_dir(at("d/inner"));
    write_file(at("d/inner/x"), "deep");
    ASSERT_EQ(rename2("d", "d2", RENAME_WHITEOUT), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    expect_journal_gives_the_tree();
    auto got = changes();
    auto last = [&](const std::string& path) {
        std::string op;
        for (auto& r : got)
            if (r.value("path", "") == path || r.value("target", "") == path) op = describe(r);
        return op;
    };
    auto all = fmt::format("{}", fmt::join(describe(got), "\n"));
    EXPECT_EQ(last("f"), "mknod f") << all;
    EXPECT_EQ(last("d"), "mknod d") << all;
}

// A whiteout has no create event, so a rename of it read late comes from a
// name the tree does not know. Renamed over a file the tree knows, that
// file is gone: it must leave the tree (and the journal must say so) even
// when the name holds nothing by the time the rename is read, or the name
// keeps it for good (and a file made there later, reusing its inode
// number, is taken for it).
TEST_P(RenameFlags, AWhiteoutRenamedOverAKnownFileReadLateReplacesIt) {
    write_file(at("a"), "moved away with a whiteout");
    write_file(at("t"), "replaced by the whiteout");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    ASSERT_EQ(rename2("a", "b", RENAME_WHITEOUT), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("a", "t", 0), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("t", "u", 0), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    expect_journal_gives_the_tree();
}

// The same with an exchange: the file the tree knows at the destination
// went to the whiteout's name, and stays one object there.
TEST_P(RenameFlags, AWhiteoutExchangedWithAKnownFileReadLateMovesIt) {
    write_file(at("a"), "moved away with a whiteout");
    write_file(at("t"), "exchanged with the whiteout");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    ASSERT_EQ(rename2("a", "b", RENAME_WHITEOUT), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("a", "t", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("t", "u", 0), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    expect_journal_gives_the_tree();
    auto got = changes();
    auto all = fmt::format("{}", fmt::join(describe(got), "\n"));
    EXPECT_TRUE(with_op(got, "unlink", "t").empty()) << all;
}

// The same with a directory the tree knows, in another directory, and
// the whiteout still at that name when the moves are read: the arrival is
// there, so the name was not simply replaced; the directory went, with
// everything beneath it, to the whiteout's name. Taken for a replacement,
// the directory's entries stayed beneath the whiteout's new name in the
// tree (and the replica kept them there, as a conflict copy), and the
// directory was read again at the old whiteout's name without them.
TEST_P(RenameFlags, AWhiteoutExchangedWithAKnownDirectoryReadLateMovesItsEntriesAlong) {
    write_file(at("a"), "moved away with a whiteout");
    make_dir(at("p"));
    make_dir(at("p/d"));
    make_dir(at("p/d/e"));
    write_file(at("p/d/e/f"), "beneath the exchanged directory");
    write_file(at("p/d/g"), "beside it");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    ASSERT_EQ(rename2("a", "b", RENAME_WHITEOUT), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("a", "p/d", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    expect_journal_gives_the_tree();
    auto got = changes();
    auto all = fmt::format("{}", fmt::join(describe(got), "\n"));
    EXPECT_TRUE(with_op(got, "mkdir", "a").empty()) << all;
}

// A directory made and filled inside one read ahead of its events (a
// directory known from its create event only, read where its move put
// it), then exchanged with a file, all before the events are read. The
// read took the file in at the directory's name, so the directory's create
// event finds a file there and the tree knows it by no handle when the
// creations inside it are read. Found by its handle, it is at the file's
// old name by then, where the tree has nothing yet: entries journaled there
// came before their directory (the replica skips them), and the tree,
// which took them in, moved them along with the file and never sent them
// again. They are read with the directory when its move is.
TEST_P(RenameFlags, EntriesMadeInADirectoryExchangedWithAFileAheadOfAReadOfItsParent) {
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    ASSERT_EQ(::mkdir(at("a").c_str(), 0755), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("a", "b", 0), 0) << std::strerror(errno);
    ASSERT_EQ(::mkdir(at("b/d").c_str(), 0755), 0) << std::strerror(errno);
    ASSERT_EQ(::mkdir(at("b/d/c").c_str(), 0750), 0) << std::strerror(errno);
    write_file(at("b/d/c/f"), "made beneath the directory before the exchange");
    write_file(at("t"), "exchanged with a directory");
    ASSERT_EQ(rename2("t", "b/d", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    expect_journal_gives_the_tree();
    // The directory before what is beneath it, and nothing beneath a file.
    auto got = describe(changes());
    auto all = fmt::format("{}", fmt::join(got, "\n"));
    auto made = std::find(got.begin(), got.end(), "mkdir t");
    auto inside = std::find(got.begin(), got.end(), "mkdir t/c");
    ASSERT_NE(made, got.end()) << all;
    ASSERT_NE(inside, got.end()) << all;
    EXPECT_LT(made, inside) << all;
    EXPECT_EQ(std::count_if(got.begin(), got.end(), [](const std::string& d) { return d.find("b/d/") != std::string::npos; }), 0)
        << all;
}

// fanotify merges the delete of a file into its create event (same name,
// same object) when both are queued: the delete is read first, and then
// the file's exchanges, which bring it back to a name where it is no
// longer. It must not be journaled there as a creation no later event
// removes.
TEST_P(RenameFlags, AFileExchangedTwiceAndDeletedBeforeItsEventsAreReadIsGone) {
    write_file(at("r"), "stays");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    write_file(at("t"), "made, exchanged twice, deleted");
    ASSERT_EQ(rename2("t", "r", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("t", "r", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(::unlink(at("t").c_str()), 0);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    expect_journal_gives_the_tree();
}

// A chmod of entries in a directory that an exchange then swaps with a
// file, both read late: the old path of each entry runs through a file
// now (ENOTDIR, not ENOENT), and the entry is still read through its
// handle, not passed over.
TEST_P(RenameFlags, AChmodBeneathADirectoryExchangedWithAFileReadLateIsJournaled) {
    make_dir(at("d"));
    make_dir(at("d/sub"));
    write_file(at("d/f"), "in d");
    write_file(at("x"), "a file");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    ASSERT_EQ(::chmod(at("d/sub").c_str(), 0743), 0);
    ASSERT_EQ(::chmod(at("d/f").c_str(), 0604), 0);
    ASSERT_EQ(rename2("d", "x", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    auto got = changes();
    auto all = fmt::format("{}", fmt::join(describe(got), "\n"));
    auto mode_of = [&](const std::string& path) {
        std::string mode;
        for (auto& r : got)
            if (r.value("op", "") == "setattr" && r.value("path", "") == path) mode = r.value("mode", "");
        return mode;
    };
    EXPECT_EQ(mode_of("d/sub"), "0040743") << all;
    EXPECT_EQ(mode_of("d/f"), "0100604") << all;
    expect_journal_gives_the_tree();
}

// A file and a directory exchanged, and one of them moved on before the
// two moves are read: the name the first move left holds neither by then,
// so only the second move (the next event, naming the object the tree has
// at the destination) says it was an exchange. Journaled as a rename that
// replaced the directory, the replica would remove (or keep aside) the
// directory's entries. The same when the directory both names are in is
// renamed before the events are read: the old name is looked up there, not
// at a path that is gone.
TEST_P(RenameFlags, AFileAndADirectoryExchangedAndMovedOnBeforeTheirEventsAreRead) {
    write_file(at("f"), "file f");
    make_dir(at("d"));
    write_file(at("d/x"), "in d");
    write_file(at("g"), "file g");
    make_dir(at("e"));
    write_file(at("e/y"), "in e");
    make_dir(at("p"));
    ASSERT_EQ(::symlink("somewhere", at("p/s").c_str()), 0) << std::strerror(errno);
    make_dir(at("c"));
    write_file(at("c/z"), "in c");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    // The file moves first; then the directory moves on from the file's old name.
    ASSERT_EQ(rename2("f", "d", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("f", "d2", 0), 0) << std::strerror(errno);
    // The directory moves first; then the file moves on from its old name.
    ASSERT_EQ(rename2("e", "g", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("e", "g2", 0), 0) << std::strerror(errno);
    // A symlink and a directory exchanged; then the symlink's directory renamed.
    ASSERT_EQ(rename2("p/s", "c", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("p", "q", 0), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    auto got = changes();
    auto all = fmt::format("{}", fmt::join(describe(got), "\n"));
    for (auto& r : got) {
        auto op = r.value("op", "");
        EXPECT_TRUE(op != "rmdir" && op != "unlink" && !r.value("replaced", false)) << all;
    }
    auto described = describe(got);
    for (auto want : {"exchange f -> d", "exchange e -> g", "exchange p/s -> c"})
        EXPECT_NE(std::find(described.begin(), described.end(), want), described.end()) << want << "\n" << all;
    expect_journal_gives_the_tree();
}

// A directory made and exchanged with a whiteout before its events are
// read: its create event finds it gone (a directory known by that event
// only, read where its moves put it), and the whiteout, which had no
// create event, comes from a name the tree does not know. The directory's
// own move, the second of the exchange, is where it is read: its mode and
// owner must reach the journal.
TEST_P(RenameFlags, ADirectoryExchangedWithAWhiteoutBeforeItsEventsAreReadIsReadWhereItWent) {
    write_file(at("a"), "moved away with a whiteout");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    ASSERT_EQ(::mkdir(at("g").c_str(), 0751), 0) << std::strerror(errno);
    ASSERT_EQ(::chmod(at("g").c_str(), 0751), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("a", "b", RENAME_WHITEOUT), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("a", "g", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("g", "w", 0), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    expect_journal_gives_the_tree();
    auto got = changes();
    auto all = fmt::format("{}", fmt::join(describe(got), "\n"));
    std::string mode;
    for (auto& r : got)
        if ((r.value("op", "") == "setattr" || r.value("op", "") == "mkdir") && r.value("path", "") == "a" &&
            !r.value("mode", "").empty())
            mode = r.value("mode", "");
    EXPECT_EQ(mode, "0040751") << all;
}

// A directory moved to another name, back, and there again before the
// events are read: fanotify merges the third move into the identical
// first while it is queued, so the agent reads two moves, the last one
// back to the old name. The directory is where the third move put it.
TEST_P(RenameFlags, ADirectoryMovedThereBackAndThereAgainBeforeItsEventsAreRead) {
    make_dir(at("a"));
    write_file(at("a/x"), "in a");
    make_dir(at("d1"));
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    ASSERT_EQ(rename2("a", "d1/b", 0), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("d1/b", "a", 0), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("a", "d1/b", RENAME_WHITEOUT), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    expect_journal_gives_the_tree();
}

// The same with a file: it is where the third move put it. A file, unlike
// a directory, found at its old name may be there by a link made after
// the move, so the link backs below, read late too, keep both names.
TEST_P(RenameFlags, AFileMovedThereBackAndThereAgainBeforeItsEventsAreRead) {
    write_file(at("f"), "moved three times");
    make_dir(at("d1"));
    write_file(at("g"), "moved three times, then linked back");
    write_file(at("h"), "moved, then linked back");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    ASSERT_EQ(rename2("f", "d1/f2", 0), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("d1/f2", "f", 0), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("f", "d1/f2", 0), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("g", "g2", 0), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("g2", "g", 0), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("g", "g2", 0), 0) << std::strerror(errno);
    ASSERT_EQ(::link(at("g2").c_str(), at("g").c_str()), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("h", "d1/h2", 0), 0) << std::strerror(errno);
    ASSERT_EQ(::link(at("d1/h2").c_str(), at("h").c_str()), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    expect_journal_gives_the_tree();
}

// A directory moved in from outside is read as it is when its event is
// read: its scan finds, at p/x, a directory made and moved there after a
// file had been moved to that name and on again, those moves still
// queued. The file's move to p/x is no rename over that directory (a
// rename never puts a file over a directory): journaled as one, the
// replica kept the directory's entries as a conflict copy.
TEST_P(RenameFlags, AFileMovedOntoANameAScanFilledWithADirectoryIsNoRenameOverIt) {
    make_dir(mount() / "outside");
    make_dir(mount() / "outside/p");
    write_file(at("f"), "moved onto p/x and on");
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    ASSERT_EQ(::rename((mount() / "outside/p").c_str(), at("p").c_str()), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("f", "p/x", 0), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("p/x", "g", 0), 0) << std::strerror(errno);
    make_dir(at("d"));
    write_file(at("d/inner"), "in the directory");
    ASSERT_EQ(rename2("d", "p/x", 0), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    auto got = changes();
    auto all = fmt::format("{}", fmt::join(describe(got), "\n"));
    for (auto& r : got) {
        auto op = r.value("op", "");
        EXPECT_FALSE(op == "rename" && r.value("target", "") == "p/x" && r.value("replaced", false)) << all;
        EXPECT_FALSE(op == "rmdir" && r.value("path", "") == "p/x") << all;
    }
    expect_journal_gives_the_tree();
}

// A directory known only from its create event is read where its move
// puts it, and what is beneath it with it. By then a file the tree has
// beneath it was exchanged with a directory (those moves still queued):
// that directory's entries are not entries of the file. Taken in by the
// scan, they were journaled beneath the file, and the exchange then
// carried them along with the file.
TEST_P(RenameFlags, AScanAheadOfAnExchangeTakesNothingInBeneathAFile) {
    write_file(at("f"), "a file, then exchanged with dd");
    make_dir(at("dd"));
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    make_dir(at("g"));
    ASSERT_EQ(rename2("f", "g/f", 0), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("g", "h", 0), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("h/f", "dd", RENAME_EXCHANGE), 0) << std::strerror(errno);
    make_dir(at("h/f/sub"));
    write_file(at("h/f/sub/x"), "beneath the directory");
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    auto got = changes();
    auto all = fmt::format("{}", fmt::join(describe(got), "\n"));
    for (auto& r : got) EXPECT_FALSE(r.value("path", "").starts_with("dd/")) << all;
    expect_journal_gives_the_tree();
}

// A seeded burst of renames (with and without whiteouts), writes and
// removals among a few names, half of it made while the agent reads
// nothing: entries are renamed again, replaced and whited out before their
// events are read. Replayed, the journal gives the tree. (Only the tree is
// compared: records read late may name a path that by then holds another
// type of entry, which the replica takes in its stride.)
TEST_P(RenameFlags, ABurstOfRenamesAndWhiteoutsReplaysToTheTree) {
    for (auto d : {"d0", "d1", "d2"}) make_dir(at(d));
    ASSERT_NO_FATAL_FAILURE(start());
    std::mt19937 rng(20261207);
    auto name = [&] {
        static const char* dirs[] = {"", "d0/", "d1/", "d2/"};
        return fmt::format("{}n{}", dirs[rng() % 4], rng() % 6);
    };
    for (int round = 0; round < 4; ++round) {
        bool paused = round % 2 == 1;
        if (paused) {
            ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
        }
        for (int i = 0; i < 150; ++i) {
            auto a = name(), b = name();
            switch (rng() % 8) {
                case 0:
                case 1:
                case 2: (void)rename2(a, b, 0); break;
                case 3: (void)rename2(a, b, RENAME_WHITEOUT); break;
                case 4: (void)rename2(a, b, RENAME_NOREPLACE); break;
                case 5: {
                    int fd = ::open(at(a).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                    if (fd >= 0) {
                        auto text = fmt::format("{} {}\n", round, i);
                        (void)!::write(fd, text.data(), text.size());
                        ::close(fd);
                    }
                    break;
                }
                case 6:
                    if (::unlink(at(a).c_str()) != 0) (void)::rmdir(at(a).c_str());
                    break;
                case 7: (void)::mkdir(at(a).c_str(), 0755); break;
            }
        }
        if (paused) {
            ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
        }
        ASSERT_NO_FATAL_FAILURE(sync());
        std::vector<std::string> problems;
        EXPECT_EQ(differences(replay(watch().journal(), problems), list_tree(root())), Strings{}) << "round " << round;
    }
}

// A device made where a scan cannot see it (its directory renamed before
// the events are read), then exchanged with a file in a directory known
// from its create event only, whose rename is read with a scan of it as
// it is at the end: the scan reads the device at the file's name, ahead of
// the exchange. The device's own create event then finds nothing at its
// name and the tree knows it elsewhere, with one link: it is the scan's
// read ahead, not a second name. Taken for a link, the device had two
// names on the replica, the file that lived at that name dropped out of
// the tree, and the device's removal took only one name away.
TEST_P(RenameFlags, AnObjectAScanReadAheadAtItsLaterNameIsNoLinkFromThere) {
    make_dir(at("p"));
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    make_dir(at("g"));
    ASSERT_EQ(::rename(at("g").c_str(), at("g2").c_str()), 0) << std::strerror(errno);
    write_file(at("g2/f"), "the file at f first");
    ASSERT_EQ(::mknod(at("p/c").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0) << std::strerror(errno);
    ASSERT_EQ(::rename(at("p").c_str(), at("q").c_str()), 0) << std::strerror(errno);
    ASSERT_EQ(rename2("g2/f", "q/c", RENAME_EXCHANGE), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    ASSERT_EQ(::unlink(at("g2/f").c_str()), 0) << std::strerror(errno);
    ASSERT_NO_FATAL_FAILURE(sync());
    auto described = describe(changes());
    EXPECT_EQ(std::find(described.begin(), described.end(), "link g2/f -> p/c"), described.end())
        << fmt::format("{}", fmt::join(described, "\n"));
    std::vector<std::string> problems;
    EXPECT_EQ(differences(replay(watch().journal(), problems), list_tree(root())), Strings{})
        << fmt::format("{}", fmt::join(described, "\n"));
    EXPECT_EQ(problems, Strings{}) << fmt::format("{}", fmt::join(described, "\n"));
}

// The same read ahead with RENAME_WHITEOUT: the file's create event finds
// the whiteout at its first name and the file at the name the scan read
// it at, so it journals nothing, and its move then has a source the tree
// does not know. The whiteout it left is still journaled.
TEST_P(RenameFlags, AWhiteoutLeftByAFileAScanReadAheadIsJournaled) {
    make_dir(at("p"));
    ASSERT_NO_FATAL_FAILURE(start());
    ASSERT_EQ(::kill(watch().pid(), SIGSTOP), 0);
    make_dir(at("g"));
    ASSERT_EQ(::rename(at("g").c_str(), at("g2").c_str()), 0) << std::strerror(errno);
    write_file(at("p/a"), "made at a, read at b");
    ASSERT_EQ(rename2("p/a", "g2/b", RENAME_WHITEOUT), 0) << std::strerror(errno);
    ASSERT_EQ(::kill(watch().pid(), SIGCONT), 0);
    ASSERT_NO_FATAL_FAILURE(sync());
    auto described = describe(changes());
    std::vector<std::string> problems;
    EXPECT_EQ(differences(replay(watch().journal(), problems), list_tree(root())), Strings{})
        << fmt::format("{}", fmt::join(described, "\n"));
    EXPECT_EQ(problems, Strings{}) << fmt::format("{}", fmt::join(described, "\n"));
}

INSTANTIATE_TEST_SUITE_P(Filesystems, RenameFlags, ::testing::Values(FsType::ext4, FsType::xfs), fs_param_name);

}  // namespace
}  // namespace iz::test::agent
