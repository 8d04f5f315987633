// Events read after the tree was scanned: a start arms fanotify, then scans
// the directory, then reads what was queued meanwhile, so those events are
// older than the tree they are read against. A move they report onto a name
// that holds, now, what the scan found there replaced nothing: taken for a
// replacement, the journal removed that entry (a directory's entries kept
// aside as a .conflict copy on the replica) and made it again.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/fanotify.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "agent/capture.hpp"
#include "agent/fanotify_source.hpp"
#include "common/file_handle.hpp"
#include "common/unique_fd.hpp"
#include "journal/reader.hpp"
#include "journal/writer.hpp"
#include "support/scratch_fs.hpp"

namespace iz::test {
// Test names and messages say "ext4", not the enum's bytes.
inline void PrintTo(FsType type, std::ostream* os) { *os << fs_name(type); }
}  // namespace iz::test

namespace iz::agent {
namespace {

namespace fs = std::filesystem;
using test::FsType;
using test::ScratchFs;

class CaptureAfterAScan : public ::testing::TestWithParam<FsType> {
protected:
    void SetUp() override {
        auto made = ScratchFs::make(GetParam(), GetParam() == FsType::xfs ? 320 : 64, "after-scan");
        ASSERT_TRUE(made) << made.error().message;
        fs_ = std::move(*made);
        root_ = fs_->mount_point() / "w";
        outside_ = fs_->mount_point() / "outside";
        fs::create_directories(root_ / "n");
        fs::create_directories(outside_);
        std::ofstream(root_ / "n/inner") << "inner";
        std::ofstream(root_ / "a") << "a file";
        std::ofstream(outside_ / "m") << "from outside";
        auto writer = journal::Writer::open({.dir = fs_->mount_point() / "journal", .sync = false, .preallocate = false});
        ASSERT_TRUE(writer) << writer.error().message;
        writer_ = std::move(*writer);
        root_fd_.reset(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        ASSERT_TRUE(root_fd_.valid());
        capture_ = std::make_unique<Capture>(root_.string(), root_fd_.get(), std::vector<std::string>{}, *writer_, false);
        ASSERT_TRUE(capture_->catch_up({}, "baseline"));
        ASSERT_TRUE(writer_->flush());
        scanned_ = writer_->head_lsn();
    }

    void TearDown() override {
        capture_.reset();
        if (writer_) (void)writer_->close();
        writer_.reset();
        root_fd_.reset();
        fs_.reset();
    }

    static FileHandle handle(const fs::path& p) {
        auto h = handle_of(AT_FDCWD, p.string());
        EXPECT_TRUE(h) << h.error().message;
        return h ? *h : FileHandle{};
    }

    // "op path" of each record journaled after the scan.
    std::vector<std::string> journaled_since_the_scan() {
        EXPECT_TRUE(writer_->flush());
        std::vector<std::string> out;
        auto reader = journal::Reader::open(fs_->mount_point() / "journal");
        EXPECT_TRUE(reader) << reader.error().message;
        if (!reader || !(*reader)->seek_lsn(scanned_ + 1)) return out;
        while (true) {
            auto r = (*reader)->next();
            if (!r || !*r) break;
            out.push_back(fmt::format("{} {}", journal::op_name((*r)->op), (*r)->path));
        }
        return out;
    }

    std::unique_ptr<ScratchFs> fs_;
    fs::path root_, outside_;
    std::unique_ptr<journal::Writer> writer_;
    UniqueFd root_fd_;
    std::unique_ptr<Capture> capture_;
    uint64_t scanned_ = 0;
};

// A file from outside moved onto n (an exchange with the directory there,
// undone since): n holds the directory the scan found.
TEST_P(CaptureAfterAScan, AMoveInFromOutsideOntoANameThatHoldsWhatTheScanFoundReplacesNothing) {
    FanEvent ev;
    ev.mask = FAN_RENAME;
    ev.dir_handle = handle(outside_);
    ev.name = "m";
    ev.new_dir_handle = handle(root_);
    ev.new_name = "n";
    ev.object_handle = handle(outside_ / "m");
    capture_->on_event(ev);
    capture_->end_of_batch();
    auto got = journaled_since_the_scan();
    EXPECT_TRUE(got.empty()) << fmt::format("{}", fmt::join(got, "\n"));
    ASSERT_TRUE(capture_->tree().count("n/inner"));
    EXPECT_TRUE(capture_->tree().at("n").is_dir());
}

// Another object moved from a, where the scan found the file it has there,
// onto n: neither name holds it now, and n holds what the scan found.
TEST_P(CaptureAfterAScan, AMoveOfAnotherObjectOntoANameThatHoldsWhatTheScanFoundReplacesNothing) {
    FanEvent ev;
    ev.mask = FAN_RENAME;
    ev.dir_handle = handle(root_);
    ev.name = "a";
    ev.new_dir_handle = handle(root_);
    ev.new_name = "n";
    ev.object_handle = handle(outside_ / "m");
    capture_->on_event(ev);
    capture_->end_of_batch();
    auto got = journaled_since_the_scan();
    EXPECT_TRUE(got.empty()) << fmt::format("{}", fmt::join(got, "\n"));
    ASSERT_TRUE(capture_->tree().count("n/inner"));
    EXPECT_TRUE(capture_->tree().at("n").is_dir());
}

INSTANTIATE_TEST_SUITE_P(Filesystems, CaptureAfterAScan, ::testing::Values(FsType::ext4, FsType::xfs),
                         [](const auto& info) { return test::fs_name(info.param); });

}  // namespace
}  // namespace iz::agent
