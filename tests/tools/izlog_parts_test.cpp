// izlog's parts on their own: where the journal is, op names, colour.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "izlog/filter.hpp"
#include "izlog/journal_location.hpp"
#include "izlog/render.hpp"

namespace fs = std::filesystem;
using iz::journal::Op;

namespace {

class StateRoot : public ::testing::Test {
protected:
    void SetUp() override {
        root = fs::temp_directory_path() / ("iz-izlog-state-" + std::to_string(getpid()));
        fs::remove_all(root);
        fs::create_directories(root);
    }
    void TearDown() override { fs::remove_all(root); }
    fs::path root;
};

}  // namespace

TEST_F(StateRoot, NoJournalAsksForDirectory) {
    fs::create_directories(root / "home" / "not-a-journal");
    auto dir = iz::izlog::default_journal_dir(root);
    ASSERT_FALSE(dir);
    EXPECT_EQ(dir.error().message, "no journal found under " + root.string() + "; give one with -D DIR");
}

TEST_F(StateRoot, TheOnlyJournalIsChosen) {
    fs::create_directories(root / "home" / "journal");
    fs::create_directories(root / "other");
    auto dir = iz::izlog::default_journal_dir(root);
    ASSERT_TRUE(dir) << dir.error().message;
    EXPECT_EQ(*dir, root / "home" / "journal");
}

TEST_F(StateRoot, SeveralJournalsAskToChoose) {
    fs::create_directories(root / "a" / "journal");
    fs::create_directories(root / "b" / "journal");
    auto dir = iz::izlog::default_journal_dir(root);
    ASSERT_FALSE(dir);
    EXPECT_TRUE(dir.error().message.starts_with("2 journals under " + root.string() + "; choose one with -D DIR"))
        << dir.error().message;
}

TEST(OpNames, RepeatedAndCommaSeparatedAreValidated) {
    auto ops = iz::izlog::parse_ops({"write,close_write", "rename", ","});
    ASSERT_TRUE(ops) << ops.error().message;
    EXPECT_EQ(*ops, (std::vector<Op>{Op::write, Op::close_write, Op::rename}));
    auto bad = iz::izlog::parse_ops({"write,chmod"});
    ASSERT_FALSE(bad);
    EXPECT_TRUE(bad.error().message.starts_with("unknown op 'chmod' (known: create, mkdir, mknod,")) << bad.error().message;
    EXPECT_TRUE(bad.error().message.ends_with("rescan, conflict, exchange, repair)")) << bad.error().message;
}

TEST(Render, ColourByOpOnlyWhenAsked) {
    iz::journal::Record r;
    r.op = Op::unlink;
    r.path = "gone";
    EXPECT_EQ(iz::izlog::render(r, iz::izlog::Format::cat, false), "unlink gone\n");
    EXPECT_EQ(iz::izlog::render(r, iz::izlog::Format::cat, true), "\033[31munlink\033[0m gone\n");
    r.op = Op::create;
    EXPECT_EQ(iz::izlog::render(r, iz::izlog::Format::cat, true), "\033[32mcreate\033[0m gone\n");
}

TEST(Render, Rfc3339HasMicrosecondsInUtc) {
    EXPECT_EQ(iz::izlog::rfc3339_utc(1'795'600'800'123'456'789), "2026-11-25T10:00:00.123456Z");
    EXPECT_EQ(iz::izlog::rfc3339_utc(0), "1970-01-01T00:00:00.000000Z");
}
