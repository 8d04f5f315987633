// Idempotent replay: an agent that reconnects resumes from the durable LSN,
// so a server sees operations it already applied again. Replaying any
// suffix of what was applied must leave the tree exactly as it was (no
// changed byte, mode, owner, time or link, and no spurious conflict copy).
#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/stat.h>

#include <fmt/format.h>

#include <chrono>
#include <set>
#include <thread>

#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

// A session of source activity touching every OpKind, shaped like what the
// shipper sends: creations carry their attributes and creation mtime,
// namespace changes carry the parent's mtime after the change, content
// carries the file's final mtime.
struct History {
    std::vector<OpMsg> ops;
    // Content whose file (inode) no longer exists at the source by the end.
    // The shipper reads data at ship time through the file handle, so when
    // it replays it sends nothing for these: a later record says what
    // became of the file.
    std::set<uint64_t> gone;

    std::vector<OpMsg> replayed() const {
        std::vector<OpMsg> out;
        for (auto& op : ops)
            if (!gone.contains(op.lsn)) out.push_back(op);
        return out;
    }
};

History source_history() {
    History history;
    auto& h = history.ops;
    uint64_t lsn = 100;
    int tick = 0;
    auto next = [&] { return t(++tick); };
    auto add = [&](OpMsg m) {
        m.lsn = ++lsn;
        h.push_back(std::move(m));
    };
    // Like the shipper, the end of whole-file content carries the file's
    // mode and owner as the source has them.
    auto content = [&](const std::string& path, const std::string& data, std::optional<int64_t> parent,
                       uint32_t mode, uint32_t uid, uint32_t gid, bool gone_later = false) {
        auto ops = content_ops(++lsn, path, data, next(), 3000);
        if (gone_later) history.gone.insert(lsn);
        ops.back().parent_mtime_ns = parent;
        ops.back().mode = mode;
        ops.back().uid = uid;
        ops.back().gid = gid;
        h.insert(h.end(), ops.begin(), ops.end());
    };
    std::string big;
    for (int i = 0; i < 10000; ++i) big += static_cast<char>('a' + i % 23);

    add({.kind = OpKind::mkdir, .path = "docs", .mode = 040755u, .uid = 1000u, .gid = 1000u, .mtime_ns = next(),
         .parent_mtime_ns = next()});
    add({.kind = OpKind::create, .path = "docs/a.txt", .mode = 0100644u, .uid = 1000u, .gid = 1000u,
         .mtime_ns = next(), .parent_mtime_ns = next()});
    content("docs/a.txt", big, next(), 0100644u, 1000u, 1000u);
    add({.kind = OpKind::setxattr, .path = "docs/a.txt", .xattr_name = "user.tag", .xattr_value = "blue"});
    add({.kind = OpKind::write, .path = "docs/a.txt", .mtime_ns = next(), .size = 12000,
         .extents = {proto::make_extent(3, "patched", false), proto::make_extent(11000, std::string(1000, 'z'))}});
    add({.kind = OpKind::truncate, .path = "docs/a.txt", .mtime_ns = next(), .size = 9000});
    add({.kind = OpKind::link, .path = "docs/a.txt", .target = "docs/a-link", .target_parent_mtime_ns = next()});
    add({.kind = OpKind::symlink, .path = "docs/latest", .target = "a.txt", .uid = 1000u, .gid = 1000u,
         .mtime_ns = next(), .parent_mtime_ns = next()});
    add({.kind = OpKind::mknod, .path = "docs/pipe", .mode = S_IFIFO | 0640u, .mtime_ns = next(), .parent_mtime_ns = next()});
    // An editor's save: temporary, content, rename into place.
    add({.kind = OpKind::create, .path = "tmp.swp", .mode = 0100600u, .mtime_ns = next(), .parent_mtime_ns = next()});
    content("tmp.swp", "saved by the editor", next(), 0100600u, 0u, 0u);
    add({.kind = OpKind::rename, .path = "tmp.swp", .target = "docs/b.txt", .parent_mtime_ns = next(),
         .target_parent_mtime_ns = next()});
    add({.kind = OpKind::setattr, .path = "docs/b.txt", .mode = 0100600u, .uid = 1001u, .atime_ns = next(), .mtime_ns = next()});
    // A directory that lives and dies in the window.
    add({.kind = OpKind::mkdir, .path = "old", .mode = 040700u, .mtime_ns = next(), .parent_mtime_ns = next()});
    add({.kind = OpKind::create, .path = "old/x", .mode = 0100644u, .mtime_ns = next(), .parent_mtime_ns = next()});
    add({.kind = OpKind::unlink, .path = "old/x", .parent_mtime_ns = next()});
    add({.kind = OpKind::rmdir, .path = "old", .parent_mtime_ns = next()});
    // Rename over an existing file.
    add({.kind = OpKind::create, .path = "docs/c", .mode = 0100644u, .mtime_ns = next(), .parent_mtime_ns = next()});
    content("docs/c", "to be replaced", next(), 0100644u, 0u, 0u, /*gone_later=*/true);
    add({.kind = OpKind::rename, .path = "docs/b.txt", .target = "docs/c", .replaced = true, .parent_mtime_ns = next(),
         .target_parent_mtime_ns = next()});
    add({.kind = OpKind::removexattr, .path = "docs/a.txt", .xattr_name = "user.tag"});
    add({.kind = OpKind::setxattr, .path = "docs", .xattr_name = "user.dir", .xattr_value = "d"});
    // Content through the second name of a hard-linked file (in place).
    content("docs/a-link", "rewritten through the link", next(), 0100644u, 1000u, 1000u);
    // A directory moved under another.
    add({.kind = OpKind::mkdir, .path = "dir2", .mode = 040755u, .mtime_ns = next(), .parent_mtime_ns = next()});
    content("dir2/inside", "moves along", next(), 0100600u, 0u, 0u);
    add({.kind = OpKind::rename, .path = "dir2", .target = "docs/dir3", .parent_mtime_ns = next(),
         .target_parent_mtime_ns = next()});
    // Born and gone.
    add({.kind = OpKind::create, .path = "gone", .mode = 0100644u, .mtime_ns = next(), .parent_mtime_ns = next()});
    add({.kind = OpKind::unlink, .path = "gone", .parent_mtime_ns = next()});
    add({.kind = OpKind::setattr, .path = "", .mode = 040751u, .mtime_ns = next()});
    add({.kind = OpKind::noop});
    return history;
}

class ApplyReplay : public ApplyTest {
protected:
    // Applies ops[from..], expecting every one applied (or, when
    // `may_skip`, skipped: replayed from the middle of a history, an op can
    // find its parent already gone) and no conflict at all.
    void run(const std::vector<OpMsg>& ops, size_t from, bool may_skip = false) {
        for (size_t i = from; i < ops.size(); ++i) {
            auto r = applier_->apply(ops[i]);
            bool fine = r.outcome == Outcome::applied || (may_skip && r.outcome == Outcome::skipped);
            EXPECT_TRUE(fine) << "#" << i << " " << proto::op_kind_name(ops[i].kind) << " '" << ops[i].path
                              << "': " << outcome_name(r.outcome) << ": " << r.message;
            for (auto& c : r.conflicts)
                ADD_FAILURE() << "#" << i << " " << proto::op_kind_name(ops[i].kind) << " '" << ops[i].path
                              << "': spurious conflict on '" << c.path << "' kept as '" << c.conflict_copy
                              << "': " << c.message;
        }
    }
};

TEST_F(ApplyReplay, HistoryGivesTheExpectedTree) {
    auto ops = source_history().ops;
    run(ops, 0);
    ASSERT_TRUE(applier_->commit(ops.back().lsn));
    EXPECT_EQ(test::listing(root_),
              "docs\ndocs/a-link\ndocs/a.txt\ndocs/c\ndocs/dir3\ndocs/dir3/inside\ndocs/latest\ndocs/pipe\n");
    EXPECT_EQ(test::read_file(root_ / "docs/a.txt"), "rewritten through the link");
    EXPECT_EQ(test::read_file(root_ / "docs/c"), "saved by the editor");
    EXPECT_EQ(test::read_file(root_ / "docs/dir3/inside"), "moves along");
    EXPECT_EQ(fs::read_symlink(root_ / "docs/latest"), "a.txt");
    EXPECT_EQ(fs::hard_link_count(root_ / "docs/a.txt"), 2u);
    EXPECT_EQ(test::xattr(root_ / "docs/a.txt", "user.tag"), "");
    EXPECT_EQ(test::xattr(root_ / "docs", "user.dir"), "d");
    struct stat c{};
    ASSERT_EQ(::lstat((root_ / "docs/c").c_str(), &c), 0);
    EXPECT_EQ(c.st_mode & 07777, 0600u);
    EXPECT_EQ(c.st_uid, 1001u);
}

TEST_F(ApplyReplay, ReplayingAnySuffixChangesNothing) {
    auto history = source_history();
    run(history.ops, 0);
    ASSERT_TRUE(applier_->commit(history.ops.back().lsn));
    const std::string before = test::manifest(root_);
    auto ops = history.replayed();
    // Resume points: the very start, and the start of several LSNs in the
    // middle (never inside one LSN's content sequence).
    for (size_t from : {size_t{0}, ops.size() / 4, ops.size() / 3, ops.size() / 2, 2 * ops.size() / 3, ops.size() - 3}) {
        while (from > 0 && ops[from].kind != OpKind::content_begin && ops[from].lsn == ops[from - 1].lsn) --from;
        SCOPED_TRACE(fmt::format("replay from #{} (LSN {})", from, ops[from].lsn));
        run(ops, from, /*may_skip=*/from > 0);
        EXPECT_EQ(test::manifest(root_), before);
    }
}

TEST_F(ApplyReplay, ReplayAfterReopeningChangesNothing) {
    auto history = source_history();
    auto& ops = history.ops;
    run(ops, 0);
    ASSERT_TRUE(applier_->commit(ops.back().lsn));
    const std::string before = test::manifest(root_);
    reopen();  // a server restart: file memory and LSNs come from disk
    EXPECT_EQ(applier_->durable_lsn(), ops.back().lsn);
    run(history.replayed(), 0);
    ASSERT_TRUE(applier_->commit(ops.back().lsn));
    EXPECT_EQ(test::manifest(root_), before);
}

// An exchange is its own inverse: replayed, in the same run or after a
// restart, it must find itself done (exchange_notes.hpp) and not swap the
// two names back.
class ApplyReplayExchange : public ApplyReplay {
protected:
    std::vector<OpMsg> history() {
        std::vector<OpMsg> ops;
        uint64_t lsn = 200;
        auto add = [&](OpMsg m) {
            m.lsn = ++lsn;
            ops.push_back(std::move(m));
        };
        auto content = [&](const std::string& path, const std::string& data) {
            ++lsn;
            auto c = content_ops(lsn, path, data, t(static_cast<int>(lsn)));
            ops.insert(ops.end(), c.begin(), c.end());
        };
        content("f", "AAA");
        content("g", "BB");
        add({.kind = OpKind::mkdir, .path = "a", .mode = 040755u, .mtime_ns = t(1)});
        content("a/x", "in a");
        add({.kind = OpKind::mkdir, .path = "b", .mode = 040755u, .mtime_ns = t(1)});
        content("b/y", "in b");
        first_exchange = ops.size();
        // Like the shipper, each carries its directories' mtimes at the source.
        auto exchange = [&](const std::string& a, const std::string& b) {
            add({.kind = OpKind::exchange, .path = a, .target = b, .parent_mtime_ns = t(static_cast<int>(lsn) + 1),
                 .target_parent_mtime_ns = t(static_cast<int>(lsn) + 1)});
        };
        exchange("f", "g");
        exchange("a", "b");
        exchange("g", "b");
        // The same two names exchanged twice: back where they were (a
        // replay from the first of the two finds the names as they were
        // before it, and exchanges them twice again).
        exchange("f", "a");
        exchange("f", "a");
        return ops;
    }
    void expect_final_tree() {
        EXPECT_EQ(test::listing(root_), "a\na/y\nb\nf\ng\ng/x\n");
        EXPECT_EQ(test::read_file(root_ / "f"), "BB");
        EXPECT_EQ(test::read_file(root_ / "b"), "AAA");
        EXPECT_EQ(test::read_file(root_ / "a/y"), "in b");
        EXPECT_EQ(test::read_file(root_ / "g/x"), "in a");
    }
    size_t first_exchange = 0;
};

TEST_F(ApplyReplayExchange, ReplayedExchangesDoNotSwapBack) {
    auto ops = history();
    run(ops, 0);
    expect_final_tree();
    const std::string after = test::manifest(root_);
    for (size_t from = first_exchange; from < ops.size(); ++from) {
        SCOPED_TRACE(fmt::format("replay from #{} (LSN {})", from, ops[from].lsn));
        run(ops, from);
        EXPECT_EQ(test::manifest(root_), after);
    }
    // Killed before any commit, restarted: the notes come from disk.
    reopen();
    for (size_t from = first_exchange; from < ops.size(); ++from) {
        SCOPED_TRACE(fmt::format("after a restart, replay from #{} (LSN {})", from, ops[from].lsn));
        run(ops, from);
        EXPECT_EQ(test::manifest(root_), after);
    }
    expect_final_tree();
}

// The machine crashed after the note was made but before the exchange
// reached the disk: the replay finds both names as they were, and
// exchanges them.
TEST_F(ApplyReplayExchange, AnExchangeLostInACrashIsMadeOnReplay) {
    auto ops = history();
    run(ops, 0);
    const std::string after = test::manifest(root_);
    // Undo the last three exchanges by hand, as if they never reached the disk.
    for (auto& [a, b] : {std::pair{"f", "a"}, std::pair{"f", "a"}, std::pair{"g", "b"}})
        ASSERT_EQ(::renameat2(AT_FDCWD, (root_ / a).c_str(), AT_FDCWD, (root_ / b).c_str(), RENAME_EXCHANGE), 0);
    reopen();
    run(ops, first_exchange + 2);
    EXPECT_EQ(test::manifest(root_), after);
    expect_final_tree();
}

// Replayed after later operations replaced one side: still done.
TEST_F(ApplyReplayExchange, AnExchangeWhoseNameWasReplacedSinceIsDone) {
    auto ops = history();
    run(ops, 0);
    std::vector<OpMsg> later = content_ops(300, "f.new", "replacement", t(50));
    later.back().parent_mtime_ns = t(51);
    later.push_back(OpMsg{.lsn = 301, .kind = OpKind::rename, .path = "f.new", .target = "f", .replaced = true,
                          .parent_mtime_ns = t(52), .target_parent_mtime_ns = t(52)});
    run(later, 0);
    const std::string after = test::manifest(root_);
    run(ops, first_exchange);
    run(later, 0, /*may_skip=*/true);
    EXPECT_EQ(test::manifest(root_), after);
    EXPECT_EQ(test::read_file(root_ / "f"), "replacement");
    EXPECT_EQ(test::read_file(root_ / "g/x"), "in a");
}

// Renames and removals whose name is taken again later in the same window:
// two names swapped through a temporary one, a file moved away whose name
// another file then takes, and a name removed and then given to another
// file (what a restart's rescan journals for a file replaced while no agent
// ran). Replayed from their start after the server was killed, each finds
// its name holding what a later one put there and must leave it
// (exchange_notes.hpp): run again, the swap undid itself, the moved file
// was replaced by the one that took its name, and the file renamed into
// the removed name was removed.
class ApplyReplayRename : public ApplyReplay {
protected:
    std::vector<OpMsg> history() {
        std::vector<OpMsg> ops;
        uint64_t lsn = 400;
        auto add = [&](OpMsg m) {
            m.lsn = ++lsn;
            ops.push_back(std::move(m));
        };
        auto content = [&](const std::string& path, const std::string& data) {
            ++lsn;
            auto c = content_ops(lsn, path, data, t(static_cast<int>(lsn)));
            ops.insert(ops.end(), c.begin(), c.end());
        };
        auto rename = [&](const std::string& from, const std::string& to) {
            add({.kind = OpKind::rename, .path = from, .target = to, .parent_mtime_ns = t(static_cast<int>(lsn) + 1),
                 .target_parent_mtime_ns = t(static_cast<int>(lsn) + 1)});
        };
        add({.kind = OpKind::mkdir, .path = "dir", .mode = 040755u, .mtime_ns = t(1)});
        content("dir/inside", "in the directory");
        add({.kind = OpKind::mknod, .path = "pipe", .mode = S_IFIFO | 0640u, .mtime_ns = t(2)});
        content("f", "first");
        content("g", "second");
        content("u", "replaced");
        content("v", "replaces it");
        first_rename = ops.size();
        rename("dir", ".iz-rescan-0");
        rename("pipe", "dir");
        rename(".iz-rescan-0", "pipe");
        rename("f", "kept");
        rename("g", "f");
        add({.kind = OpKind::unlink, .path = "u", .parent_mtime_ns = t(static_cast<int>(lsn) + 1)});
        rename("v", "u");
        return ops;
    }
    void expect_final_tree() {
        EXPECT_EQ(test::listing(root_), "dir\nf\nkept\npipe\npipe/inside\nu\n");
        EXPECT_EQ(test::read_file(root_ / "u"), "replaces it");
        EXPECT_TRUE(S_ISFIFO(lstat_of(root_ / "dir").st_mode));
        EXPECT_EQ(test::read_file(root_ / "pipe/inside"), "in the directory");
        EXPECT_EQ(test::read_file(root_ / "kept"), "first");
        EXPECT_EQ(test::read_file(root_ / "f"), "second");
    }
    size_t first_rename = 0;
};

TEST_F(ApplyReplayRename, ReplayedRenamesDoNotMoveWhatTookTheirNames) {
    auto ops = history();
    run(ops, 0);
    expect_final_tree();
    const std::string after = test::manifest(root_);
    // Killed before any commit, restarted (a restart takes longer than the
    // tick of the clock birth times are stamped with): the notes come from
    // disk.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    reopen();
    for (size_t from = first_rename; from < ops.size(); ++from) {
        SCOPED_TRACE(fmt::format("after a restart, replay from #{} (LSN {})", from, ops[from].lsn));
        run(ops, from, /*may_skip=*/true);
        EXPECT_EQ(test::manifest(root_), after);
    }
    expect_final_tree();
}

// The connection dropped and the sender resumed from the server's last
// progress mark, with no restart of the server.
TEST_F(ApplyReplayRename, ReplayedAfterANewConnectionToo) {
    auto ops = history();
    run(ops, 0);
    const std::string after = test::manifest(root_);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    applier_->resume();
    run(ops, first_rename, /*may_skip=*/true);
    EXPECT_EQ(test::manifest(root_), after);
    expect_final_tree();
}

// Killed after the note was made but before the rename: the replay finds
// the name still holding what the note says, and renames it.
TEST_F(ApplyReplayRename, ARenameNotMadeBeforeTheKillIsMadeOnReplay) {
    auto ops = history();
    run(ops, 0);
    const std::string after = test::manifest(root_);
    // Undo the last rename by hand, as if the kill came right before it.
    fs::rename(root_ / "u", root_ / "v");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    reopen();
    run(ops, ops.size() - 1);
    EXPECT_EQ(test::manifest(root_), after);
    expect_final_tree();
}

// Replayed after a restart, an operation whose directory a later one
// replaced with a symlink finds a path through a symlink: skipped (it was
// applied), not refused. Refused, the connection was dropped and the agent
// resumed at the same operation forever.
TEST_F(ApplyReplay, AReplayedPathThroughWhatIsNowASymlinkIsSkipped) {
    std::vector<OpMsg> ops;
    uint64_t lsn = 500;
    auto add = [&](OpMsg m) {
        m.lsn = ++lsn;
        ops.push_back(std::move(m));
    };
    add({.kind = OpKind::mkdir, .path = "d", .mode = 040755u, .mtime_ns = t(1)});
    auto c = content_ops(++lsn, "d/x", "inside", t(2));
    ops.insert(ops.end(), c.begin(), c.end());
    size_t replay_from = ops.size();
    add({.kind = OpKind::unlink, .path = "d/x", .parent_mtime_ns = t(3)});
    add({.kind = OpKind::rmdir, .path = "d", .parent_mtime_ns = t(4)});
    add({.kind = OpKind::symlink, .path = "d", .target = "elsewhere", .mtime_ns = t(5), .parent_mtime_ns = t(5)});
    run(ops, 0);
    ASSERT_TRUE(applier_->finish_batch());  // the directory times it defers
    const std::string after = test::manifest(root_);
    reopen();  // killed before a commit
    run(ops, replay_from, /*may_skip=*/true);
    ASSERT_TRUE(applier_->finish_batch());
    EXPECT_EQ(test::manifest(root_), after);
    EXPECT_EQ(fs::read_symlink(root_ / "d"), "elsewhere");
    // The same without a restart: a connection dropped and resumed.
    run(ops, replay_from, /*may_skip=*/true);
    ASSERT_TRUE(applier_->finish_batch());
    EXPECT_EQ(test::manifest(root_), after);
}

TEST_F(ApplyReplay, EachOperationTwiceInARowIsHarmless) {
    // Every operation applied twice back to back (a retransmission) gives
    // the same tree as applying it once.
    auto ops = source_history().ops;
    run(ops, 0);
    const std::string once = test::manifest(root_);
    fs::remove_all(root_);
    fs::remove_all(state_);
    reopen();
    for (size_t i = 0; i < ops.size();) {
        // A content sequence is repeated as a whole.
        size_t end = i + 1;
        while (end < ops.size() && ops[end].lsn == ops[i].lsn) ++end;
        std::vector<OpMsg> group(ops.begin() + static_cast<long>(i), ops.begin() + static_cast<long>(end));
        run(group, 0);
        run(group, 0);
        i = end;
    }
    EXPECT_EQ(test::manifest(root_), once);
}

}  // namespace
}  // namespace iz::replicator::test_apply
