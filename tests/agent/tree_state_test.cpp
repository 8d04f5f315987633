// The agent's saved tree state: replaced durably.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/tree_state.hpp"
#include "support/fsync_probe.hpp"

namespace iz::agent {
namespace {

namespace fs = std::filesystem;

class TreeStateFile : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "iz-tree-state-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { fs::remove_all(dir_); }

    static Tree sample() {
        Tree t;
        Entry root;
        root.mode = 040755;
        root.ino = 2;
        t[""] = root;
        Entry f;
        f.mode = 0100644;
        f.size = 12;
        f.mtime_ns = -5;
        f.ino = 77;
        f.nlink = 2;
        f.handle = std::string("\x01\x00\x00\x00handle\x00bytes", 16);
        f.xattrs = {{"user.a", "1"}, {"security.selinux", std::string("x\0y", 3)}};
        t["d/f"] = f;
        Entry l;
        l.mode = 0120777;
        l.link_target = "../elsewhere";
        t["d/l"] = l;
        return t;
    }

    fs::path dir_;
};

// The state is the rescan's baseline: a rename of it lost in a crash
// brings back an older tree, and the rescan journals again (or misses)
// what changed since. The directory is synced after the file.
TEST_F(TreeStateFile, SavingSyncsTheFileThenItsDirectory) {
    auto file = dir_ / "tree.state";
    ASSERT_TRUE(save_tree(sample(), 5, file));
    test::FsyncProbe probe;
    ASSERT_TRUE(save_tree(sample(), 6, file));
    int file_sync = test::FsyncProbe::index_of(file);
    int dir_sync = test::FsyncProbe::index_of(dir_);
    ASSERT_GE(file_sync, 0) << "the state file was not fsynced";
    ASSERT_GE(dir_sync, 0) << "the state directory was not fsynced";
    EXPECT_LT(file_sync, dir_sync);
    auto back = load_tree(file);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->lsn, 6u);
    EXPECT_EQ(back->tree.size(), 3u);
}

TEST_F(TreeStateFile, AFailedSyncIsAnError) {
    auto file = dir_ / "tree.state";
    test::FsyncProbe probe(test::FsyncProbe::Fail::files);
    auto ok = save_tree(sample(), 1, file);
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().sys_errno, EIO);
    EXPECT_FALSE(fs::exists(file));
}

TEST_F(TreeStateFile, ATruncatedStateIsUnreadableNotACrash) {
    auto file = dir_ / "tree.state";
    ASSERT_TRUE(save_tree(sample(), 9, file));
    fs::resize_file(file, fs::file_size(file) - 3);
    auto back = load_tree(file);
    ASSERT_FALSE(back);
    EXPECT_NE(back.error().message.find("is unreadable"), std::string::npos) << back.error().message;
}

}  // namespace
}  // namespace iz::agent
