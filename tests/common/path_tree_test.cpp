#include "common/path_tree.hpp"

#include <gtest/gtest.h>

#include <map>

using iz::at_or_beneath;
using iz::strictly_beneath;

TEST(PathTree, AComponentIsComparedWhole) {
    EXPECT_FALSE(strictly_beneath("ab", "a"));
    EXPECT_FALSE(at_or_beneath("ab", "a"));
    EXPECT_FALSE(at_or_beneath("ab/c", "a"));
    EXPECT_FALSE(at_or_beneath("a", "ab"));
    EXPECT_FALSE(at_or_beneath("a.txt", "a"));
    EXPECT_FALSE(at_or_beneath("a-b/c", "a"));
    EXPECT_TRUE(strictly_beneath("a/b", "a"));
    EXPECT_TRUE(strictly_beneath("a/b/c", "a"));
    EXPECT_TRUE(strictly_beneath("a/b/c", "a/b"));
    EXPECT_FALSE(strictly_beneath("a/bc", "a/b"));
    EXPECT_TRUE(at_or_beneath("a/b", "a"));
}

TEST(PathTree, APathIsAtButNotStrictlyBeneathItself) {
    EXPECT_FALSE(strictly_beneath("a", "a"));
    EXPECT_TRUE(at_or_beneath("a", "a"));
    EXPECT_FALSE(strictly_beneath("a/b", "a/b"));
    EXPECT_TRUE(at_or_beneath("a/b", "a/b"));
}

TEST(PathTree, AboveIsNotBeneath) {
    EXPECT_FALSE(strictly_beneath("a", "a/b"));
    EXPECT_FALSE(at_or_beneath("a", "a/b"));
    EXPECT_FALSE(at_or_beneath("", "a"));
}

// "" is the root: everything else is strictly beneath it, everything is at
// or beneath it.
TEST(PathTree, TheRootHoldsEverything) {
    EXPECT_FALSE(strictly_beneath("", ""));
    EXPECT_TRUE(at_or_beneath("", ""));
    EXPECT_TRUE(strictly_beneath("a", ""));
    EXPECT_TRUE(strictly_beneath("a/b", ""));
    EXPECT_TRUE(at_or_beneath("a", ""));
    EXPECT_TRUE(at_or_beneath("a/b", ""));
}

// Paths are normal (the server refuses an empty component, the agent joins
// names): a trailing '/' is part of the name, not stripped.
TEST(PathTree, ATrailingSlashIsNotStripped) {
    EXPECT_FALSE(strictly_beneath("a/b", "a/"));
    EXPECT_FALSE(at_or_beneath("a", "a/"));
    EXPECT_TRUE(strictly_beneath("a/", "a"));
}

TEST(PathTree, SubtreeRangeStepsOverSiblingsThatExtendTheName) {
    std::map<std::string, int> m;
    for (auto k : {"", "a", "a-b", "a.txt", "a/x", "a/y/z", "ab", "b"}) m[k] = 0;
    auto [first, last] = iz::subtree_range(m, "a");
    std::vector<std::string> got;
    for (auto it = first; it != last; ++it) got.push_back(it->first);
    EXPECT_EQ(got, (std::vector<std::string>{"a/x", "a/y/z"}));
    auto [rf, rl] = iz::subtree_range(m, "");
    EXPECT_EQ(std::distance(rf, rl), 7);
}
