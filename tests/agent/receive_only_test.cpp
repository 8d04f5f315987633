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

class Journal {
public:
    explicit Journal(const fs::path& dir) {
        journal::WriterOptions o;
        o.dir = dir;
        o.sync = false;
        o.preallocate = false;
        o.segment_bytes = 1 << 20;
        auto w = journal::Writer::open(o);
        if (!w) throw std::runtime_error(w.error().message);
        w_ = std::move(*w);
    }
    uint64_t add(journal::Op op, const std::string& path, const std::string& target = {}) {
        journal::Record r;
        r.op = op;
        r.path = path;
        r.target = target;
        return add(std::move(r));
    }
    uint64_t add(journal::Record r) {
        auto lsn = w_->append(std::move(r));
        if (!lsn) throw std::runtime_error(lsn.error().message);
        if (auto ok = w_->wait_durable(*lsn); !ok) throw std::runtime_error(ok.error().message);
        return *lsn;
    }
    journal::Writer& writer() { return *w_; }

private:
    std::unique_ptr<journal::Writer> w_;
};

TEST(LocalChanges, PathsWithNothingLeftToKeepAreNoLongerHeld) {
    test::TempDir dir("local-changes");
    Journal j(dir.path());
    LocalChanges changes(dir.path(), 0);

    j.add(journal::Op::create, "a.txt");
    j.add(journal::Op::mkdir, "d");
    j.add(journal::Op::create, "d/x");
    j.add(journal::Op::create, "d/y");
    ASSERT_TRUE(changes.poll());
    EXPECT_TRUE(changes.holds("a.txt"));
    EXPECT_TRUE(changes.holds("d/x"));
    EXPECT_EQ(changes.held(), 3u);  // a directory holds nothing of its own

    // Removed: nothing there for a forward to destroy.
    j.add(journal::Op::unlink, "a.txt");
    EXPECT_FALSE(changes.holds("a.txt"));
    // Moved: held at the new name, with what is beneath it.
    j.add(journal::Op::rename, "d", "e");
    EXPECT_FALSE(changes.holds("d/x"));
    EXPECT_TRUE(changes.holds("e/x"));
    EXPECT_TRUE(changes.holds("e/y"));
    j.add(journal::Op::rmdir, "e");
    EXPECT_FALSE(changes.holds("e/x"));
    EXPECT_EQ(changes.held(), 0u);
    // Still counted and listed: they were local changes.
    EXPECT_EQ(changes.count(), 7u);

    // Many files made and removed leave nothing held.
    for (int i = 0; i < 500; ++i) {
        j.add(journal::Op::create, "tmp" + std::to_string(i));
        j.add(journal::Op::unlink, "tmp" + std::to_string(i));
    }
    ASSERT_TRUE(changes.poll());
    EXPECT_EQ(changes.held(), 0u);
    EXPECT_LE(changes.paths().size(), LocalChanges::kPathsKept);

    // A revert forgets them all.
    j.add(journal::Op::create, "again");
    ASSERT_TRUE(changes.clear());
    EXPECT_EQ(changes.count(), 0u);
    EXPECT_TRUE(changes.paths().empty());
    EXPECT_FALSE(changes.holds("again"));
}

// The conflict record of a copy kept aside puts the copy in the tree a
// restart compares the directory with: without it, the restart's rescan
// journals the copy as a local change once more.
TEST(LocalChanges, AKeptCopyIsInTheTreeARestartReplays) {
    test::TempDir root("kept-root"), dir("kept-journal");
    std::ofstream(root / "f.txt") << "local version";
    auto kept = keep_local_copy(root.path(), "f.txt", conflict_copy_name("f.txt", "b", 1'765'000'000'000'000'000));
    ASSERT_TRUE(kept && kept->copied);
    struct stat st {};
    ASSERT_EQ(::lstat((root / kept->copy).c_str(), &st), 0);
    auto handle = handle_of(AT_FDCWD, (root / kept->copy).string());
    ASSERT_TRUE(handle) << handle.error().message;

    Journal j(dir.path());
    uint64_t saved = j.add(journal::Op::start, "");
    journal::Record r;
    r.op = journal::Op::conflict;
    r.path = "f.txt";
    r.target = kept->copy;
    r.message = "kept";
    r.handle = *handle;
    r.mode = st.st_mode;
    r.owner_uid = st.st_uid;
    r.owner_gid = st.st_gid;
    r.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    r.size = static_cast<uint64_t>(st.st_size);
    j.add(r);
    // A server's conflict note (with an origin, no handle) makes nothing.
    journal::Record note;
    note.op = journal::Op::conflict;
    note.path = "g.txt";
    note.target = "g.txt.conflict-a-20251206T000000Z";
    note.origin = "a";
    j.add(note);

    Tree tree;
    tree["f.txt"] = Entry{.mode = S_IFREG | 0644, .size = 13};
    auto changed = replay_journal(dir.path(), saved, tree);
    ASSERT_TRUE(changed) << changed.error().message;
    ASSERT_TRUE(tree.count(kept->copy)) << "the copy kept aside is not in the replayed tree";
    const Entry& e = tree[kept->copy];
    EXPECT_EQ(e.handle, *handle);
    EXPECT_EQ(e.size, static_cast<uint64_t>(st.st_size));
    EXPECT_EQ(e.mode, st.st_mode);
    EXPECT_EQ(e.mtime_ns, *r.mtime_ns);
    EXPECT_FALSE(tree.count(note.target));
}

}  // namespace
}  // namespace iz::agent
