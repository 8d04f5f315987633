// The server's exchange notes (state_dir/exchanges) name each side of an
// exchange by its identity: "h<type>:<handle hex>", "i<inode>" where the
// filesystem has no handles, "-" for nothing. Notes on disk outlive the
// program that wrote them, so both the identity and the file keep their form.
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "exchange_notes.hpp"
#include "support/kernel_handle.hpp"
#include "support/tree.hpp"

namespace iz::replicator {
namespace {

namespace fs = std::filesystem;

class ExchangeNotesFormat : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "iz-notes-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { fs::remove_all(dir_); }
    fs::path dir_;
};

// As written before handles had a type of their own: an exchange of "a"
// and "b/c" at LSN 9 (a file handle, then nothing), and of "d" and "e" at
// LSN 10 (an inode number, then a handle of type -1).
const std::string kNotes =
    "9 61 622f63 68313a30633030303030303261303030303030 2d\n"
    "10 64 65 693737 682d313a6666\n";

TEST_F(ExchangeNotesFormat, NotesWrittenBeforeTheHandleTypeReadAndRewriteTheSame) {
    std::ofstream(dir_ / "exchanges", std::ios::binary) << kNotes;
    auto notes = ExchangeNotes::open(dir_);
    ASSERT_TRUE(notes) << notes.error().message;
    auto first = notes->find(9, "a", "b/c");
    ASSERT_TRUE(first);
    EXPECT_EQ(first->at_path, identity_of(FileHandle{1, std::string("\x0c\x00\x00\x00\x2a\x00\x00\x00", 8)}));
    EXPECT_EQ(first->at_target, "-");
    auto second = notes->find(10, "d", "e");
    ASSERT_TRUE(second);
    EXPECT_EQ(second->at_path, "i77");
    EXPECT_EQ(second->at_target, identity_of(FileHandle{-1, "\xff"}));
    // Adding the last note again rewrites the file: the same bytes.
    ASSERT_TRUE(notes->add(*second, 0));
    EXPECT_EQ(test::read_file(dir_ / "exchanges"), kNotes);
}

// A note keeps what the link's second name held across a restart, and a
// note without it (written before it was kept) still reads.
TEST_F(ExchangeNotesFormat, ALinksNoteKeepsWhatItsSecondNameHeld) {
    {
        auto notes = ExchangeNotes::open(dir_);
        ASSERT_TRUE(notes);
        ASSERT_TRUE(notes->add_quick({3, "f", "g", "h1:aa", "-", "h1:bb"}, 0));
        ASSERT_TRUE(notes->add_quick({4, "a", "b", "h1:cc", "-"}, 0));
    }
    auto notes = ExchangeNotes::open(dir_);
    ASSERT_TRUE(notes);
    auto link = notes->find(3, "f", "g");
    ASSERT_TRUE(link);
    EXPECT_EQ(link->at_path, "h1:aa");
    EXPECT_EQ(link->at_target, "-");
    EXPECT_EQ(link->displaced, "h1:bb");
    auto rename = notes->find(4, "a", "b");
    ASSERT_TRUE(rename);
    EXPECT_EQ(rename->at_path, "h1:cc");
    EXPECT_EQ(rename->displaced, "");
}

TEST_F(ExchangeNotesFormat, AnEntryIsKnownByItsKernelHandle) {
    std::ofstream(dir_ / "f") << "x";
    fs::create_symlink("f", dir_ / "l");
    int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dfd, 0);
    for (const char* name : {"f", "l"}) {
        auto k = test::kernel_handle(dfd, name);
        ASSERT_TRUE(k) << name << ": " << strerror(errno);
        std::string hex;
        for (char c : k->bytes) hex += fmt::format("{:02x}", static_cast<unsigned char>(c));
        auto id = object_identity(dfd, name, name);
        ASSERT_TRUE(id) << id.error().message;
        EXPECT_EQ(*id, fmt::format("h{}:{}", k->type, hex)) << name;
    }
    auto none = object_identity(dfd, "none", "none");
    ASSERT_TRUE(none) << none.error().message;
    EXPECT_EQ(*none, "-");
    ::close(dfd);
}

}  // namespace
}  // namespace iz::replicator
