#include "agent/capture.hpp"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace iz::agent {

using journal::Op;
using journal::Record;

namespace {

std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

bool under(const std::string& path, const std::string& dir) {
    return dir.empty() || path == dir || (path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/');
}

// Opens a directory by its handle and asks the kernel where it is now.
std::optional<std::string> locate_by_handle(int mount_fd, const std::string& key) {
    if (key.size() < sizeof(int32_t)) return std::nullopt;
    union {
        file_handle fh;
        char buf[sizeof(file_handle) + MAX_HANDLE_SZ];
    } u{};
    std::memcpy(&u.fh.handle_type, key.data(), sizeof(int32_t));
    u.fh.handle_bytes = static_cast<unsigned>(key.size() - sizeof(int32_t));
    if (u.fh.handle_bytes > MAX_HANDLE_SZ) return std::nullopt;
    std::memcpy(u.fh.f_handle, key.data() + sizeof(int32_t), u.fh.handle_bytes);
    int fd = open_by_handle_at(mount_fd, &u.fh, O_PATH | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    char buf[PATH_MAX];
    ssize_t n = readlink(fmt::format("/proc/self/fd/{}", fd).c_str(), buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return std::nullopt;
    std::string path(buf, static_cast<size_t>(n));
    if (path.ends_with(" (deleted)")) return std::nullopt;
    return path;
}

}  // namespace

Capture::Capture(std::string root, int root_fd, std::vector<std::string> excludes, journal::Writer& writer,
                 bool ranges_from_bpf)
    : root_(std::move(root)), root_fd_(root_fd), excludes_(std::move(excludes)), writer_(writer), bpf_ranges_(ranges_from_bpf) {
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

bool Capture::excluded(const std::string& rel) const {
    if (rel.empty()) return false;
    auto base = rel.substr(rel.rfind('/') == std::string::npos ? 0 : rel.rfind('/') + 1);
    for (auto& glob : excludes_) {
        if (fnmatch(glob.c_str(), rel.c_str(), 0) == 0 || fnmatch(glob.c_str(), base.c_str(), 0) == 0) return true;
        // An excluded directory excludes what is beneath it.
        auto slash = rel.find('/');
        while (slash != std::string::npos) {
            if (fnmatch(glob.c_str(), rel.substr(0, slash).c_str(), 0) == 0) return true;
            slash = rel.find('/', slash + 1);
        }
    }
    return false;
}

void Capture::emit(Record r, int32_t pid) {
    if (pid > 0 && !r.pid) {
        auto& who = procs_.lookup(pid);
        r.pid = pid;
        if (!r.uid) r.uid = who.uid;
        if (!r.gid) r.gid = who.gid;
        if (r.comm.empty()) r.comm = who.comm;
    }
    if (!r.path.empty() || r.op == Op::setattr) {
        auto it = tree_.find(r.path);
        if (it != tree_.end()) r.version = ++it->second.version;
    }
    auto lsn = writer_.append(std::move(r));
    if (!lsn) {
        if (stats_.journal_errors++ == 0) spdlog::error("journal append failed: {}", lsn.error().message);
        return;
    }
    ++stats_.records;
}

void Capture::index_dir(const std::string& rel, const std::string& handle) {
    if (!handle.empty()) {
        dirs_[handle] = rel;
        outside_.erase(handle);
    }
}

Status Capture::catch_up(const Tree& persisted, const std::string& why) {
    auto fresh = scan_tree(root_fd_, [this](const std::string& rel) { return excluded(rel); });
    if (!fresh) return fail(fresh.error());
    auto records = diff_trees(persisted, *fresh);
    // Keep per-file versions across restarts.
    for (auto& [path, e] : *fresh) {
        auto it = persisted.find(path);
        if (it != persisted.end()) e.version = it->second.version;
    }
    tree_ = std::move(*fresh);
    dirs_.clear();
    for (auto& [path, e] : tree_)
        if (e.is_dir()) index_dir(path, e.handle);
    size_t n = records.size();
    for (auto& r : records) emit(std::move(r), 0);
    Record done;
    done.op = Op::rescan;
    done.message = fmt::format("{}: {} differences journaled", why, n);
    emit(std::move(done), 0);
    ++stats_.rescans;
    return {};
}

void Capture::rescan(const std::string& why) {
    flush_writes(true);
    Tree before = tree_;
    if (auto ok = catch_up(before, why); !ok) spdlog::error("rescan after {} failed: {}", why, ok.error().message);
}

std::optional<std::string> Capture::dir_path(const std::string& handle) {
    if (handle.empty()) return std::nullopt;
    if (auto it = dirs_.find(handle); it != dirs_.end()) return it->second;
    if (outside_.count(handle)) return std::nullopt;
    auto abs = locate_by_handle(root_fd_, handle);
    if (abs && (*abs == root_ || abs->starts_with(root_ + "/") || root_ == "/")) {
        std::string rel = *abs == root_ ? "" : abs->substr(root_ == "/" ? 1 : root_.size() + 1);
        if (!excluded(rel)) {
            dirs_[handle] = rel;
            return rel;
        }
    }
    if (outside_.size() > 100000) outside_.clear();
    outside_.insert(handle);
    return std::nullopt;
}

std::optional<std::string> Capture::event_path(const std::string& dir_handle, const std::string& name) {
    auto dir = dir_path(dir_handle);
    if (!dir) return std::nullopt;
    auto path = name.empty() ? *dir : join(*dir, name);
    if (excluded(path)) return std::nullopt;
    return path;
}

void Capture::on_event(const FanEvent& ev) {
    ++stats_.events;
    if (ev.mask & FAN_Q_OVERFLOW) {
        ++stats_.overflows;
        Record r;
        r.op = Op::overflow;
        r.message = "fanotify queue overflowed; rescanning";
        emit(std::move(r), 0);
        rescan("overflow");
        return;
    }
    if (ev.mask & FAN_RENAME) {
        on_rename(ev);
        return;
    }
    auto path = event_path(ev.dir_handle, ev.name);
    if (!path) {
        ++stats_.outside_events;
        return;
    }
    bool is_dir = ev.mask & FAN_ONDIR;
    if (ev.mask & FAN_CREATE) on_create(*path, is_dir, ev.pid, ev.object_handle);
    if (ev.mask & FAN_MODIFY) on_modify(*path, ev.pid);
    if (ev.mask & FAN_ATTRIB) on_attrib(*path, ev.pid);
    if (ev.mask & FAN_CLOSE_WRITE) on_close_write(*path, ev.pid);
    if (ev.mask & FAN_DELETE) on_delete(*path, is_dir, ev.pid);
}

void Capture::on_create(const std::string& path, bool is_dir, int32_t pid, const std::string& handle, bool moved_in) {
    // The event carries the new entry's handle: only lstat is left to do. A
    // new entry has no xattrs yet (setting one is an event of its own); one
    // moved in from elsewhere brings its own.
    unsigned parts = moved_in ? kReadAll : handle.empty() ? kReadHandle : kReadStat;
    auto e = read_entry(root_fd_, path, parts);
    if (!e) {
        if (e.error().sys_errno != ENOENT) spdlog::warn("{}", e.error().message);
        if (!tree_.count(path)) journal_vanished_creation(path, is_dir, pid, handle);
        return;
    }
    if (!handle.empty() && e->is_reg() && e->nlink > 1) {
        // A second name is journaled as a link to a name the tree knows by
        // inode; that is only right if the path still holds the object the
        // event created (a later rename may have put another file there).
        auto now = handle_key_of(root_fd_, path);
        if (now && *now != handle) {
            if (!tree_.count(path)) journal_vanished_creation(path, is_dir, pid, handle);
            return;
        }
    }
    if (!handle.empty()) e->handle = handle;
    if (tree_.count(path) && tree_[path].ino == e->ino) return;  // known (a rescan got there first)
    Record r;
    bool linked = false;
    if (e->is_reg() && e->nlink > 1) {
        // Same inode number, and the same handle where both are known:
        // a name the tree has not yet seen go may hold a reused number.
        auto other = names_by_ino_.find(tree_, e->ino, path, [&](const Entry& oe) {
            return oe.handle.empty() || e->handle.empty() || oe.handle == e->handle;
        });
        if (other) {
            r.op = Op::link;
            r.path = *other;
            r.target = path;
            r.handle = to_file_handle(e->handle);
            linked = true;
        }
    }
    if (!linked) r = creation_record(path, *e);
    bool dir = e->is_dir();
    tree_[path] = *e;
    if (e->is_reg()) names_by_ino_.remember(e->ino, path, tree_.size());
    if (dir) index_dir(path, e->handle);
    emit(std::move(r), pid);
    for (auto& x : attribute_records(path, Entry{.mode = e->mode, .uid = e->uid, .gid = e->gid, .mtime_ns = e->mtime_ns}, *e))
        emit(std::move(x), pid);
    // A second name of a file whose other names the tree does not know (a
    // link from outside, or a first name read only after a rename hid it):
    // its content was journaled under no name or one that goes, so it
    // travels with this one; a creation alone would leave the replica empty.
    bool content_elsewhere = e->is_reg() && e->nlink > 1 && !linked;
    if ((moved_in || content_elsewhere) && e->is_reg() && e->size > 0) {
        Record w;
        w.op = Op::write;  // no ranges: the whole file
        w.path = path;
        w.handle = to_file_handle(e->handle);
        w.size = e->size;
        w.mtime_ns = e->mtime_ns;
        emit(std::move(w), pid);
    }
    // A directory made here gets an event for every entry made in it; one
    // moved in from elsewhere arrives with contents that have none.
    if (dir && moved_in) adopt_subtree(path, pid);
}

// A temporary file can be created and deleted before its create event is
// read. Its existence is still journaled (type from the event, no
// attributes: there is nothing left to read), so the trail is complete; its
// delete event follows and finds it. ino 0 marks such an entry.
void Capture::journal_vanished_creation(const std::string& path, bool is_dir, int32_t pid, const std::string& handle) {
    Entry ghost;
    ghost.mode = is_dir ? S_IFDIR : S_IFREG;
    ghost.handle = handle;
    Record r;
    r.op = is_dir ? Op::mkdir : Op::create;
    r.path = path;
    r.handle = to_file_handle(handle);
    tree_[path] = ghost;
    if (is_dir) index_dir(path, handle);
    emit(std::move(r), pid);
}

// An entry known only from its create event turned up again (renamed to a
// name we can read): journal what it really is.
void Capture::materialize(const std::string& path, int32_t pid) {
    auto it = tree_.find(path);
    if (it == tree_.end() || it->second.ino != 0) return;
    auto e = read_entry(root_fd_, path);
    if (!e) return;
    Entry ghost = it->second;
    e->version = ghost.version;
    it->second = *e;
    if (e->is_dir()) index_dir(path, e->handle);
    // The create event says directory or not, nothing more: a symlink, a
    // device or a second name of a known file was journaled as a new empty
    // file. Replace that guess with what the entry is.
    std::optional<std::string> first_name;
    if (e->is_reg() && e->nlink > 1) first_name = names_by_ino_.find(tree_, e->ino, path, [](const Entry&) { return true; });
    if (e->is_reg()) names_by_ino_.remember(e->ino, path, tree_.size());
    if ((ghost.mode & S_IFMT) != (e->mode & S_IFMT) || first_name) {
        Record gone;
        gone.op = ghost.is_dir() ? Op::rmdir : Op::unlink;
        gone.path = path;
        gone.handle = to_file_handle(ghost.handle);
        emit(std::move(gone), pid);
        if (first_name) {
            Record l;
            l.op = Op::link;  // content and attributes are the first name's
            l.path = *first_name;
            l.target = path;
            l.handle = to_file_handle(e->handle);
            emit(std::move(l), pid);
            return;
        }
        emit(creation_record(path, *e), pid);
        ghost = Entry{.mode = e->mode, .uid = e->uid, .gid = e->gid, .mtime_ns = e->mtime_ns};
    }
    for (auto& r : attribute_records(path, ghost, *e)) emit(std::move(r), pid);
    if (e->is_reg() && e->size > 0) {
        Record w;
        w.op = Op::write;
        w.path = path;
        w.handle = to_file_handle(e->handle);
        w.size = e->size;
        w.mtime_ns = e->mtime_ns;
        emit(std::move(w), pid);
    }
    if (e->is_dir()) adopt_subtree(path, pid);
}

// Create events read after their directory was renamed name a path that
// no longer exists: those entries are ghosts until the rename is read, and
// then they can be read under the directory's new name.
void Capture::materialize_beneath(const std::string& dir, int32_t pid) {
    std::vector<std::string> ghosts;
    for (auto it = tree_.upper_bound(dir); it != tree_.end() && under(it->first, dir); ++it)
        if (it->second.ino == 0) ghosts.push_back(it->first);
    for (auto& path : ghosts) materialize(path, pid);  // parents first: map order
}

void Capture::adopt_subtree(const std::string& rel, int32_t pid) {
    Tree sub;
    auto excluded_fn = [this](const std::string& p) { return excluded(p); };
    int fd = ::openat(root_fd_, rel.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    auto scanned = scan_tree(fd, excluded_fn);
    ::close(fd);
    if (!scanned) return;
    for (auto& [sub_path, e] : *scanned) {
        if (sub_path.empty()) continue;
        auto full = join(rel, sub_path);
        if (tree_.count(full)) continue;
        tree_[full] = e;
        if (e.is_dir()) index_dir(full, e.handle);
        emit(creation_record(full, e), pid);
        if (e.is_reg() && e.size > 0) {
            Record w;
            w.op = Op::write;
            w.path = full;
            w.handle = to_file_handle(e.handle);
            w.size = e.size;
            emit(std::move(w), pid);
        }
    }
}

void Capture::forget_subtree(const std::string& rel) {
    for (auto it = tree_.lower_bound(rel); it != tree_.end() && under(it->first, rel);) {
        pending_.erase(it->first);
        dirty_.erase(it->first);
        if (it->second.is_dir()) dirs_.erase(it->second.handle);
        it = tree_.erase(it);
    }
}

void Capture::move_subtree(const std::string& from, const std::string& to) {
    std::vector<std::pair<std::string, Entry>> moved;
    for (auto it = tree_.lower_bound(from); it != tree_.end() && under(it->first, from);) {
        moved.emplace_back(to + it->first.substr(from.size()), std::move(it->second));
        it = tree_.erase(it);
    }
    for (auto& [path, e] : moved) {
        if (e.is_dir()) dirs_[e.handle] = path;
        tree_[path] = std::move(e);
    }
    auto repath = [&](const std::string& p) { return under(p, from) ? to + p.substr(from.size()) : p; };
    std::unordered_map<std::string, PendingWrite> pending;
    for (auto& [p, pw] : pending_) pending[repath(p)] = pw;
    pending_ = std::move(pending);
    std::unordered_set<std::string> dirty;
    for (auto& p : dirty_) dirty.insert(repath(p));
    dirty_ = std::move(dirty);
}

void Capture::on_delete(const std::string& path, bool is_dir, int32_t pid) {
    auto it = tree_.find(path);
    if (it == tree_.end()) return;
    if (pending_.count(path)) pending_.erase(path);
    Record r;
    r.op = is_dir || it->second.is_dir() ? Op::rmdir : Op::unlink;
    r.path = path;
    r.handle = to_file_handle(it->second.handle);
    forget_subtree(path);
    emit(std::move(r), pid);
}

void Capture::on_rename(const FanEvent& ev) {
    auto from = event_path(ev.dir_handle, ev.name);
    auto to = event_path(ev.new_dir_handle, ev.new_name);
    if (!from && !to) {
        ++stats_.outside_events;
        return;
    }
    if (from && !to) {  // moved out of the watched tree (or into an excluded name)
        on_delete(*from, false, ev.pid);
        return;
    }
    if (!from && to) {  // moved in from elsewhere: a creation with contents
        on_create(*to, ev.mask & FAN_ONDIR, ev.pid, ev.object_handle, true);
        return;
    }
    if (!tree_.count(*from)) {  // unknown source: treat the destination as new
        on_create(*to, ev.mask & FAN_ONDIR, ev.pid, ev.object_handle, true);
        return;
    }
    flush_writes(true);  // writes journaled under the old name stay in order
    Record r;
    r.op = Op::rename;
    r.path = *from;
    r.target = *to;
    r.handle = to_file_handle(tree_[*from].handle);
    if (auto replaced = tree_.find(*to); replaced != tree_.end()) {
        r.replaced = true;
        r.replaced_handle = to_file_handle(replaced->second.handle);
        forget_subtree(*to);
    }
    move_subtree(*from, *to);
    emit(std::move(r), ev.pid);
    materialize(*to, ev.pid);
    if (auto moved = tree_.find(*to); moved != tree_.end() && moved->second.is_dir()) materialize_beneath(*to, ev.pid);
}

void Capture::on_attrib(const std::string& path, int32_t pid) {
    auto it = tree_.find(path);
    if (it == tree_.end()) return;
    if (it->second.ino == 0) return materialize(path, pid);
    // An attribute event may be an xattr change: read them, but the handle is known.
    auto now = read_entry(root_fd_, path, kReadXattrs);
    // Moved away since the event (its rename is still queued): the change
    // still happened, to the object the handle names.
    if (!now && now.error().sys_errno == ENOENT && !it->second.handle.empty())
        now = read_entry_by_handle(root_fd_, it->second.handle, path);
    if (!now) return;
    now->handle = it->second.handle;
    Entry before = it->second;
    // A pending write owns the mtime it caused; compare attributes only.
    if (pending_.count(path)) before.mtime_ns = now->mtime_ns;
    auto records = attribute_records(path, before, *now);
    // A directory's mtime moves with every entry change and is not compared
    // there; an attribute event on the directory itself may be a utimes, so
    // its times travel with it.
    if (now->is_dir() && before.mtime_ns != now->mtime_ns &&
        std::none_of(records.begin(), records.end(), [](const Record& r) { return r.op == Op::setattr; })) {
        Entry unchanged = *now;
        unchanged.mode ^= 01;  // any difference makes attribute_records write the full setattr
        auto times = attribute_records(path, unchanged, *now);
        for (auto& r : times)
            if (r.op == Op::setattr) records.push_back(std::move(r));
    }
    now->version = it->second.version;
    if (pending_.count(path)) {
        now->size = it->second.size;
        now->mtime_ns = it->second.mtime_ns;
    }
    it->second = *now;
    for (auto& r : records) emit(std::move(r), pid);
}

void Capture::on_modify(const std::string& path, int32_t pid) {
    dirty_.insert(path);
    auto [it, fresh] = pending_.try_emplace(path);
    if (fresh) {
        it->second.since = std::chrono::steady_clock::now();
        it->second.pid = pid;
    }
}

void Capture::on_close_write(const std::string& path, int32_t pid) {
    if (auto it = pending_.find(path); it != pending_.end()) {
        auto pw = it->second;
        pending_.erase(it);
        flush_write(path, pw);
    }
    if (!dirty_.erase(path)) return;
    auto e = tree_.find(path);
    if (e == tree_.end()) return;
    Record r;
    r.op = Op::close_write;
    r.path = path;
    r.handle = to_file_handle(e->second.handle);
    if (e->second.ino != 0) {  // what it was when last read; unknown if never seen
        r.size = e->second.size;
        r.mtime_ns = e->second.mtime_ns;
    }
    emit(std::move(r), pid);
}

void Capture::on_dirty_range(const DirtyRangeEvent& ev) {
    if (ev.kind == DirtyKind::process_exit) {
        procs_.remember_exit(ev.pid, ProcessInfo{ev.comm, ev.uid, ev.gid});
        return;
    }
    auto& d = dirt_[ev.ino];
    if (d.pid == 0) {
        d.pid = ev.pid;
        d.who = ProcessInfo{ev.comm, ev.uid, ev.gid};
    }
    switch (ev.kind) {
        case DirtyKind::truncate:
            d.truncated_to = ev.offset;
            break;
        case DirtyKind::collapse_range:
        case DirtyKind::insert_range:
            // Everything after offset moved: dirty to whatever the end is at flush.
            d.ranges.push_back({ev.offset, UINT64_MAX - ev.offset});
            break;
        default:
            if (ev.length) d.ranges.push_back({ev.offset, ev.length});
            if (d.ranges.size() > 256) d.ranges = journal::coalesce(std::move(d.ranges));
            break;
    }
    if (dirt_.size() > 65536) dirt_.clear();  // inodes we never hear of from fanotify
}

void Capture::on_dirty_ranges_lost() {
    dirt_.clear();
    distrust_ranges_until_ = Clock::now() + 2 * kCoalesceWindow + std::chrono::milliseconds(500);
}

void Capture::flush_write(const std::string& path, const PendingWrite& pw) {
    auto it = tree_.find(path);
    if (it == tree_.end()) return;
    auto now = read_entry(root_fd_, path, kReadStat);
    if (!now) {
        // Written, then gone before we looked: the write still happened.
        // Its ranges are unknown here (the inode is), and its unlink or
        // rename follows. Until then what we knew of the file is stale (a
        // close_write must not claim its old size), so it is known by name
        // only, and read again where a rename says it went.
        Record w;
        w.op = Op::write;
        w.path = path;
        w.handle = to_file_handle(it->second.handle);
        emit(std::move(w), pw.pid);
        it->second.ino = 0;
        return;
    }
    now->handle = it->second.handle;
    now->xattrs = it->second.xattrs;
    InodeDirt dirt;
    if (auto d = dirt_.find(now->ino); d != dirt_.end()) {
        dirt = std::move(d->second);
        dirt_.erase(d);
    }
    auto stamp = [&](Record& r) {
        if (dirt.pid) {
            r.pid = dirt.pid;
            r.uid = dirt.who.uid;
            r.gid = dirt.who.gid;
            r.comm = dirt.who.comm;
        }
    };
    uint64_t old_size = it->second.size;
    // Ranges are trusted only when no eBPF event can have been lost since
    // this write began; after a ring-buffer drop the file is wholly dirty.
    bool ranges_trusted = bpf_ranges_ && Clock::now() >= distrust_ranges_until_;
    if (dirt.truncated_to || (!ranges_trusted && now->size < old_size)) {
        Record t;
        t.op = Op::truncate;
        t.path = path;
        t.handle = to_file_handle(now->handle);
        // ext4's tracepoint does not carry the new size: the file has it.
        t.size = dirt.truncated_to && *dirt.truncated_to != UINT64_MAX ? *dirt.truncated_to : now->size;
        stamp(t);
        emit(std::move(t), pw.pid);
    }
    Record w;
    w.op = Op::write;
    w.path = path;
    w.handle = to_file_handle(now->handle);
    w.size = now->size;
    w.mtime_ns = now->mtime_ns;
    // Without exact ranges the record says "whole file" (no ranges).
    if (ranges_trusted && !dirt.ranges.empty()) {
        // Bytes past the current end no longer exist: a later truncate cut them.
        uint64_t end = now->size;
        for (auto& r : dirt.ranges)
            if (r.length > end - std::min(r.offset, end)) r.length = end - std::min(r.offset, end);
        std::erase_if(dirt.ranges, [](const journal::ByteRange& r) { return r.length == 0; });
        w.ranges = journal::coalesce(std::move(dirt.ranges));
    }
    stamp(w);
    bool only_truncated = ranges_trusted && dirt.truncated_to && w.ranges.empty();
    // This read is fresher than attribute events still queued (a chmod
    // during the write), which will then find nothing changed: whatever
    // changed besides the write's own mtime is journaled here.
    Entry before = it->second;
    before.mtime_ns = now->mtime_ns;
    auto attrs = attribute_records(path, before, *now);
    now->version = it->second.version;
    it->second = *now;
    if (!only_truncated) emit(std::move(w), pw.pid);
    for (auto& a : attrs) emit(std::move(a), pw.pid);
}

void Capture::flush_writes(bool all) {
    auto now = std::chrono::steady_clock::now();
    std::vector<std::pair<std::string, PendingWrite>> due;
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (all || now - it->second.since >= kCoalesceWindow) {
            due.emplace_back(it->first, it->second);
            it = pending_.erase(it);
        } else {
            ++it;
        }
    }
    for (auto& [path, pw] : due) flush_write(path, pw);
}

std::optional<std::chrono::milliseconds> Capture::next_flush_in() const {
    if (pending_.empty()) return std::nullopt;
    auto oldest = std::chrono::steady_clock::time_point::max();
    for (auto& [p, pw] : pending_) oldest = std::min(oldest, pw.since);
    auto due = oldest + kCoalesceWindow - std::chrono::steady_clock::now();
    return std::max(std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(due) + std::chrono::milliseconds(1));
}

}  // namespace iz::agent
