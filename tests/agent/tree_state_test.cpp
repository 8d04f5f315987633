// The agent's saved tree state: replaced durably, and readable across the
// change of archive that wrote it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cereal/archives/portable_binary.hpp>

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
        f.handle = FileHandle::from_key(std::string("\x01\x00\x00\x00handle\x00bytes", 16));
        f.xattrs = {{"user.a", "1"}, {"security.selinux", std::string("x\0y", 3)}};
        t["d/f"] = f;
        Entry l;
        l.mode = 0120777;
        l.link_target = "../elsewhere";
        t["d/l"] = l;
        return t;
    }

    // A tree as cereal's PortableBinary archive wrote it (its map and
    // string encodings, each Entry's fields in their order), spelled out
    // here so that the format is pinned by the test, not by the code.
    static void write_portable(cereal::PortableBinaryOutputArchive& ar, const Tree& tree) {
        auto str = [&](const std::string& s) {
            ar(cereal::make_size_tag(static_cast<cereal::size_type>(s.size())));
            ar(cereal::binary_data(s.data(), s.size()));
        };
        ar(cereal::make_size_tag(static_cast<cereal::size_type>(tree.size())));
        for (auto& [path, e] : tree) {
            str(path);
            ar(e.mode, e.uid, e.gid, e.size, e.mtime_ns, e.ctime_ns, e.atime_ns, e.ino, e.nlink, e.rdev, e.version);
            str(e.handle.key());
            str(e.link_target);
            ar(cereal::make_size_tag(static_cast<cereal::size_type>(e.xattrs.size())));
            for (auto& [name, value] : e.xattrs) {
                str(name);
                str(value);
            }
        }
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

// States were written with cereal's PortableBinary archive; they are now
// written with the archives of common/binary_archive.hpp, which make the
// same bytes. A state written before loads, and the bytes written now are
// those the old writer made.
TEST_F(TreeStateFile, AStateWrittenWithPortableBinaryLoadsAndIsWhatIsWrittenNow) {
    const char magic[8] = {'I', 'Z', 'T', 'R', 'E', 'E', 0, 2};
    auto tree = sample();
    std::ostringstream os;
    os.write(magic, sizeof magic);
    {
        cereal::PortableBinaryOutputArchive ar(os);
        ar(uint64_t{42});
        write_portable(ar, tree);
    }
    auto old_file = dir_ / "old.state";
    std::ofstream(old_file, std::ios::binary) << os.str();
    auto back = load_tree(old_file);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->lsn, 42u);
    ASSERT_EQ(back->tree.size(), tree.size());
    EXPECT_EQ(back->tree["d/f"].xattrs, tree["d/f"].xattrs);
    EXPECT_EQ(back->tree["d/f"].handle, tree["d/f"].handle);
    EXPECT_EQ(back->tree["d/l"].link_target, "../elsewhere");

    auto new_file = dir_ / "new.state";
    ASSERT_TRUE(save_tree(tree, 42, new_file));
    std::ifstream in(new_file, std::ios::binary);
    std::string written{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    EXPECT_EQ(written, os.str());

    // The oldest states have no magic and no position: the tree alone.
    std::ostringstream oldest;
    {
        cereal::PortableBinaryOutputArchive ar(oldest);
        write_portable(ar, tree);
    }
    std::ofstream(old_file, std::ios::binary | std::ios::trunc) << oldest.str();
    back = load_tree(old_file);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_FALSE(back->lsn);
    EXPECT_EQ(back->tree.size(), tree.size());
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
