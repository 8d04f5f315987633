// InodeNames: another name of a hard-linked file is found without walking
// the tree for every link, and never a name that no longer fits.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "agent/inode_names.hpp"

namespace iz::agent {
namespace {

Entry file(uint64_t ino, std::string handle = {}) {
    Entry e;
    e.mode = 0100644;
    e.ino = ino;
    e.handle = std::move(handle);
    return e;
}

auto any = [](const Entry&) { return true; };

TEST(InodeNames, ManyLinksCostOneWalk) {
    Tree tree;
    for (uint64_t i = 1; i <= 2000; ++i) tree[fmt::format("d/f{}", i)] = file(i);
    InodeNames names;
    for (uint64_t i = 1; i <= 2000; ++i) {
        auto link = fmt::format("d/f{}.hard", i);
        auto other = names.find(tree, i, link, any);
        ASSERT_TRUE(other);
        EXPECT_EQ(*other, fmt::format("d/f{}", i));
        tree[link] = file(i);
        names.remember(i, link, tree.size());
    }
    EXPECT_EQ(names.walks(), 1u);
}

TEST(InodeNames, StaleNamesAreNotTrusted) {
    Tree tree;
    tree["a"] = file(7, "h1");
    tree["dir"] = Entry{.mode = 040755, .ino = 9};
    InodeNames names;
    names.remember(7, "a", tree.size());
    EXPECT_EQ(names.find(tree, 7, "b", any), std::optional<std::string>("a"));
    // Renamed: the remembered name is gone, the walk finds the new one.
    tree["c"] = tree["a"];
    tree.erase("a");
    EXPECT_EQ(names.find(tree, 7, "b", any), std::optional<std::string>("c"));
    // The number reused by another file: refused by the caller's check.
    auto same_handle = [](const Entry& e) { return e.handle == "h2"; };
    EXPECT_FALSE(names.find(tree, 7, "b", same_handle));
    // Never the path asked about, never a directory.
    EXPECT_FALSE(names.find(tree, 7, "c", any));
    EXPECT_FALSE(names.find(tree, 9, "x", any));
}

// Files created and deleted by the million leave no trail of names.
TEST(InodeNames, ChurnDoesNotGrowWithoutBound) {
    Tree tree;
    tree["keep"] = file(1);
    InodeNames names;
    for (uint64_t i = 2; i < 100000; ++i) names.remember(i, fmt::format("tmp{}", i), tree.size());
    EXPECT_LE(names.remembered(), 2 * tree.size() + 1025);
    EXPECT_EQ(names.find(tree, 1, "other", any), std::optional<std::string>("keep"));
}

}  // namespace
}  // namespace iz::agent
