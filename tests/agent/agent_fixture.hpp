#pragma once
// A watched directory on a fresh ext4 or XFS mount. The directory is a
// subdirectory of the mount, so the rest of the filesystem is "outside":
// fanotify sees it (the mark is on the whole filesystem), the journal must
// not. Each test arranges the tree, calls start(), changes things and
// compares changes() with exactly the records it expects.
#include <gtest/gtest.h>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "support/scratch_fs.hpp"
#include "watch.hpp"

namespace iz::test {
// Test names and messages say "ext4", not the enum's bytes.
inline void PrintTo(FsType type, std::ostream* os) { *os << fs_name(type); }
}  // namespace iz::test

namespace iz::test::agent {

class AgentOn : public ::testing::TestWithParam<FsType> {
protected:
    void SetUp() override;
    void TearDown() override;

    // Starts izwatch on root() (with `extra` options). Whatever it journals
    // up to here is the baseline; changes() reports what comes after.
    void start(const std::vector<std::string>& extra = {});
    // Syncs, then the records of tree changes journaled since start() or
    // the last mark().
    std::vector<json> changes();
    std::vector<std::string> described_changes() { return describe(changes()); }
    // Later changes() begin after what is journaled now.
    void mark();
    void sync();

    const fs::path& root() const { return root_; }
    fs::path mount() const { return fs_->mount_point(); }
    fs::path at(const std::string& rel) const { return root_ / rel; }
    Watch& watch() { return *watch_; }

    std::unique_ptr<ScratchFs> fs_;
    std::unique_ptr<TempDir> work_;
    std::unique_ptr<Watch> watch_;
    fs::path root_;
    uint64_t mark_ = 0;
};

// For INSTANTIATE_TEST_SUITE_P: "ext4" / "xfs" in the test names.
std::string fs_param_name(const ::testing::TestParamInfo<FsType>& info);

// Small, checked file operations (failures are test failures).
void write_file(const fs::path& p, const std::string& data, mode_t mode = 0644);
void append_file(const fs::path& p, const std::string& data);
void make_dir(const fs::path& p, mode_t mode = 0755);
// pwrite of `length` bytes of `fill` at `offset` into an open fd.
void pwrite_all(int fd, uint64_t offset, size_t length, char fill = 'x');

}  // namespace iz::test::agent
