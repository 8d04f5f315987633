// What a server reported it can never apply, kept in the agent's state
// directory across restarts (rejection_store.hpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "rejection_store.hpp"
#include "support/tree.hpp"

namespace iz::replicator {
namespace {

namespace fs = std::filesystem;

TEST(RejectionStore, WhatIsSavedIsLoadedBackInOrderWhateverItsPathHolds) {
    test::TempDir dir{"rejections"};
    const auto file = rejections_file(dir.path(), ServerEndpoint{.host = "backup1", .port = 7411});
    std::vector<RejectedRecord> kept{
        {.lsn = 9, .path = "frozen/new", .message = "Operation not permitted"},
        {.lsn = 12, .path = std::string("odd\nname\t\xff", 11), .message = "File name too long"},
    };
    ASSERT_TRUE(save_rejections(file, kept));
    auto loaded = load_rejections(file);
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_EQ(*loaded, kept);
}

TEST(RejectionStore, NoFileIsNothingKeptAndAnEmptyListRemovesTheFile) {
    test::TempDir dir{"rejections"};
    const auto file = rejections_file(dir.path(), ServerEndpoint{.host = "backup1", .port = 7411});
    auto none = load_rejections(file);
    ASSERT_TRUE(none) << none.error().message;
    EXPECT_TRUE(none->empty());
    ASSERT_TRUE(save_rejections(file, {}));  // nothing to remove
    ASSERT_TRUE(save_rejections(file, {{.lsn = 1, .path = "a", .message = "m"}}));
    ASSERT_TRUE(fs::exists(file));
    ASSERT_TRUE(save_rejections(file, {}));
    EXPECT_FALSE(fs::exists(file));
}

// A damaged file is refused naming it, never read as fewer rejections than
// it held: a sync would then say done with the replica different.
TEST(RejectionStore, ADamagedFileIsRefusedNamingIt) {
    test::TempDir dir{"rejections"};
    const auto file = rejections_file(dir.path(), ServerEndpoint{.host = "backup1", .port = 7411});
    ASSERT_TRUE(save_rejections(file, {{.lsn = 1, .path = "a", .message = "m"}}));
    fs::resize_file(file, fs::file_size(file) - 1);
    auto cut = load_rejections(file);
    ASSERT_FALSE(cut);
    EXPECT_NE(cut.error().message.find(file.string()), std::string::npos) << cut.error().message;
    std::ofstream(file, std::ios::trunc) << "something else\n";
    EXPECT_FALSE(load_rejections(file));
}

}  // namespace
}  // namespace iz::replicator
