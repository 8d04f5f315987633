// The file-handle type every component shares (common/file_handle.hpp) and
// the agent's saved tree state, which holds handles in their key form: a
// state file written before the type existed must load to the same handles
// and save back to the same bytes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/tree_state.hpp"
#include "common/file_handle.hpp"
#include "support/doc_hex.hpp"
#include "support/kernel_handle.hpp"
#include "support/scratch_fs.hpp"
#include "support/tree.hpp"

namespace iz::agent {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const fs::path& base, const char* tag) {
    std::string tmpl = (base / (std::string(tag) + "-XXXXXX")).string();
    if (!::mkdtemp(tmpl.data())) return {};
    return tmpl;
}

TEST(FileHandleKey, IsTheTypeInHostOrderThenTheBytes) {
    FileHandle h{0x81, std::string("\x01\x02\x03", 3)};
    EXPECT_EQ(h.key(), std::string("\x81\x00\x00\x00\x01\x02\x03", 7));
    EXPECT_EQ(FileHandle::from_key(h.key()), h);
    FileHandle negative{-1, "x"};
    EXPECT_EQ(negative.key(), std::string("\xff\xff\xff\xffx", 5));
    EXPECT_EQ(FileHandle::from_key(negative.key()), negative);
}

TEST(FileHandleKey, AnEmptyHandleIsTheEmptyKey) {
    EXPECT_EQ(FileHandle{}.key(), "");
    EXPECT_EQ(FileHandle(FileHandle{7, ""}).key(), "");
    EXPECT_TRUE(FileHandle::from_key("").empty());
    EXPECT_TRUE(FileHandle::from_key("abc").empty());
    EXPECT_EQ(FileHandle::from_key(std::string("\x02\x00\x00\x00", 4)), (FileHandle{2, ""}));
}

TEST(FileHandleInode, ReadsExt4AndXfsLayoutsOnly) {
    // FILEID_INO32_GEN: inode, generation; _PARENT adds the parent's.
    EXPECT_EQ(inode_of_handle({1, test::unhex("0c0000002a000000")}), 12u);
    EXPECT_EQ(inode_of_handle({2, test::unhex("0d0000002a0000000200000001000000")}), 13u);
    // XFS 64-bit inode numbers: inode (8 bytes), generation (4), and the parent's.
    EXPECT_EQ(inode_of_handle({0x81, test::unhex("0100000002000000" "07000000")}), 0x200000001u);
    EXPECT_EQ(inode_of_handle({0x82, test::unhex("0300000000000000" "07000000" "0400000000000000" "08000000")}), 3u);
    // Other layouts, and known types of another length.
    EXPECT_EQ(inode_of_handle({1, test::unhex("0c0000002a00000000000000")}), std::nullopt);  // tmpfs: 12 bytes
    EXPECT_EQ(inode_of_handle({0x4d, test::unhex("0c0000002a000000")}), std::nullopt);
    EXPECT_EQ(inode_of_handle({}), std::nullopt);
}

// handle_of must be name_to_handle_at of the entry itself (a symlink is
// not followed), and open_by_handle must reach the same inode.
void check_handles_on(const fs::path& dir, bool inode_in_handle) {
    std::ofstream(dir / "f") << "data";
    fs::create_symlink("f", dir / "l");
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dfd, 0);
    struct stat f{}, l{}, d{};
    ASSERT_EQ(::fstatat(dfd, "f", &f, AT_SYMLINK_NOFOLLOW), 0);
    ASSERT_EQ(::fstatat(dfd, "l", &l, AT_SYMLINK_NOFOLLOW), 0);
    ASSERT_EQ(::fstat(dfd, &d), 0);

    for (auto [name, st] : {std::pair<const char*, struct stat*>{"f", &f}, {"l", &l}, {"", &d}}) {
        auto h = handle_of(dfd, name);
        ASSERT_TRUE(h) << h.error().message;
        // The same handle the kernel gives directly.
        auto k = test::kernel_handle(dfd, name, *name ? 0 : AT_EMPTY_PATH);
        ASSERT_TRUE(k) << name << ": " << strerror(errno);
        EXPECT_EQ(h->type, k->type) << name;
        EXPECT_EQ(h->bytes, k->bytes) << name;
        if (inode_in_handle) {
            EXPECT_EQ(inode_of_handle(*h), st->st_ino) << name;
        }
        int fd = open_by_handle(dfd, *h, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        ASSERT_GE(fd, 0) << name << ": " << strerror(errno);
        struct stat got{};
        ASSERT_EQ(::fstatat(fd, "", &got, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW), 0);
        ::close(fd);
        EXPECT_EQ(got.st_ino, st->st_ino) << name;
    }
    auto missing = handle_of(dfd, "none");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().sys_errno, ENOENT);
    EXPECT_NE(missing.error().message.find("none"), std::string::npos) << missing.error().message;
    errno = 0;
    EXPECT_EQ(open_by_handle(dfd, FileHandle{}, O_PATH), -1);
    EXPECT_EQ(errno, ESTALE);
    ::close(dfd);
}

TEST(FileHandleKernel, Ext4HandlesNameTheEntryAndCarryItsInode) {
    auto scratch = test::ScratchFs::make(test::FsType::ext4, 64, "handle");
    ASSERT_TRUE(scratch) << scratch.error().message;
    check_handles_on((*scratch)->mount_point(), true);
}

TEST(FileHandleKernel, XfsHandlesNameTheEntryAndCarryItsInode) {
    auto scratch = test::ScratchFs::make(test::FsType::xfs, 320, "handle");
    ASSERT_TRUE(scratch) << scratch.error().message;
    check_handles_on((*scratch)->mount_point(), true);
}

TEST(FileHandleKernel, TmpfsHandlesNameTheEntry) {
    auto dir = temp_dir("/dev/shm", "iz-handle");
    ASSERT_FALSE(dir.empty());
    check_handles_on(dir, false);
    fs::remove_all(dir);
}

// A tree state file as the agent wrote it before handles had a type of
// their own (saved at LSN 7): the root, a file with an xattr, and a
// symlink whose handle could not be read.
const std::string kSavedTree = test::unhex(
    "495a54524545000201070000000000000003000000000000000000000000000000ed4100000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000002000000000000000300000000000000000000"
    "0000000000000000000c0000000000000001000000020000000000000000000000000000000000000000000000050000"
    "0000000000612e747874a4810000e8030000e803000005000000000000000b000000000000000c000000000000000d00"
    "0000000000000c0000000000000001000000000000000000000002000000000000000c00000000000000010000000c00"
    "00002a000000000000000000000001000000000000000600000000000000757365722e6b010000000000000076040000"
    "00000000006c696e6bffa100000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000d000000000000000100000000000000000000000000000000000000000000000000000005000000000000"
    "00612e7478740000000000000000");

TEST(TreeStateFormat, AStateFileWrittenBeforeTheHandleTypeLoadsAndSavesToTheSameBytes) {
    auto dir = temp_dir(fs::temp_directory_path(), "iz-state");
    ASSERT_FALSE(dir.empty());
    std::ofstream(dir / "old", std::ios::binary) << kSavedTree;

    auto saved = load_tree(dir / "old");
    ASSERT_TRUE(saved) << saved.error().message;
    EXPECT_EQ(saved->lsn, 7u);
    ASSERT_EQ(saved->tree.size(), 3u);
    const Entry& root = saved->tree.at("");
    EXPECT_EQ(root.mode, 040755u);
    EXPECT_EQ(root.handle, (FileHandle{1, test::unhex("0200000000000000")}));
    const Entry& f = saved->tree.at("a.txt");
    EXPECT_EQ(f.mode, 0100644u);
    EXPECT_EQ(f.uid, 1000u);
    EXPECT_EQ(f.size, 5u);
    EXPECT_EQ(f.ino, 12u);
    EXPECT_EQ(f.version, 2u);
    EXPECT_EQ(f.handle, (FileHandle{1, test::unhex("0c0000002a000000")}));
    EXPECT_EQ(inode_of_handle(f.handle), 12u);
    EXPECT_EQ(f.xattrs, (std::map<std::string, std::string>{{"user.k", "v"}}));
    const Entry& l = saved->tree.at("link");
    EXPECT_TRUE(l.is_symlink());
    EXPECT_TRUE(l.handle.empty());
    EXPECT_EQ(l.link_target, "a.txt");

    ASSERT_TRUE(save_tree(saved->tree, *saved->lsn, dir / "new"));
    EXPECT_EQ(test::read_file(dir / "new"), kSavedTree);
    fs::remove_all(dir);
}

}  // namespace
}  // namespace iz::agent
