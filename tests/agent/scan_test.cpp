// The walk of a rescan while the tree changes under it: a directory moved
// from a part not yet walked into one walked already must still be found.
// The walk's exclude callback, asked about each name as it is read, makes
// the move at a known point.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "agent/tree_diff.hpp"
#include "agent/tree_state.hpp"

namespace iz::agent {
namespace {

namespace fs = std::filesystem;

class ScanWhileRenamed : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "iz-scan-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        dir_ = tmpl;
        for (auto d : {"a/x", "b/y"}) fs::create_directories(dir_ / d);
        std::ofstream(dir_ / "a/x/f") << "f";
        std::ofstream(dir_ / "b/y/g") << "g";
        root_fd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_GE(root_fd_, 0);
    }
    void TearDown() override {
        if (root_fd_ >= 0) ::close(root_fd_);
        fs::remove_all(dir_);
    }

    fs::path dir_;
    int root_fd_ = -1;
};

// The first name read beneath a or b shows which of the two is being walked
// (listed already); the other one's subdirectory moves into it, so the
// walk lists neither its old place (already empty when listed) nor its new
// one (listed before it came).
TEST_F(ScanWhileRenamed, ADirectoryMovedIntoAPartWalkedAlreadyIsFound) {
    std::string moved_to, moved_from;
    auto exclude = [&](const std::string& rel) {
        if (moved_to.empty() && (rel.starts_with("a/") || rel.starts_with("b/"))) {
            bool in_a = rel.starts_with("a/");
            moved_from = in_a ? "b/y" : "a/x";
            moved_to = in_a ? "a/moved" : "b/moved";
            fs::rename(dir_ / moved_from, dir_ / moved_to);
        }
        return false;
    };
    auto tree = scan_tree(root_fd_, exclude);
    ASSERT_TRUE(tree) << tree.error().message;
    ASSERT_FALSE(moved_to.empty());
    std::string file = moved_from == "a/x" ? "f" : "g";
    EXPECT_TRUE(tree->count(moved_to)) << moved_to << " missing from the scan";
    EXPECT_TRUE(tree->count(moved_to + "/" + file)) << moved_to << "/" << file << " missing from the scan";
    EXPECT_FALSE(tree->count(moved_from));
    std::string paths;
    for (auto& [p, e] : *tree) paths += "'" + p + "' ";
    EXPECT_EQ(tree->size(), 7u) << paths;  // "", a, b, the two subdirectories, the two files
}

// The other way, from a part walked already into one not yet walked: seen
// once, at its new name.
TEST_F(ScanWhileRenamed, ADirectoryMovedIntoAPartNotYetWalkedIsSeenOnce) {
    std::string moved_to, moved_from;
    auto exclude = [&](const std::string& rel) {
        // Once a's or b's subdirectory has been listed (its file is read),
        // it moves into the other one, not walked yet.
        if (moved_to.empty() && (rel == "a/x/f" || rel == "b/y/g")) {
            bool in_a = rel.starts_with("a/");
            moved_from = in_a ? "a/x" : "b/y";
            moved_to = in_a ? "b/moved" : "a/moved";
            fs::rename(dir_ / moved_from, dir_ / moved_to);
        }
        return false;
    };
    auto tree = scan_tree(root_fd_, exclude);
    ASSERT_TRUE(tree) << tree.error().message;
    ASSERT_FALSE(moved_to.empty());
    std::string file = moved_from == "a/x" ? "f" : "g";
    EXPECT_TRUE(tree->count(moved_to + "/" + file));
    EXPECT_FALSE(tree->count(moved_from)) << moved_from << " still in the scan after it moved";
    EXPECT_FALSE(tree->count(moved_from + "/" + file));
    EXPECT_EQ(tree->size(), 7u);
}

// A directory replaced by a file after it was read and before it is
// listed: the walk goes on (the file is what its parent's next listing
// shows), rather than failing the whole scan and with it the agent's start.
TEST_F(ScanWhileRenamed, ADirectoryReplacedByAFileBeforeItIsListedIsNoError) {
    fs::create_directories(dir_ / "c/x");
    for (int i = 0; i < 10; ++i) std::ofstream(dir_ / fmt::format("c/y{}", i)) << i;
    bool x_read = false, replaced = false;
    auto exclude = [&](const std::string& rel) {
        if (rel == "c/x") x_read = true;
        else if (x_read && !replaced && rel.starts_with("c/y")) {
            fs::remove_all(dir_ / "c/x");
            std::ofstream(dir_ / "c/x") << "now a file";
            replaced = true;
        }
        return false;
    };
    auto tree = scan_tree(root_fd_, exclude);
    if (!replaced) GTEST_SKIP() << "c/x was listed last in c: no name came after it to replace it at";
    ASSERT_TRUE(tree) << tree.error().message;
    ASSERT_TRUE(tree->count("c/x"));
    EXPECT_TRUE(tree->at("c/x").is_reg());
}

// A directory on the path to one the walk lists again replaced by a file
// (exchanged with it) in between: the path runs through a file (ENOTDIR),
// which says as much as a name gone. It failed the whole scan, and with it
// the agent's start after a kill (the workload exchanging directories with
// files meanwhile).
TEST_F(ScanWhileRenamed, ADirectoryOnThePathExchangedWithAFileBeforeTheRelistIsNoError) {
    fs::create_directories(dir_ / "p/a/x");
    std::ofstream(dir_ / "p/a/x/h") << "h";
    std::ofstream(dir_ / "f") << "a file";
    int phase = 0;
    bool seen_g = false, seen_h = false;
    auto exclude = [&](const std::string& rel) {
        if (phase == 0) {
            seen_g = seen_g || rel == "b/y/g";
            seen_h = seen_h || rel == "p/a/x/h";
            if (seen_g && seen_h) {
                // Both listed: an entry made in each has them listed again,
                // b/y first.
                std::ofstream(dir_ / "b/y/new") << "new";
                std::ofstream(dir_ / "p/a/x/new") << "new";
                phase = 1;
            }
        } else if (phase == 1 && rel.starts_with("b/y/")) {
            // Listing b/y again: p/a becomes a file before p/a/x is listed again.
            EXPECT_EQ(::renameat2(AT_FDCWD, (dir_ / "p/a").c_str(), AT_FDCWD, (dir_ / "f").c_str(), RENAME_EXCHANGE), 0)
                << std::strerror(errno);
            phase = 2;
        }
        return false;
    };
    auto tree = scan_tree(root_fd_, exclude);
    ASSERT_EQ(phase, 2);
    ASSERT_TRUE(tree) << tree.error().message;
    ASSERT_TRUE(tree->count("p/a"));
    EXPECT_TRUE(tree->at("p/a").is_reg());
    EXPECT_FALSE(tree->count("p/a/x"));
    EXPECT_TRUE(tree->count("f/x/h"));
    EXPECT_TRUE(tree->count("f/x/new"));
}

// Two names of one file read at two moments, with a chmod and a setxattr of
// the file in between (a restart's scan while the workload runs): each name
// had its own reading, and the rescan compared the object by its first
// name, the older one. It journaled neither change, and the events of the
// two, compared with the newer name's entry, found nothing changed either:
// the whole link group kept its old mode and lacked the xattr on the
// replica. Every name of one object now carries one reading of it, the
// newest (greatest ctime).
TEST_F(ScanWhileRenamed, TheNamesOfOneFileReadApartCarryItsNewestAttributes) {
    ASSERT_EQ(::chmod((dir_ / "a/x/f").c_str(), 0644), 0) << std::strerror(errno);
    ASSERT_EQ(::link((dir_ / "a/x/f").c_str(), (dir_ / "b/y/h").c_str()), 0) << std::strerror(errno);
    auto before = scan_tree(root_fd_, {});
    ASSERT_TRUE(before) << before.error().message;
    std::string first, changed_before;
    auto exclude = [&](const std::string& rel) {
        if (rel != "a/x/f" && rel != "b/y/h") return false;
        if (first.empty()) {
            first = rel;
        } else if (changed_before.empty()) {
            // One name read already, the other not yet.
            changed_before = rel;
            EXPECT_EQ(::chmod((dir_ / rel).c_str(), 0660), 0) << std::strerror(errno);
            EXPECT_EQ(::setxattr((dir_ / rel).c_str(), "user.tag", "v679", 4, 0), 0) << std::strerror(errno);
        }
        return false;
    };
    auto after = scan_tree(root_fd_, exclude);
    ASSERT_TRUE(after) << after.error().message;
    ASSERT_FALSE(changed_before.empty());
    for (const char* name : {"a/x/f", "b/y/h"}) {
        ASSERT_TRUE(after->count(name)) << name;
        const Entry& e = after->at(name);
        EXPECT_EQ(e.mode & 07777, 0660u) << name;
        EXPECT_EQ(e.nlink, 2u) << name;
        EXPECT_EQ(e.xattrs, (std::map<std::string, std::string>{{"user.tag", "v679"}})) << name;
    }
    bool mode = false, tag = false;
    std::string records;
    for (auto& r : diff_trees(*before, *after)) {
        records += fmt::format("{} {}\n", journal::op_name(r.op), r.path);
        if (r.op == journal::Op::setattr && r.mode && (*r.mode & 07777) == 0660) mode = true;
        if (r.op == journal::Op::setxattr && r.xattr_name == "user.tag" && r.xattr_value == "v679") tag = true;
    }
    EXPECT_TRUE(mode) << "no setattr to 0660 among:\n" << records;
    EXPECT_TRUE(tag) << "no setxattr user.tag among:\n" << records;
}

}  // namespace
}  // namespace iz::agent
