// The rejections a server keeps for an agent until the agent confirms it
// stored them (kept_rejections.hpp): durable, one per LSN and path, and a
// damaged file refused naming it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "kept_rejections.hpp"
#include "support/fsync_probe.hpp"
#include "support/tree.hpp"

namespace iz::replicator {
namespace {

namespace fs = std::filesystem;
using proto::RejectedMsg;

std::vector<RejectedMsg> reopened(const fs::path& file) {
    auto again = KeptRejections::open(file);
    EXPECT_TRUE(again) << again.error().message;
    return again ? (*again)->all() : std::vector<RejectedMsg>{};
}

// Each keep() and forget() is on disk when it returns: the file and its
// directory were synced, and another open reads what was kept, in order;
// the same LSN and path keeps its latest message once.
TEST(KeptRejections, WhatIsKeptIsOnDiskWhenKeepReturnsAndGoesWhenForgotten) {
    test::TempDir dir{"kept-rejections"};
    const auto file = KeptRejections::file_in(dir.path() / "agent" / "fileset");
    auto kept = KeptRejections::open(file);
    ASSERT_TRUE(kept) << kept.error().message;
    EXPECT_TRUE((*kept)->all().empty());
    EXPECT_FALSE(fs::exists(file));

    test::FsyncProbe probe;
    RejectedMsg frozen{.lsn = 9, .path = "frozen/new", .message = "Operation not permitted"};
    RejectedMsg odd{.lsn = 12, .path = std::string("odd\nname\t\xff", 11), .message = "File name too long"};
    ASSERT_TRUE((*kept)->keep(frozen));
    EXPECT_GE(test::FsyncProbe::index_of(file), 0);
    EXPECT_GE(test::FsyncProbe::index_of(file.parent_path()), 0);
    ASSERT_TRUE((*kept)->keep(odd));
    RejectedMsg reworded = frozen;
    reworded.message = "Operation not permitted (a replay)";
    ASSERT_TRUE((*kept)->keep(reworded));
    EXPECT_EQ(reopened(file), (std::vector<RejectedMsg>{reworded, odd}));

    auto gone = (*kept)->forget(9, "frozen/new");
    ASSERT_TRUE(gone) << gone.error().message;
    EXPECT_TRUE(*gone);
    auto again = (*kept)->forget(9, "frozen/new");
    ASSERT_TRUE(again);
    EXPECT_FALSE(*again);
    auto other_path = (*kept)->forget(12, "odd");
    ASSERT_TRUE(other_path);
    EXPECT_FALSE(*other_path);
    EXPECT_EQ(reopened(file), (std::vector<RejectedMsg>{odd}));
    ASSERT_TRUE((*kept)->forget(12, odd.path));
    EXPECT_FALSE(fs::exists(file));
    EXPECT_TRUE(reopened(file).empty());
}

TEST(KeptRejections, TheOldestGoBeyondTheLimit) {
    test::TempDir dir{"kept-rejections"};
    const auto file = KeptRejections::file_in(dir.path());
    auto kept = KeptRejections::open(file);
    ASSERT_TRUE(kept);
    for (uint64_t lsn = 1; lsn <= KeptRejections::kMaxKept + 2; ++lsn)
        ASSERT_TRUE((*kept)->keep(RejectedMsg{.lsn = lsn, .path = "p", .message = "m"}));
    auto all = reopened(file);
    ASSERT_EQ(all.size(), KeptRejections::kMaxKept);
    EXPECT_EQ(all.front().lsn, 3u);
    EXPECT_EQ(all.back().lsn, KeptRejections::kMaxKept + 2);
}

// A damaged file is an error naming it and saying what to do, never fewer
// rejections than it held (the agent would be told nothing of the lost
// ones) and never a crash.
TEST(KeptRejections, ADamagedFileIsRefusedNamingIt) {
    test::TempDir dir{"kept-rejections"};
    const auto file = KeptRejections::file_in(dir.path());
    {
        auto kept = KeptRejections::open(file);
        ASSERT_TRUE(kept);
        ASSERT_TRUE((*kept)->keep(RejectedMsg{.lsn = 1, .path = "a", .message = "m"}));
        ASSERT_TRUE((*kept)->keep(RejectedMsg{.lsn = 2, .path = "b", .message = "m"}));
    }
    auto expect_refused = [&](const std::string& what) {
        SCOPED_TRACE(what);
        auto r = KeptRejections::open(file);
        ASSERT_FALSE(r);
        EXPECT_NE(r.error().message.find(file.string()), std::string::npos) << r.error().message;
        EXPECT_NE(r.error().message.find("cannot be read"), std::string::npos) << r.error().message;
        EXPECT_NE(r.error().message.find("remove the file"), std::string::npos) << r.error().message;
    };
    fs::resize_file(file, fs::file_size(file) - 1);
    expect_refused("cut short in a body");
    fs::resize_file(file, fs::file_size(file) - 20);
    expect_refused("cut short in a header");
    std::ofstream(file, std::ios::trunc) << "something else\n";
    expect_refused("not a file of rejections");
    {
        std::ofstream out(file, std::ios::trunc | std::ios::binary);
        out << "intermezzo server rejections 1\n";
        out << *proto::encode_frame(proto::Ack{3});
    }
    expect_refused("a frame of another kind");
    {
        std::ofstream out(file, std::ios::trunc | std::ios::binary);
        out << "intermezzo server rejections 1\n" << std::string(12, '\xff');
    }
    expect_refused("a bad header");
}

}  // namespace
}  // namespace iz::replicator
