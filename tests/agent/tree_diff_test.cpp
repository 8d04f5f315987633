// The rescan's comparison on its own: trees changed at random the way a
// person changes a tree while no agent runs (moves of files and directories
// into each other, swaps, trees removed, links, new entries), and the
// records applied one by one to a replica that holds the tree before, each
// checked against what a replica (and rename(2)) allows: no removal of a
// directory with entries, no unlink of a directory, no entry made or moved
// onto a name in use or under a missing directory, no directory moved into
// itself. The replica must end with the tree after: the same names, types
// and hard-link groups.
#include <sys/stat.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <set>

#include "agent/tree_diff.hpp"
#include "common/path_tree.hpp"

namespace iz::agent {
namespace {

using journal::Op;
using journal::Record;

std::string parent_of(const std::string& p) {
    auto slash = p.rfind('/');
    return slash == std::string::npos ? std::string() : p.substr(0, slash);
}

Entry make(uint32_t type, const std::string& handle, uint64_t size = 0) {
    Entry e;
    e.mode = type | (type == S_IFDIR ? 0755 : 0644);
    e.handle = FileHandle::from_key(handle);
    e.size = size;
    e.mtime_ns = static_cast<int64_t>(size) * 1000;
    if (type == S_IFLNK) e.link_target = fmt::format("target-{}", size);
    return e;
}

void move_subtree(Tree& t, const std::string& from, const std::string& to) {
    Tree moved;
    moved[to] = t.at(from);
    auto [first, last] = subtree_range(t, from);
    for (auto it = first; it != last; ++it) moved[to + it->first.substr(from.size())] = it->second;
    t.erase(first, last);
    t.erase(from);
    t.merge(moved);
}

// The replica: path -> (type, object). Returns what went wrong, if anything.
struct Replica {
    std::map<std::string, std::pair<uint32_t, std::string>> names;

    explicit Replica(const Tree& t) {
        for (auto& [p, e] : t)
            if (!p.empty()) names[p] = {e.mode & S_IFMT, e.handle.empty() ? "name:" + p : e.handle.key()};
    }

    bool is_dir(const std::string& p) const {
        if (p.empty()) return true;
        auto it = names.find(p);
        return it != names.end() && it->second.first == S_IFDIR;
    }

    std::string apply(const Record& r) {
        auto has = [&](const std::string& p) { return names.count(p) > 0; };
        auto key = [](const journal::FileHandle& h) { return h.key(); };
        switch (r.op) {
            case Op::create:
            case Op::mkdir:
            case Op::symlink:
                if (has(r.path)) return "made over an existing entry";
                if (!is_dir(parent_of(r.path))) return "made in a missing directory";
                names[r.path] = {*r.mode & S_IFMT, r.handle.empty() ? "name:" + r.path : key(r.handle)};
                return {};
            case Op::link:
                if (!has(r.path) || is_dir(r.path)) return "link of a missing file or a directory";
                if (has(r.target)) return "link onto an existing entry";
                if (!is_dir(parent_of(r.target))) return "link into a missing directory";
                names[r.target] = names[r.path];
                return {};
            case Op::unlink:
                if (!has(r.path)) return "unlink of a missing entry";
                if (is_dir(r.path)) return "unlink of a directory";
                names.erase(r.path);
                return {};
            case Op::rmdir: {
                if (!is_dir(r.path)) return "rmdir of a missing directory or a file";
                auto [first, last] = subtree_range(names, r.path);
                if (first != last) return "rmdir of a directory with entries";
                names.erase(r.path);
                return {};
            }
            case Op::rename: {
                if (!has(r.path)) return "rename of a missing entry";
                if (has(r.target)) return "rename onto an existing entry";
                if (!is_dir(parent_of(r.target))) return "rename into a missing directory";
                if (strictly_beneath(r.target, r.path)) return "rename into itself";
                std::map<std::string, std::pair<uint32_t, std::string>> moved;
                moved[r.target] = names.at(r.path);
                auto [first, last] = subtree_range(names, r.path);
                for (auto it = first; it != last; ++it) moved[r.target + it->first.substr(r.path.size())] = it->second;
                names.erase(first, last);
                names.erase(r.path);
                names.merge(moved);
                return {};
            }
            case Op::exchange: {
                if (!has(r.path) || !has(r.target)) return "exchange with a missing entry";
                if (strictly_beneath(r.target, r.path) || strictly_beneath(r.path, r.target))
                    return "exchange with an entry beneath it";
                std::map<std::string, std::pair<uint32_t, std::string>> moved;
                for (auto& [from, to] : {std::pair{r.path, r.target}, std::pair{r.target, r.path}}) {
                    moved[to] = names.at(from);
                    auto [first, last] = subtree_range(names, from);
                    for (auto it = first; it != last; ++it) moved[to + it->first.substr(from.size())] = it->second;
                }
                for (auto& p : {r.path, r.target}) {
                    auto [first, last] = subtree_range(names, p);
                    names.erase(first, last);
                    names.erase(p);
                }
                names.merge(moved);
                return {};
            }
            default:
                if (!r.path.empty() && !has(r.path)) return "change of a missing entry";
                return {};
        }
    }
};

// Names grouped by object: equal for two trees that hold the same hard-link
// groups, whatever each object is called.
std::set<std::vector<std::string>> groups(const std::map<std::string, std::string>& object_of) {
    std::map<std::string, std::vector<std::string>> by;
    for (auto& [p, o] : object_of) by[o].push_back(p);
    std::set<std::vector<std::string>> out;
    for (auto& [o, v] : by) out.insert(v);
    return out;
}

// A tree of a few dozen entries, then `changes` random changes to it.
std::pair<Tree, Tree> random_trees(uint32_t seed, int changes) {
    std::mt19937 rng(seed);
    int next = 0;
    // Handle keys begin with the handle's 4-byte type.
    auto fresh_handle = [&] { return std::string(4, '\0') + fmt::format("h{}", next++); };
    Tree t;
    t[""] = make(S_IFDIR, std::string(4, '\0') + "root");
    auto paths_of = [&](bool dirs) {
        std::vector<std::string> v;
        for (auto& [p, e] : t)
            if (e.is_dir() == dirs && (!dirs || !p.empty())) v.push_back(p);
        return v;
    };
    auto dirs_with_root = [&] {
        auto v = paths_of(true);
        v.push_back("");
        return v;
    };
    auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
    auto name_in = [&](const std::string& dir) {
        // Names that sort inside a sibling directory's subtree range too.
        static const char* kStems[] = {"a", "b", "a.x", "a-b", "c"};
        for (;;) {
            auto n = fmt::format("{}{}", kStems[rng() % 5], rng() % 40);
            auto p = dir.empty() ? n : dir + "/" + n;
            if (!t.count(p)) return p;
        }
    };
    for (int i = 0; i < 40; ++i) {
        auto dir = pick(dirs_with_root());
        auto p = name_in(dir);
        t[p] = rng() % 3 == 0 ? make(S_IFDIR, fresh_handle()) : make(S_IFREG, fresh_handle(), rng() % 100);
        // Some entries' handles could not be read: they are known by name only.
        if (rng() % 10 == 0) t[p].handle = {};
    }
    Tree before = t;
    for (int i = 0; i < changes; ++i) {
        auto files = paths_of(false), dirs = paths_of(true);
        unsigned op = rng() % 10;
        if (op < 2 && !files.empty()) {  // a file moved, maybe over another
            auto from = pick(files);
            auto to = rng() % 3 == 0 ? pick(files) : name_in(pick(dirs_with_root()));
            if (from == to) continue;
            Entry e = t.at(from);
            t.erase(from);
            t[to] = e;
        } else if (op < 4 && !dirs.empty()) {  // a directory moved into another
            auto from = pick(dirs);
            auto into = pick(dirs_with_root());
            if (into == from || strictly_beneath(into, from)) continue;
            move_subtree(t, from, name_in(into));
        } else if (op < 5 && dirs.size() > 1) {  // two directories swapped
            auto a = pick(dirs), b = pick(dirs);
            if (a == b || strictly_beneath(a, b) || strictly_beneath(b, a)) continue;
            move_subtree(t, a, "swap-aside");
            move_subtree(t, b, a);
            move_subtree(t, "swap-aside", b);
        } else if (op < 6 && !dirs.empty()) {  // a tree removed
            auto d = pick(dirs);
            auto [first, last] = subtree_range(t, d);
            t.erase(first, last);
            t.erase(d);
        } else if (op < 7 && !files.empty()) {
            t.erase(pick(files));
        } else if (op < 8 && !files.empty()) {  // a second name
            auto from = pick(files);
            t[name_in(pick(dirs_with_root()))] = t.at(from);
        } else if (op < 9) {
            auto p = name_in(pick(dirs_with_root()));
            t[p] = rng() % 3 == 0 ? make(S_IFDIR, fresh_handle()) : make(S_IFREG, fresh_handle(), rng() % 100);
        } else if (!files.empty()) {  // a file replaced by a new one of its name, a symlink or a directory
            unsigned what = rng() % 3;
            t[pick(files)] = make(what == 0 ? S_IFREG : what == 1 ? S_IFLNK : S_IFDIR, fresh_handle(), rng() % 100);
        }
    }
    return {before, t};
}

TEST(TreeDiff, RandomChangesApplyInOrderAndGiveTheTreeAfter) {
    for (uint32_t seed = 1; seed <= 3000; ++seed) {
        auto [before, after] = random_trees(seed, 1 + static_cast<int>(seed % 12));
        auto records = diff_trees(before, after);
        Replica replica(before);
        std::string problem;
        for (auto& r : records) {
            problem = replica.apply(r);
            if (!problem.empty()) {
                problem = fmt::format("{} {} -> {}: {}", journal::op_name(r.op), r.path, r.target, problem);
                break;
            }
        }
        std::string listing;
        for (auto& r : records)
            listing += fmt::format("  {} '{}' '{}'\n", journal::op_name(r.op), r.path, r.target);
        ASSERT_EQ(problem, "") << "seed " << seed << ", records:\n" << listing;
        std::map<std::string, uint32_t> got_types, want_types;
        std::map<std::string, std::string> got_objects, want_objects;
        for (auto& [p, v] : replica.names) {
            got_types[p] = v.first;
            got_objects[p] = v.second;
        }
        for (auto& [p, e] : after) {
            if (p.empty()) continue;
            want_types[p] = e.mode & S_IFMT;
            want_objects[p] = e.handle.empty() ? "name:" + p : e.handle.key();
        }
        ASSERT_EQ(got_types, want_types) << "seed " << seed << ", records:\n" << listing;
        ASSERT_EQ(groups(got_objects), groups(want_objects)) << "seed " << seed << ", records:\n" << listing;
        // Nothing that stayed one object is made again, and nothing travels twice.
        std::set<std::string> kept;
        for (auto& [p, e] : before)
            if (!e.handle.empty()) kept.insert(e.handle.key());
        for (auto& r : records)
            if (r.op == Op::create || r.op == Op::mkdir) {
                EXPECT_FALSE(kept.count(r.handle.key())) << "seed " << seed << ": " << r.path << " made again";
            }
    }
}

// Two entries that swapped names while no agent ran (a directory and a
// fifo here, as renameat2's exchange leaves them) are journaled as one
// exchange. Three renames through a temporary name reach the same tree,
// but a server killed after applying them replays them after its restart,
// and replayed they swap the two back; a replayed exchange is recognised
// as done.
TEST(TreeDiff, TwoEntriesThatSwappedNamesAreOneExchange) {
    Tree before;
    before[""] = make(S_IFDIR, std::string(4, '\0') + "root");
    before["d"] = make(S_IFDIR, std::string(4, '\0') + "dir");
    before["d/inside"] = make(S_IFREG, std::string(4, '\0') + "inside", 10);
    before["p"] = make(S_IFIFO, std::string(4, '\0') + "fifo");
    before["f"] = make(S_IFREG, std::string(4, '\0') + "f", 20);
    before["g"] = make(S_IFREG, std::string(4, '\0') + "g", 30);
    Tree after = before;
    after.erase("d/inside");
    after["p"] = before.at("d");
    after["p/inside"] = before.at("d/inside");
    after["d"] = before.at("p");
    after["f"] = before.at("g");
    after["g"] = before.at("f");

    auto records = diff_trees(before, after);
    std::string listing;
    for (auto& r : records) listing += fmt::format("{} '{}' '{}'\n", journal::op_name(r.op), r.path, r.target);
    EXPECT_EQ(listing, "exchange 'p' 'd'\nexchange 'g' 'f'\n");
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[0].handle.bytes, "fifo");  // what the record's path holds before it
    EXPECT_EQ(records[0].replaced_handle.bytes, "dir");
}

// 100,000 entries: a baseline (everything new), and the top directory
// renamed (one record, the whole subtree moving with it), each in a few
// seconds at most.
TEST(TreeDiff, ALargeTreeMovedIsOneRename) {
    Tree before;
    before[""] = make(S_IFDIR, std::string(4, '\0') + "root");
    before["top"] = make(S_IFDIR, std::string(4, '\0') + "top");
    int n = 0;
    for (int d = 0; d < 100; ++d) {
        auto dir = fmt::format("top/d{}", d);
        before[dir] = make(S_IFDIR, std::string(4, '\0') + dir);
        for (int f = 0; f < 1000; ++f)
            before[fmt::format("{}/f{}", dir, f)] = make(S_IFREG, std::string(4, '\0') + fmt::format("h{}", n++), 10);
    }
    Tree after;
    for (auto& [p, e] : before) after[strictly_beneath(p, "top") || p == "top" ? "moved" + p.substr(3) : p] = e;

    auto started = std::chrono::steady_clock::now();
    auto baseline = diff_trees(Tree{}, before);
    auto moved = diff_trees(before, after);
    auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(baseline.size(), size_t{101 + 3 * 100'000});  // directories; files with content and times
    ASSERT_EQ(moved.size(), 1u);
    EXPECT_EQ(moved[0].op, Op::rename);
    EXPECT_EQ(moved[0].path, "top");
    EXPECT_EQ(moved[0].target, "moved");
    EXPECT_LT(took, std::chrono::seconds(10));
}

}  // namespace
}  // namespace iz::agent
