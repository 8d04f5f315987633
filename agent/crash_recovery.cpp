#include "agent/crash_recovery.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <unordered_map>

#include "common/at_path.hpp"
#include "common/path_tree.hpp"
#include "journal/reader.hpp"

namespace iz::agent {

using journal::Op;
using journal::Record;

namespace {

// The tree as records change it. Attributes and content belong to the
// object, so a change through one name is seen by every name of it (a
// handle -> names index, checked against the tree on use).
// The ranges cover every byte of a file of `size` bytes.
bool covers(const std::vector<journal::ByteRange>& ranges, uint64_t size) {
    uint64_t end = 0;
    for (auto& r : journal::coalesce(ranges)) {
        if (r.offset > end) return false;
        end = std::max(end, r.offset + r.length);
    }
    return end >= size;
}

class Replay {
public:
    explicit Replay(Tree& tree) : tree_(tree) {
        for (auto& [path, e] : tree_)
            if (!e.is_dir() && !e.handle.empty()) names_.emplace(e.handle, path);
    }

    bool apply(const Record& r) {
        switch (r.op) {
            case Op::create:
            case Op::mkdir:
            case Op::symlink:
            case Op::mknod: return make(r);
            case Op::link: return link(r);
            case Op::unlink: {
                // A replica refuses to unlink a directory.
                auto it = tree_.find(r.path);
                if (it == tree_.end() || it->second.is_dir()) return false;
                tree_.erase(it);
                return true;
            }
            case Op::rmdir: {
                // Nor does it rmdir what is not a directory.
                auto it = tree_.find(r.path);
                if (it == tree_.end() || !it->second.is_dir()) return false;
                return erase_subtree(r.path);
            }
            case Op::rename: return rename(r);
            case Op::exchange: return exchange(r);
            case Op::setattr:
            case Op::setxattr:
            case Op::removexattr:
            case Op::write:
            case Op::truncate: return change(r);
            case Op::conflict: return kept_aside(r);
            default: return false;  // agent events, close_write, the server's conflicts
        }
    }

private:
    bool erase_subtree(const std::string& path) {
        auto [first, last] = subtree_range(tree_, path);
        tree_.erase(first, last);
        return tree_.erase(path) > 0;
    }

    void name(const std::string& path, const Entry& e) {
        if (!e.is_dir() && !e.handle.empty()) names_.emplace(e.handle, path);
    }

    bool make(const Record& r) {
        Entry e;
        uint32_t type = r.op == Op::mkdir ? S_IFDIR : r.op == Op::symlink ? S_IFLNK : S_IFREG;
        e.mode = r.mode.value_or(type | (r.op == Op::mkdir ? 0755 : 0644));
        if ((e.mode & S_IFMT) == 0) e.mode |= type;
        e.uid = r.owner_uid.value_or(0);
        e.gid = r.owner_gid.value_or(0);
        // A replica makes a file empty: its content comes with writes. The
        // size the source had when the creation was read (written already)
        // is content the replica does not have until a write says so.
        e.size = 0;
        // Made without attributes (gone before it was read): what it holds
        // is not known.
        e.mtime_ns = r.mtime_ns.value_or(kUnknownMtime);
        e.rdev = r.rdev.value_or(0);
        e.handle = r.handle;
        e.version = r.version;
        if (r.op == Op::symlink) e.link_target = r.target;
        // Made over something of another kind: the replica makes room.
        if (auto it = tree_.find(r.path); it != tree_.end() && (it->second.mode & S_IFMT) != (e.mode & S_IFMT))
            erase_subtree(r.path);
        name(r.path, e);
        tree_[r.path] = std::move(e);
        return true;
    }

    // Receive-only: the receiver kept the local version of `path` aside
    // as `target` (receiver.hpp); the record says the copy as made. Only
    // this agent's (no origin), and only with the copy's handle: a
    // server's conflict record is a note, its copy made by the records
    // after it.
    bool kept_aside(const Record& r) {
        if (!r.origin.empty() || r.target.empty() || r.handle.empty() || !r.mode) return false;
        Entry e;
        e.mode = *r.mode;
        e.uid = r.owner_uid.value_or(0);
        e.gid = r.owner_gid.value_or(0);
        e.size = r.size.value_or(0);
        e.mtime_ns = r.mtime_ns.value_or(kUnknownMtime);
        e.handle = r.handle;
        if (e.is_symlink())
            if (auto it = tree_.find(r.path); it != tree_.end() && it->second.is_symlink())
                e.link_target = it->second.link_target;
        if (tree_.count(r.target)) erase_subtree(r.target);
        name(r.target, e);
        tree_[r.target] = std::move(e);
        return true;
    }

    bool link(const Record& r) {
        auto from = tree_.find(r.path);
        if (from == tree_.end() || from->second.is_dir()) return false;
        Entry e = from->second;
        if (!r.handle.empty()) e.handle = r.handle;
        if (tree_.count(r.target)) erase_subtree(r.target);
        name(r.target, e);
        tree_[r.target] = std::move(e);
        return true;
    }

    // As a replica applies it: both names swap what lies beneath them; with
    // only `path` there it moves to `target`; with only `target` there the
    // exchange was applied already and nothing changes.
    bool exchange(const Record& r) {
        if (r.path == r.target || strictly_beneath(r.target, r.path) || strictly_beneath(r.path, r.target)) return false;
        bool has_path = tree_.count(r.path) > 0, has_target = tree_.count(r.target) > 0;
        if (!has_path) return false;
        if (!has_target) return rename(r);
        // Neither is beneath the other: what the first take leaves behind
        // is not what the second reads.
        Tree moved;
        take(moved, r.path, r.target);
        take(moved, r.target, r.path);
        return settle(r, moved);
    }

    bool rename(const Record& r) {
        if (r.path == r.target || strictly_beneath(r.target, r.path)) return false;
        if (!tree_.count(r.path)) return false;
        Tree moved;
        take(moved, r.path, r.target);
        return settle(r, moved);
    }

    // Moves the entry at `from` and all beneath it into `moved`, under `to`.
    void take(Tree& moved, const std::string& from, const std::string& to) {
        moved[to] = std::move(tree_.at(from));
        auto [first, last] = subtree_range(tree_, from);
        for (auto it = first; it != last; ++it) moved[to + it->first.substr(from.size())] = std::move(it->second);
    }

    // Both names of `r` and all beneath them give way to what was taken.
    bool settle(const Record& r, Tree& moved) {
        erase_subtree(r.path);
        erase_subtree(r.target);
        for (auto& [path, e] : moved) name(path, e);
        tree_.merge(moved);
        return true;
    }

    bool change(const Record& r) {
        // Applied from a server (receiver.hpp): the whole content, as a new
        // file at that name, whether or not one was there; its record has
        // no create before it, but the object's handle.
        if (r.op == Op::write && !r.origin.empty() && !r.handle.empty()) {
            auto at = tree_.find(r.path);
            if (at != tree_.end() && at->second.is_dir()) return false;
            if (at == tree_.end()) {
                Entry e;
                e.mode = S_IFREG | (r.mode.value_or(0644) & 07777);
                e.uid = r.owner_uid.value_or(0);
                e.gid = r.owner_gid.value_or(0);
                e.mtime_ns = kUnknownMtime;
                at = tree_.emplace(r.path, std::move(e)).first;
            }
            at->second.handle = r.handle;
            name(r.path, at->second);
        }
        auto it = tree_.find(r.path);
        if (it == tree_.end()) return false;
        auto update = [&](Entry& e) {
            switch (r.op) {
                case Op::setattr:
                    if (r.mode) e.mode = (e.mode & S_IFMT) | (*r.mode & 07777);
                    if (r.owner_uid) e.uid = *r.owner_uid;
                    if (r.owner_gid) e.gid = *r.owner_gid;
                    if (r.mtime_ns && e.mtime_ns != kUnknownMtime) e.mtime_ns = *r.mtime_ns;
                    if (r.atime_ns) e.atime_ns = *r.atime_ns;
                    break;
                case Op::setxattr: e.xattrs[r.xattr_name] = r.xattr_value; break;
                case Op::removexattr: e.xattrs.erase(r.xattr_name); break;
                case Op::write:
                    // The whole file, or ranges over content known before or
                    // covering all of it: the replica has what the file had.
                    if (r.size && r.mtime_ns && (r.ranges.empty() || covers(r.ranges, *r.size))) {
                        e.size = *r.size;
                        e.mtime_ns = *r.mtime_ns;
                    } else if (r.size && r.mtime_ns && e.mtime_ns != kUnknownMtime) {
                        e.size = *r.size;
                        e.mtime_ns = *r.mtime_ns;
                    } else {
                        e.mtime_ns = kUnknownMtime;
                    }
                    break;
                case Op::truncate:
                    if (r.size) e.size = *r.size;
                    break;
                default: break;
            }
        };
        Entry& e = it->second;
        update(e);
        e.version = std::max(e.version, r.version);
        if (e.is_dir() || e.handle.empty()) return true;
        auto [lo, hi] = names_.equal_range(e.handle);
        for (auto n = lo; n != hi;) {
            auto other = tree_.find(n->second);
            if (other == tree_.end() || other->second.handle != e.handle || other->second.is_dir()) {
                n = names_.erase(n);
                continue;
            }
            if (n->second != r.path) update(other->second);
            ++n;
        }
        return true;
    }

    Tree& tree_;
    std::unordered_multimap<FileHandle, std::string> names_;
};

// Reads the journal from where `seek` places the reader, a record at a
// time by `step` (next or prev), until the end or until `visit` says stop.
template <class Seek, class Visit>
Status walk(const std::filesystem::path& journal_dir, Seek seek,
            Result<std::optional<Record>> (journal::Reader::*step)(), Visit visit) {
    auto reader = journal::Reader::open(journal_dir);
    if (!reader) return fail(reader.error());
    auto& r = **reader;
    if (auto ok = seek(r); !ok) return fail(ok.error());
    for (;;) {
        auto rec = (r.*step)();
        if (!rec) return fail(rec.error());
        if (!*rec || !visit(**rec)) return {};
    }
}

}  // namespace

Result<size_t> replay_journal(const std::filesystem::path& journal_dir, uint64_t after_lsn, Tree& tree) {
    Replay replay(tree);
    size_t changed = 0;
    bool first = true;
    auto seek = [&](journal::Reader& r) { return r.seek_lsn(after_lsn + 1); };
    auto walked = walk(journal_dir, seek, &journal::Reader::next, [&](const Record& x) {
        if (x.lsn <= after_lsn) return true;
        if (first && x.lsn > after_lsn + 1)
            spdlog::warn("the journal no longer holds LSNs {}..{} after the saved tree state: changes they made are "
                         "compared without them",
                         after_lsn + 1, x.lsn - 1);
        first = false;
        if (replay.apply(x)) ++changed;
        return true;
    });
    if (!walked) return fail(walked.error());
    return changed;
}

Result<std::optional<int64_t>> last_run_started(const std::filesystem::path& journal_dir) {
    std::optional<int64_t> started;
    auto seek = [](journal::Reader& r) { return r.seek_tail(); };
    auto walked = walk(journal_dir, seek, &journal::Reader::prev, [&](const Record& x) {
        if (x.op != Op::start) return true;
        started = x.time_ns;
        return false;
    });
    if (!walked) return fail(walked.error());
    return started;
}

Result<size_t> recover_unsaved_entries(const std::filesystem::path& journal_dir, int root_fd, Tree& persisted) {
    // path -> made a directory; read backwards to the last start.
    std::map<std::string, bool> made;
    bool first = true;
    bool stopped_cleanly = false;
    auto seek = [](journal::Reader& r) { return r.seek_tail(); };
    auto walked = walk(journal_dir, seek, &journal::Reader::prev, [&](const Record& x) {
        if (first && x.op == Op::stop) {
            stopped_cleanly = true;
            return false;
        }
        first = false;
        if (x.op == Op::start) return false;
        switch (x.op) {
            case Op::create:
            case Op::mknod:
            case Op::symlink: made.try_emplace(x.path, false); break;
            case Op::mkdir: made[x.path] = true; break;
            case Op::link:
            case Op::rename: made.try_emplace(x.target, false); break;
            case Op::exchange:
                made.try_emplace(x.path, false);
                made.try_emplace(x.target, false);
                break;
            default: break;
        }
        return true;
    });
    if (!walked) return fail(walked.error());
    if (stopped_cleanly) return size_t{0};  // the state is complete
    // Anything beneath a path makes it a directory.
    for (auto& [path, dir] : made)
        for (auto parent = path.rfind('/'); parent != std::string::npos; parent = path.rfind('/', parent - 1)) {
            if (auto it = made.find(path.substr(0, parent)); it != made.end()) it->second = true;
            if (parent == 0) break;
        }
    size_t added = 0;
    for (auto& [path, dir] : made) {
        if (persisted.count(path)) continue;
        struct stat st{};
        AtPath at(root_fd, path);  // deeper than PATH_MAX too
        if (!at.ok() ? at.error() != ENOENT : ::fstatat(at.dir(), at.name(), &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
            continue;
        Entry e;
        e.mode = dir ? (S_IFDIR | 0755) : (S_IFREG | 0644);
        persisted[path] = e;
        ++added;
    }
    return added;
}

Result<std::vector<std::string>> received_paths_after(const std::filesystem::path& journal_dir, uint64_t after_lsn) {
    std::vector<std::string> out;
    auto reader = journal::Reader::open(journal_dir);
    if (!reader) return fail(reader.error());
    if (auto ok = (*reader)->seek_lsn(after_lsn + 1); !ok) return fail(ok.error());
    for (;;) {
        auto next = (*reader)->next();
        if (!next) return fail(next.error());
        if (!*next) return out;
        auto& r = **next;
        if (r.origin.empty()) continue;
        out.push_back(r.path);
        if (!r.target.empty()) out.push_back(r.target);
    }
}

}  // namespace iz::agent
