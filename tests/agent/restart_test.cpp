// What changes while no agent runs is found at the next start: the tree
// state persisted at stop is compared with a fresh scan, and the
// differences are journaled as ordinary records; unchanged entries give
// none.
#include <sys/stat.h>
#include <unistd.h>

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
    // A rename is not recognisable by comparing trees: it is a removal and a
    // creation (with the content and the mtime pinned after it).
    EXPECT_EQ(sorted(describe(got)), sorted({"write mod", "setattr mod", "unlink del", "unlink ren", "create ren2",
                                             "write ren2", "setattr ren2", "setattr perm", "rmdir olddir",
                                             "create new", "write new", "setattr new", "mkdir newdir",
                                             "create newdir/empty"}));
    for (auto& r : with_op(got, "setattr", "perm")) EXPECT_EQ(r.value("mode", ""), "0100600");
    for (auto& r : with_op(got, "write", "mod")) EXPECT_EQ(r.value("size", 0), 16);
    // Nobody saw those writes happen: the whole file is what changed.
    for (auto& r : with_op(got, "write")) EXPECT_TRUE(names_whole_file(r)) << r.dump();
    auto last = records.back();
    EXPECT_EQ(last.value("op", ""), "rescan");
    EXPECT_EQ(last.value("message", ""), "restart: 14 differences journaled");

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

INSTANTIATE_TEST_SUITE_P(Filesystems, Restart, ::testing::Values(FsType::ext4, FsType::xfs), fs_param_name);

}  // namespace
}  // namespace iz::test::agent
