// Capture: creations, links and deletions, including entries read only after
// they moved and directories moved in with contents, and the subtrees that
// renames (capture_rename.cpp) move and forget.
#include "agent/capture.hpp"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "capture_detail.hpp"
#include "common/at_path.hpp"
#include "common/path_tree.hpp"
#include "common/unique_fd.hpp"

namespace iz::agent {

using journal::Op;
using journal::Record;
using namespace capture_detail;

void Capture::on_create(const std::string& path, bool is_dir, int32_t pid, const FileHandle& handle, bool moved_in) {
    settle_deferred_delete(path);
    // The event carries the new entry's handle: only lstat is left to do. A
    // new entry has no xattrs yet (setting one is an event of its own); one
    // moved in from elsewhere brings its own.
    unsigned parts = moved_in ? kReadAll : handle.empty() ? kReadHandle : kReadStat;
    // Except where the parent has a default ACL: the kernel gives the new
    // entry an ACL of its own then, without an event.
    if (parent_has_default_acl(path)) parts |= kReadXattrs;
    // An attribute event merged into this one reads them anyway.
    if (event_has_attrib_) parts |= kReadXattrs;
    auto e = read_current(path, parts);
    if (!e) {
        if (e.error().sys_errno != ENOENT && e.error().sys_errno != ENOTDIR) spdlog::warn("{}", e.error().message);
        if (!tree_.count(path)) journal_vanished_creation(path, is_dir, pid, handle);
        return;
    }
    // The name may hold another object by now: the one created was renamed
    // (with RENAME_WHITEOUT a whiteout took its name) or exchanged before
    // this event was read, and another entry took the name. Read as if it
    // were the object created, a symlink could stand where the source has
    // a file or directory, and the rename or exchange that follows would
    // move the wrong object on the replica. The event's handle says which
    // object was created: on ext4 and XFS it holds the inode number, which
    // the lstat above gave for free; elsewhere the handle at the name is
    // asked for. The object created is then known from its event only,
    // until its rename says where it went.
    if (!handle.empty()) {
        bool other = e->is_dir() != is_dir;
        if (!other) {
            if (auto ino = inode_of_handle(handle)) {
                other = *ino != e->ino;
            } else {
                AtPath at(root_fd_, path);  // deeper than PATH_MAX too
                other = at.ok() && handle_of(at.dir(), at.name()).value_or(handle) != handle;
            }
        }
        if (other) {
            if (!tree_.count(path)) journal_vanished_creation(path, is_dir, pid, handle);
            return;
        }
    }
    // This name may be a link to an object whose first name is already gone
    // from our view (fanotify merges a create and a later delete of one
    // name into the first event), with xattrs and content of its own: read
    // and journal them as for an entry moved in. Such an object's handle
    // was known before, or it has other names (maybe outside the watched
    // tree), or its ctime moved past its mtime (a file made by
    // open(O_CREAT) has changed only by writes, which move both).
    bool not_fresh = !e->is_dir() && (e->ctime_ns != e->mtime_ns || e->nlink > 1 ||
                                      departed_.count(handle_hash(handle.empty() ? e->handle : handle)));
    if (!(parts & kReadXattrs) && not_fresh) {
        // Only a read that succeeded says what the xattrs are: moved away
        // since the first read, the entry's xattrs stay unknown here, not
        // "none" (which journaled their removal).
        if (auto full = read_current(path, parts | kReadXattrs); full) {
            e = std::move(full);
            parts |= kReadXattrs;
        }
    }
    auto other = tracked_elsewhere(handle.empty() ? e->handle : handle, path, e->nlink > 1 ? e->ino : 0);
    if (other && !handle.empty() && !is_dir) {
        // A second name is journaled as a link to the name the tree knows
        // for the handle; that is only right if the path still holds the
        // object the event created (a later rename may have put another
        // file there).
        AtPath at(root_fd_, path);  // deeper than PATH_MAX too
        Result<FileHandle> now = fail(sys_error("name_to_handle_at", path, at.error()));
        if (at.ok()) now = handle_of(at.dir(), at.name());
        if (now && *now != handle) {
            if (!tree_.count(path)) journal_vanished_creation(path, is_dir, pid, handle);
            return;
        }
    }
    if (!handle.empty()) e->handle = handle;
    if (tree_.count(path) && tree_[path].ino == e->ino) return;  // known (a rescan got there first)
    // A directory known under another name was read by a scan where a move
    // still queued puts it (a moved-in directory is read as it is now,
    // ahead of the events): that name stands, and the move finds it there.
    if (other && e->is_dir()) return;
    // The tree has another file at this name (one a rename read late
    // replaced, or an exchange took away): it goes first. A creation over a
    // file the replica made itself reads there as a replay of that file's
    // own creation, and would keep that file, its xattrs and its other
    // names. (Other types are replaced where they are made.)
    if (auto old = tree_.find(path); old != tree_.end() && old->second.is_reg() && e->is_reg() &&
                                     !old->second.handle.empty() && old->second.handle != e->handle)
        on_delete(path, false, pid);
    Record r;
    // What has been journaled of the object so far: a link carries what its
    // first name had, and only changes since then are journaled after it
    // (attributes belong to the inode, not to the name).
    Entry before{.mode = e->mode, .uid = e->uid, .gid = e->gid, .mtime_ns = e->mtime_ns};
    // Any other object known under another name got this one by link(),
    // even if the link count says 1 by now (the first name may be gone
    // already, its unlink still queued). Had a scan read it ahead of a
    // queued move instead, the link is still right: that rename then finds
    // both names on one inode and only drops the old one.
    if (other && !tree_.at(*other).is_dir()) {
        r = link_record(*other, path, e->handle);
        before = tree_.at(*other);
        if (!(parts & kReadXattrs)) e->xattrs = before.xattrs;  // not read here: unchanged as far as we know
    } else {
        r = creation_record(path, *e);
    }
    bool dir = e->is_dir();
    bool linked = r.op == Op::link;
    track(path, *e);
    share_attributes(path, (parts & kReadXattrs) != 0);
    emit(std::move(r), pid);
    for (auto& x : attribute_records(path, before, *e)) emit(std::move(x), pid);
    // A fresh file with content and no write in its event: its writes came
    // before its name (an O_TMPFILE linked in: ctime and mtime may still be
    // one coarse tick), or their events are still queued. Its content is
    // journaled, coalesced with any write that follows.
    bool written_before_named = !moved_in && !not_fresh && !linked && !event_has_modify_;
    if ((moved_in || (not_fresh && !linked) || written_before_named) && e->is_reg() && e->size > 0) {
        if ((event_has_modify_ && !moved_in) || written_before_named) {
            // Written too (`cp -a` sets the times before its events are
            // read): the write that follows in this event is journaled
            // as the whole file, once, instead of content and then ranges.
            // A fresh file, though, was born while eBPF watched (one made
            // before is read by the start's scan first): every byte it
            // holds was written under a range tracepoint, whether its
            // create event came merged with its writes' or, read before
            // the agent caught up, apart from them. Its ranges say all of
            // it then, and the flush falls back to the whole file when
            // they cannot be trusted. Whole here, it was journaled whole
            // whenever the agent lagged.
            auto& pw = pending_[path];
            pw.since = Clock::now();
            pw.pid = pid;
            pw.whole = !(written_before_named && bpf_ranges_);
        } else {
            emit_whole_content(path, *e, pid);
        }
    }
    // A directory made here gets an event for every entry made in it; one
    // moved in from elsewhere arrives with contents that have none.
    if (dir && moved_in) adopt_subtree(path, pid);
}

// The whole content journaled covers every range written to the file so
// far: eBPF ranges still waiting for a fanotify event (writes made under an
// excluded name, then moved in) would otherwise become a second write of
// the file when they are found unclaimed.
void Capture::emit_whole_content(const std::string& path, const Entry& e, int32_t pid) {
    dirt_.erase(e.ino);
    emit(whole_content_record(path, e), pid);
}

// A temporary file can be created and deleted before its create event is
// read. Its existence is still journaled (type from the event, no
// attributes: there is nothing left to read), so the trail is complete; its
// delete event follows and finds it. ino 0 marks such an entry.
void Capture::journal_vanished_creation(const std::string& path, bool is_dir, int32_t pid, const FileHandle& handle) {
    if (auto other = tracked_elsewhere(handle, path, 0)) {
        // Known already, read by a scan where a queued move puts it (a
        // directory: that name stands), or a second name of a known file.
        if (is_dir || tree_.at(*other).is_dir()) return;
        // Or a file a scan read ahead at a later name (an exchange or
        // rename still queued put it there): its creation is journaled
        // there already. A second name would have left two links, unless
        // it is gone again, and then there is nothing to journal for it
        // either. Journaled as a link, the object kept this name on the
        // replica too, and its removal later took only one of the two.
        if (read_ahead_at(*other, handle)) {
            spdlog::debug("{}: not journaled, a scan read the object ahead at {}", path, *other);
            return;
        }
        Entry known = tree_.at(*other);
        track(path, known);
        emit(link_record(*other, path, handle), pid);
        return;
    }
    if (!is_dir && !handle.empty() && settled_deletes_.count(handle)) {
        spdlog::debug("{}: not journaled, its delete was carried out already", path);
        return;
    }
    Entry ghost;
    ghost.mode = is_dir ? S_IFDIR : S_IFREG;
    ghost.handle = handle;
    Record r;
    r.op = is_dir ? Op::mkdir : Op::create;
    r.path = path;
    r.handle = handle;
    track(path, ghost);
    emit(std::move(r), pid);
}

// Whether `other` holds the object of `handle` now, and that object has
// one link: the tree's name for it is the only one it has.
bool Capture::read_ahead_at(const std::string& other, const FileHandle& handle) {
    if (handle.empty()) return false;
    auto e = read_entry_by_handle(root_fd_, handle, other);
    if (!e || e->nlink != 1) return false;
    AtPath at(root_fd_, other);  // deeper than PATH_MAX too
    if (!at.ok()) return false;
    auto now = handle_of(at.dir(), at.name(), other);
    return now && *now == handle;
}

// An entry known only from its create event turned up again (renamed to a
// name we can read): journal what it really is.
void Capture::materialize(const std::string& path, int32_t pid) {
    auto it = tree_.find(path);
    if (it == tree_.end() || it->second.ino != 0) return;
    auto e = read_entry(root_fd_, path);
    // Moved on already (that rename still queued), maybe with another
    // object in its place (the whiteout its rename left, or what an
    // exchange brought): a file is read through its handle and journaled
    // here, where the events so far put it; its rename moves it on. A
    // directory waits for its rename, whose target is then scanned for
    // what the events did not say.
    const FileHandle& handle = it->second.handle;
    bool elsewhere = (!e && gone_from_path(e.error().sys_errno)) ||
                     (e && !handle.empty() && !e->handle.empty() && e->handle != handle);
    if (elsewhere) {
        if (it->second.is_dir() || handle.empty()) return;
        e = read_entry_by_handle(root_fd_, handle, path);
    }
    if (!e) return;
    Entry ghost = it->second;
    e->version = ghost.version;
    track(path, *e);
    // The create event says directory or not, nothing more: a symlink, a
    // device or a second name of a known file was journaled as a new empty
    // file. Replace that guess with what the entry is.
    std::optional<std::string> first_name;
    if (!e->is_dir()) {
        first_name = tracked_elsewhere(e->handle, path, e->nlink > 1 ? e->ino : 0);
        if (first_name && tree_.at(*first_name).is_dir()) first_name.reset();
    }
    if ((ghost.mode & S_IFMT) != (e->mode & S_IFMT) || first_name) {
        Record gone;
        gone.op = ghost.is_dir() ? Op::rmdir : Op::unlink;
        gone.path = path;
        gone.handle = ghost.handle;
        emit(std::move(gone), pid);
        if (first_name) {
            // Content is the first name's, and attributes as journaled for it.
            emit(link_record(*first_name, path, e->handle), pid);
            for (auto& r : attribute_records(path, tree_.at(*first_name), *e)) emit(std::move(r), pid);
            share_attributes(path, true);
            return;
        }
        emit(creation_record(path, *e), pid);
        ghost = Entry{.mode = e->mode, .uid = e->uid, .gid = e->gid, .mtime_ns = e->mtime_ns};
    }
    for (auto& r : attribute_records(path, ghost, *e)) emit(std::move(r), pid);
    if (e->is_reg() && e->size > 0) emit_whole_content(path, *e, pid);
    share_attributes(path, true);
    if (e->is_dir()) adopt_subtree(path, pid);
}

// Create events read after their directory was renamed name a path that
// no longer exists: those entries are ghosts until the rename is read, and
// then they can be read under the directory's new name.
void Capture::materialize_beneath(const std::string& dir, int32_t pid) {
    std::vector<std::string> ghosts;
    auto [first, last] = subtree_range(tree_, dir);
    for (auto it = first; it != last; ++it)
        if (it->second.ino == 0) ghosts.push_back(it->first);
    for (auto& path : ghosts) materialize(path, pid);  // parents first: map order
}

void Capture::adopt_subtree(const std::string& rel, int32_t pid) {
    Tree sub;
    auto excluded_fn = [this](const std::string& p) { return excluded(p); };
    AtPath at(root_fd_, rel);  // deeper than PATH_MAX too
    UniqueFd fd(at.ok() ? ::openat(at.dir(), at.name(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1);
    if (!fd.valid()) return;
    auto scanned = scan_tree(fd.get(), excluded_fn);
    fd.reset();
    if (!scanned) return;
    // A directory tracked elsewhere: its move is queued, and brings its
    // contents. Or a name the tree (and so the replica) has as another
    // object: the scan read it ahead of the events that take that object
    // away and bring this one there. What lies beneath it is not beneath
    // the object the records put at that name (journaled there, links into
    // it among them, the replica refused them beneath a file, and a
    // directory found there was known at a path it never reached).
    // Several: in key order a name beside a skipped one ("d c") comes
    // between it and what lies beneath it ("d/x").
    std::vector<std::string> skipped;
    auto is_skipped = [&](const std::string& p) {
        return std::any_of(skipped.begin(), skipped.end(), [&](const std::string& s) { return at_or_beneath(p, s); });
    };
    for (auto& [sub_path, e] : *scanned) {
        if (sub_path.empty()) continue;
        auto full = join(rel, sub_path);
        if (is_skipped(full)) continue;
        if (auto known = tree_.find(full); known != tree_.end()) {
            const Entry& k = known->second;
            bool same = !k.handle.empty() && !e.handle.empty() ? k.handle == e.handle : k.ino == 0 || k.ino == e.ino;
            if (!same && e.is_dir()) skipped.push_back(full);
            continue;
        }
        auto other = tracked_elsewhere(e.handle, full, e.nlink > 1 ? e.ino : 0);
        if (other && e.is_dir()) {
            skipped.push_back(full);
            continue;
        }
        if (other && !tree_.at(*other).is_dir()) {
            Entry first = tree_.at(*other);
            track(full, e);
            emit(link_record(*other, full, e.handle), pid);
            for (auto& x : attribute_records(full, first, e)) emit(std::move(x), pid);
            share_attributes(full, true);
            continue;
        }
        track(full, e);
        emit(creation_record(full, e), pid);
        // The creation carries mode, owner and mtime; xattrs follow.
        for (auto& x : attribute_records(full, Entry{.mode = e.mode, .uid = e.uid, .gid = e.gid, .mtime_ns = e.mtime_ns}, e))
            emit(std::move(x), pid);
        if (e.is_reg() && e.size > 0) emit_whole_content(full, e, pid);
    }
}

void Capture::forget_subtree(const std::string& rel) {
    auto forget = [&](Tree::iterator it) {
        pending_.erase(it->first);
        dirty_.erase(it->first);
        if (it->second.is_dir()) dirs_.erase(it->second.handle);
        return tree_.erase(it);
    };
    auto [first, last] = subtree_range(tree_, rel);
    for (auto it = first; it != last;) it = forget(it);
    if (auto self = tree_.find(rel); self != tree_.end()) forget(self);
}

void Capture::move_subtree(const std::string& from, const std::string& to) {
    // Every entry beneath a moved directory is re-keyed. Map nodes move with
    // their keys changed in place (no Entry copied or node reallocated), in
    // order, so each goes back in next to the one before; and the handle
    // indexes are pointed at the new names rather than grown with them.
    // (Renaming a directory of 22,000 files cost the agent 90 ms, mostly
    // malloc and free.)
    std::vector<Tree::node_type> moved;
    auto [first, last] = subtree_range(tree_, from);
    auto self = tree_.find(from);
    // `from` first, then what lies beneath it: the order they go back in.
    auto take = [&](Tree::iterator it) {
        auto node = tree_.extract(it);
        std::string old = std::move(node.key());
        node.key().reserve(to.size() + old.size() - from.size());
        node.key().assign(to).append(old, from.size());
        repoint(node.mapped(), old, node.key());
        moved.push_back(std::move(node));
    };
    if (self != tree_.end()) take(self);
    for (auto it = first; it != last;) take(it++);
    auto hint = tree_.lower_bound(to);
    for (auto& node : moved) {
        auto at = tree_.insert(hint, std::move(node));
        if (node) at->second = std::move(node.mapped());  // a name already there is replaced
        hint = std::next(at);
    }
    auto repath = [&](const std::string& p) { return at_or_beneath(p, from) ? to + p.substr(from.size()) : p; };
    std::unordered_map<std::string, PendingWrite> pending;
    for (auto& [p, pw] : pending_) pending[repath(p)] = pw;
    pending_ = std::move(pending);
    std::unordered_set<std::string> dirty;
    for (auto& p : dirty_) dirty.insert(repath(p));
    dirty_ = std::move(dirty);
    if (!deferred_deletes_.empty()) {
        deferred_paths_.clear();
        for (auto& d : deferred_deletes_) {
            d.path = repath(d.path);
            if (!d.done) deferred_paths_.insert(d.path);
        }
    }
}

void Capture::on_delete(const std::string& path, bool is_dir, int32_t pid) {
    auto it = tree_.find(path);
    if (it == tree_.end()) return;
    if (auto pw = pending_.find(path); pw != pending_.end()) {
        // The inode may live on under another name: what was written
        // through this one is journaled before the name goes.
        auto pending = pw->second;
        pending_.erase(pw);
        flush_write(path, pending);
        it = tree_.find(path);
        if (it == tree_.end()) return;
    }
    if (!it->second.is_dir() && !it->second.handle.empty()) {
        if (departed_.size() > 65536) departed_.clear();
        departed_.insert(handle_hash(it->second.handle));
    }
    // rmdir(2) removes only an empty directory, but one moved out of the
    // tree, or into a directory the tree has not placed yet (see dir_path;
    // its move reads it with what it holds then), leaves with its entries.
    // The replica removes nothing recursively (entries it finds in a
    // directory removed are kept aside as its own), so what the tree has
    // beneath the name goes first, deepest first (in reverse key order a
    // path comes before every prefix of it).
    std::vector<Record> beneath;
    if (it->second.is_dir()) {
        auto [first, last] = subtree_range(tree_, path);
        for (auto b = std::make_reverse_iterator(last); b != std::make_reverse_iterator(first); ++b) {
            Record x;
            x.op = b->second.is_dir() ? Op::rmdir : Op::unlink;
            x.path = b->first;
            x.handle = b->second.handle;
            if (!b->second.is_dir() && !b->second.handle.empty()) departed_.insert(handle_hash(b->second.handle));
            beneath.push_back(std::move(x));
        }
    }
    Record r;
    r.op = is_dir || it->second.is_dir() ? Op::rmdir : Op::unlink;
    r.path = path;
    r.handle = it->second.handle;
    forget_subtree(path);
    for (auto& x : beneath) emit(std::move(x), pid);
    emit(std::move(r), pid);
}

}  // namespace iz::agent
