// A rename or removal note is made for every such operation the server
// applies, so its line is built without formatting each byte; it must
// stay the line the notes file has always held: every byte of a name as
// two lowercase hex digits, "-" for an empty field.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>

#include "exchange_notes.hpp"
#include "support/tree.hpp"

namespace iz::replicator {
namespace {

namespace fs = std::filesystem;

std::string hex_by_format(const std::string& s) {
    std::string out;
    for (unsigned char c : s) out += fmt::format("{:02x}", c);
    return out.empty() ? "-" : out;
}

TEST(ExchangeNotesLine, EveryByteOfANameIsWrittenAndReadBackAsBefore) {
    test::TempDir dir("notes-line");
    // Every byte a name may hold (all but NUL and '/').
    std::string name;
    for (int c = 1; c < 256; ++c)
        if (c != '/') name.push_back(static_cast<char>(c));
    FileHandle h{0x7f, std::string("\x00\x01\x7f\x80\xfe\xff", 6)};
    EXPECT_EQ(identity_of(h), "h127:00017f80feff");
    EXPECT_EQ(identity_of(FileHandle{-3, ""}), "h-3:-");
    {
        auto notes = ExchangeNotes::open(dir.path());
        ASSERT_TRUE(notes) << notes.error().message;
        ASSERT_TRUE(notes->add_quick({12345678901ull, name, "d/" + name, identity_of(h), "-"}, 0));
        ASSERT_TRUE(notes->add_quick({12345678902ull, "x", "", "i42", "-"}, 0));
    }
    EXPECT_EQ(test::read_file(dir / "exchanges"),
              fmt::format("12345678901 {} {} {} 2d\n12345678902 78 - {} 2d\n", hex_by_format(name),
                          hex_by_format("d/" + name), hex_by_format(identity_of(h)), hex_by_format("i42")));
    auto again = ExchangeNotes::open(dir.path());
    ASSERT_TRUE(again) << again.error().message;
    auto n = again->find(12345678901ull, name, "d/" + name);
    ASSERT_TRUE(n);
    EXPECT_EQ(n->at_path, identity_of(h));
    EXPECT_EQ(n->at_target, "-");
    auto removal = again->find(12345678902ull, "x", "");
    ASSERT_TRUE(removal);
    EXPECT_EQ(removal->at_path, "i42");
}

}  // namespace
}  // namespace iz::replicator
