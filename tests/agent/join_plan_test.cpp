// What a first start joining a fileset with a non-empty directory adopts
// (agent/join_merge.hpp): two directories compared as the agent compares
// its own with the server's, the server's answered from a local walk.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "join_merge.hpp"
#include "support/tree.hpp"

namespace fs = std::filesystem;

namespace iz::agent {
namespace {

namespace tree = replicator::tree;

void put(const fs::path& p, const std::string& bytes) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

class JoinPlanTest : public ::testing::Test {
protected:
    JoinPlan plan() {
        int mine = ::open(here_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int theirs = ::open(fileset_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        auto local = tree::hash_path(mine, "", {});
        EXPECT_TRUE(local && *local);
        auto diffs = replicator::compare_path(*local, "", replicator::ask_local(theirs), true, {});
        EXPECT_TRUE(diffs) << diffs.error().message;
        auto out = plan_join(**local, *diffs);
        ::close(mine);
        ::close(theirs);
        return out;
    }
    test::TempDir here_{"join-here"}, fileset_{"join-fileset"};
};

TEST_F(JoinPlanTest, EqualEntriesAreAdoptedWhateverTheirAttributes) {
    for (auto* root : {&here_, &fileset_}) {
        put(root->path() / "d/same.txt", "same\n");
        put(root->path() / "d/e/deep.txt", "deep\n");
        fs::create_symlink("d/same.txt", root->path() / "link");
    }
    ASSERT_EQ(::chmod((here_.path() / "d/same.txt").c_str(), 0600), 0);
    put(here_.path() / "d/differs.txt", "mine\n");
    put(fileset_.path() / "d/differs.txt", "theirs\n");
    put(here_.path() / "mine/only.txt", "only here\n");
    put(fileset_.path() / "theirs/only.txt", "only there\n");
    fs::create_directories(here_.path() / "kind");
    put(fileset_.path() / "kind", "a file there, a directory here\n");

    auto p = plan();
    std::set<std::string> adopted(p.adopted.begin(), p.adopted.end());
    EXPECT_EQ(adopted, (std::set<std::string>{"d", "d/same.txt", "d/e", "d/e/deep.txt", "link"}));
    EXPECT_EQ(p.differing, 2u);  // d/differs.txt, kind
    EXPECT_EQ(p.only_here, 1u);  // mine (and what it holds)
}

TEST_F(JoinPlanTest, AnEmptyFilesetAdoptsNothing) {
    put(here_.path() / "a/b.txt", "b\n");
    auto p = plan();
    EXPECT_TRUE(p.adopted.empty());
    EXPECT_EQ(p.only_here, 1u);
}

}  // namespace
}  // namespace iz::agent
