// Receive-only: what the agent keeps of its users' changes. The local
// version a forward replaces is kept under a name of its own even when two
// are kept of one path in one second; the set of paths held as local
// changes shrinks when nothing is left there to keep; a copy kept aside is
// in the tree a restart compares the directory with.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "agent/crash_recovery.hpp"
#include "common/conflict_name.hpp"
#include "common/file_handle.hpp"
#include "journal/writer.hpp"
#include "keep_local.hpp"
#include "local_changes.hpp"
#include "support/tree.hpp"

namespace iz::agent {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

TEST(KeepLocal, TwoCopiesOfOnePathInOneSecondAreBothKept) {
    test::TempDir root("keep-local");
    fs::create_directories(root / "docs");
    const int64_t now = 1'765'000'000'000'000'000;  // one second for both
    const std::string base = conflict_copy_name("docs/f.txt", "b", now);

    std::ofstream(root / "docs/f.txt") << "the first local version";
    auto first = keep_local_copy(root.path(), "docs/f.txt", base);
    ASSERT_TRUE(first) << first.error().message;
    ASSERT_TRUE(first->copied);
    EXPECT_EQ(first->copy, base);

    std::ofstream(root / "docs/f.txt", std::ios::trunc) << "the second local version";
    auto second = keep_local_copy(root.path(), "docs/f.txt", base);
    ASSERT_TRUE(second) << second.error().message;
    ASSERT_TRUE(second->copied);
    EXPECT_EQ(second->copy, base + "-2");

    EXPECT_EQ(slurp(root / base), "the first local version");
    EXPECT_EQ(slurp(root / (base + "-2")), "the second local version");

    // A symlink the same way.
    fs::create_symlink("elsewhere", root / "docs/l");
    const std::string lbase = conflict_copy_name("docs/l", "b", now);
    ASSERT_TRUE(keep_local_copy(root.path(), "docs/l", lbase));
    auto again = keep_local_copy(root.path(), "docs/l", lbase);
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(again->copy, lbase + "-2");
    EXPECT_EQ(fs::read_symlink(root / again->copy), "elsewhere");
}

}  // namespace
}  // namespace iz::agent
