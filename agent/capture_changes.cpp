// Capture: attribute, xattr and content changes: coalesced writes with their eBPF byte ranges, truncates and closes.
#include "agent/capture.hpp"

#include <algorithm>
#include <chrono>

#include "capture_detail.hpp"

namespace iz::agent {

using journal::Op;
using journal::Record;
using namespace capture_detail;

void Capture::on_attrib(const std::string& path, int32_t pid) {
    auto it = tree_.find(path);
    if (it == tree_.end()) return;
    if (it->second.ino == 0) return materialize(path, pid);
    // An attribute event may be an xattr change: read them, but the handle is known.
    auto now = read_current(path, kReadXattrs);
    // Moved away since the event (its rename is still queued), maybe with
    // another object moved to its name: the change still happened, to the
    // object the handle names. Its old path may run through a file now (a
    // directory on it exchanged with one): ENOTDIR says the same.
    bool moved = (!now && gone_from_path(now.error().sys_errno)) || (now && now->ino != it->second.ino);
    if (moved && !it->second.handle.empty()) now = read_entry_by_handle(root_fd_, it->second.handle, path);
    else if (moved) return;
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
    share_attributes(path, true);
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
    bool flushed = false;
    if (auto it = pending_.find(path); it != pending_.end()) {
        auto pw = it->second;
        pending_.erase(it);
        flush_write(path, pw);
        flushed = true;
    }
    // A modify event with no close of its own (truncate(2)) leaves the path
    // dirty after its write was flushed; a libaio write (a close and no
    // modify event) must still be looked for then, or its close would
    // claim the size the truncate left and the write would be lost.
    bool dirty = dirty_.erase(path) > 0;
    if (!flushed && flush_unreported_write(path, pid, dirty)) dirty = true;
    if (!dirty) return;
    auto e = tree_.find(path);
    if (e == tree_.end()) return;
    Record r;
    r.op = Op::close_write;
    r.path = path;
    r.handle = e->second.handle;
    if (e->second.ino != 0) {  // what it was when last read; unknown if never seen
        r.size = e->second.size;
        r.mtime_ns = e->second.mtime_ns;
    }
    emit(std::move(r), pid);
}

// Writes through libaio raise no modify event (io_uring's do): the close is
// all fanotify says. A file opened for writing and closed unwritten costs a
// stat here (shared with the event's other handlers).
bool Capture::flush_unreported_write(const std::string& path, int32_t pid, bool modified) {
    auto e = tree_.find(path);
    if (e == tree_.end() || e->second.ino == 0 || !e->second.is_reg()) return false;
    if (auto r = recent_ranges_.find(e->second.ino); r != recent_ranges_.end()) {
        // No modify event since the last close: a libaio write, whose range
        // an earlier flush may have taken while it was in flight.
        if (!modified && bpf_ranges_ && Clock::now() < r->second.until) {
            // With no range of its own since, a file whose size or mtime
            // moved after that flush read them was changed by what raised
            // no event: a store through a mapping into a page the write left
            // dirty (capture.bpf.c), which those ranges need not cover. Its
            // content is compared whole.
            bool unexplained = false;
            if (!dirt_.count(e->second.ino)) {
                auto now = read_current(path, kReadStat);
                unexplained = now && now->ino == e->second.ino &&
                              (now->size != e->second.size || now->mtime_ns != e->second.mtime_ns);
            }
            auto& d = dirt_[e->second.ino];
            d.ranges.insert(d.ranges.end(), r->second.ranges.begin(), r->second.ranges.end());
            if (unexplained) d.unexplained = true;
        }
        recent_ranges_.erase(r);
    }
    if (!bpf_ranges_ || !dirt_.count(e->second.ino)) {
        auto now = read_current(path, kReadStat);
        // Moved or gone since: the events that follow say where and what.
        if (!now || now->ino != e->second.ino) return false;
        if (now->size == e->second.size && now->mtime_ns == e->second.mtime_ns) return false;
    }
    flush_write(path, PendingWrite{.since = Clock::now(), .pid = pid});
    return true;
}

void Capture::expect_write_to_inode(uint64_t ino, int32_t pid) {
    std::optional<std::string> path;
    switch (find_inode(ino, path)) {
        case InodeLookup::found: break;
        case InodeLookup::absent: return;  // elsewhere on the filesystem, or not yet read
        case InodeLookup::later: unresolved_inodes_.try_emplace(ino, pid); return;
    }
    auto [it, fresh] = pending_.try_emplace(*path);
    if (fresh) {
        it->second.since = Clock::now();
        it->second.pid = pid;
    }
}

Capture::InodeLookup Capture::find_inode(uint64_t ino, std::optional<std::string>& path) {
    auto names = [&](const std::string& p) {
        auto it = tree_.find(p);
        return it != tree_.end() && it->second.ino == ino && it->second.is_reg();
    };
    auto look = [&] {
        if (auto it = inode_paths_.find(ino); it != inode_paths_.end() && names(it->second)) path = it->second;
        return path ? InodeLookup::found : InodeLookup::absent;
    };
    if (look() == InodeLookup::found) return InodeLookup::found;
    if (inode_paths_at_records_ == stats_.records) return InodeLookup::absent;
    // A file mapped elsewhere on the filesystem misses every time: the index
    // (a walk of the whole tree) is rebuilt at most every kInodeIndexEvery.
    auto now = Clock::now();
    if (now - inode_paths_built_ < kInodeIndexEvery) return InodeLookup::later;
    inode_paths_.clear();
    for (auto& [p, e] : tree_)
        if (e.ino != 0 && e.is_reg()) inode_paths_.emplace(e.ino, p);
    inode_paths_at_records_ = stats_.records;
    inode_paths_built_ = now;
    return look();
}

void Capture::resolve_inodes_now() {
    // Ranges no fanotify event has claimed: a write through libaio raises no
    // modify event, and a file kept open raises no close either, so nothing
    // else would ever journal them. (A write whose modify event is still
    // queued is journaled now and again with its event.) Outside the root,
    // the inode is found nowhere and its ranges wait as before.
    for (auto& [ino, d] : dirt_)
        if (!d.ranges.empty() || d.truncated_to) expect_write_to_inode(ino, d.pid);
    if (unresolved_inodes_.empty()) return;
    inode_paths_built_ = {};  // the rebuild's rate bound is for misses, not for a sync
    resolve_unresolved_inodes();
}

void Capture::resolve_unresolved_inodes() {
    if (unresolved_inodes_.empty() || Clock::now() - inode_paths_built_ < kInodeIndexEvery) return;
    auto waiting = std::move(unresolved_inodes_);
    unresolved_inodes_.clear();
    for (auto& [ino, pid] : waiting) expect_write_to_inode(ino, pid);
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
            if (ev.offset != UINT64_MAX) d.shrunk_to = std::min(d.shrunk_to.value_or(UINT64_MAX), ev.offset);
            break;
        case DirtyKind::unknown:
            // No fanotify event follows (a store through a mapping, a call
            // that failed): the write is expected here.
            d.unexplained = true;
            expect_write_to_inode(ev.ino, ev.pid);
            break;
        case DirtyKind::collapse_range:
        case DirtyKind::insert_range:
            // Everything after offset moved: dirty to whatever the end is at flush.
            if (d.ranges.empty()) d.ranges_since = Clock::now();
            d.ranges.push_back({ev.offset, UINT64_MAX - ev.offset});
            break;
        default:
            if (d.ranges.empty()) d.ranges_since = Clock::now();
            if (ev.length) d.ranges.push_back({ev.offset, ev.length});
            if (d.ranges.size() > d.merge_at) {
                d.ranges = journal::coalesce(std::move(d.ranges));
                d.merge_at = std::max<size_t>(256, 2 * d.ranges.size());
            }
            break;
    }
    // Inodes we never hear of from fanotify (files elsewhere on the
    // filesystem): dropped wholesale, which drops ranges of writes in
    // flight too, so those are journaled as whole-file.
    if (dirt_.size() > 65536) on_dirty_ranges_lost();
}

void Capture::on_dirty_ranges_lost() {
    dirt_.clear();
    recent_ranges_.clear();
    distrust_ranges_until_ = Clock::now() + 2 * kCoalesceWindow + std::chrono::milliseconds(500);
}

void Capture::flush_write(const std::string& path, const PendingWrite& pw) {
    auto it = tree_.find(path);
    if (it == tree_.end()) return;
    auto gone = [&] {
        // Written, then gone before we looked: the write still happened.
        // Its ranges are unknown here (the inode is), and its unlink or
        // rename follows. Until then what we knew of the file is stale (a
        // close_write must not claim its old size), so it is known by name
        // only, and read again where a rename says it went.
        Record w;
        w.op = Op::write;
        w.path = path;
        w.handle = it->second.handle;
        emit(std::move(w), pw.pid);
        it->second.ino = 0;
    };
    if (it->second.ino == 0) {
        // Known only from its create event: what it is (maybe a second name
        // of a known file) is decided once, where materialize decides it;
        // not at all when its delete is already known (a file made,
        // written and deleted before we looked: the common temporary file).
        if (!deferred_paths_.count(path)) materialize(path, pw.pid);
        it = tree_.find(path);
        if (it == tree_.end()) return;
        if (it->second.ino == 0) return gone();  // nothing left to read
    }
    auto now = read_current(path, kReadStat);
    // Moved since (its rename, or its directory's, still queued), maybe
    // with another object renamed over its name: the written file is where
    // its handle says, or gone.
    bool moved = (!now && gone_from_path(now.error().sys_errno)) ||
                 (now && it->second.ino != 0 && now->ino != it->second.ino);
    if (moved) {
        if (it->second.handle.empty()) now = fail(sys_error("read written file", path, ENOENT));
        else now = read_entry_by_handle(root_fd_, it->second.handle, path);
    }
    if (!now) return gone();
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
    // this write began (after a ring-buffer drop the file is wholly dirty)
    // and none of the file's changes came without a range.
    bool ranges_trusted = bpf_ranges_ && Clock::now() >= distrust_ranges_until_ && !dirt.unexplained;
    // A whole-file write says everything about the content: no cuts, no ranges.
    if (pw.whole) {
        dirt.ranges.clear();
        dirt.carried.clear();
        dirt.truncated_to.reset();
        dirt.shrunk_to.reset();
    }
    if (ranges_trusted && dirt.shrunk_to && dirt.truncated_to && *dirt.shrunk_to < *dirt.truncated_to) {
        // Cut, then extended with zeros: the cut must travel too.
        Record t;
        t.op = Op::truncate;
        t.path = path;
        t.handle = now->handle;
        t.size = *dirt.shrunk_to;
        stamp(t);
        emit(std::move(t), pw.pid);
    }
    if (dirt.truncated_to || (!ranges_trusted && !pw.whole && now->size < old_size)) {
        Record t;
        t.op = Op::truncate;
        t.path = path;
        t.handle = now->handle;
        // ext4's tracepoint does not carry the new size: the file has it.
        t.size = dirt.truncated_to && *dirt.truncated_to != UINT64_MAX ? *dirt.truncated_to : now->size;
        stamp(t);
        emit(std::move(t), pw.pid);
    }
    Record w;
    w.op = Op::write;
    w.path = path;
    w.handle = now->handle;
    w.size = now->size;
    w.mtime_ns = now->mtime_ns;
    // Without exact ranges the record says "whole file" (no ranges).
    if (ranges_trusted && (!dirt.ranges.empty() || !dirt.carried.empty())) {
        // Bytes past the current end: either a write's tracepoint fired
        // before it moved the size (ext4's write_end, XFS's buffered write
        // at its start: the agent, woken by that very event or by a sync,
        // can read the size first), or a later truncate cut them. They are
        // carried to the next flush of the file, which the write's own
        // modify event brings. One still past the end after kCarryPastEnd
        // was most likely cut; should it be a write stalled that long, the
        // file's next write is journaled whole rather than risk a gap.
        // Such a range is carried whole, not only its part past the end:
        // the write has not landed (an extending direct write moves the
        // size at its completion), so the bytes it puts before the end may
        // be read here before they are there; its own flush, after it
        // completed, journals them again.
        uint64_t end = now->size;
        auto now_t = Clock::now();
        std::vector<std::pair<journal::ByteRange, Clock::time_point>> beyond;
        bool expired = false;
        auto clamp = [&](journal::ByteRange r, Clock::time_point deadline) {
            uint64_t inside = end - std::min(r.offset, end);
            if (r.length > inside) {
                if (now_t < deadline) beyond.push_back({r, deadline});
                else expired = true;
            }
            r.length = std::min(r.length, inside);
            if (r.length) w.ranges.push_back(r);
        };
        for (auto& r : dirt.ranges) clamp(r, now_t + kCarryPastEnd);
        for (auto& [r, deadline] : dirt.carried) clamp(r, deadline);
        w.ranges = journal::coalesce(std::move(w.ranges));
        if (expired) dirt_[now->ino].unexplained = true;
        if (!beyond.empty()) {
            auto& later = dirt_[now->ino];
            later.carried.insert(later.carried.end(), beyond.begin(), beyond.end());
            if (later.pid == 0) {
                later.pid = dirt.pid;
                later.who = dirt.who;
            }
        }
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
    share_attributes(path, false);
    if (ranges_trusted && !w.ranges.empty()) recent_ranges_[now->ino] = {w.ranges, Clock::now() + kInFlightFor};
    if (!only_truncated) emit(std::move(w), pw.pid);
    for (auto& a : attrs) emit(std::move(a), pw.pid);
}

void Capture::expect_unclaimed_writes() {
    auto now = Clock::now();
    // Swept now and then, not at every batch: the map may hold many inodes.
    if (!bpf_ranges_ || now - unclaimed_swept_ < kUnclaimedAfter / 4) return;
    unclaimed_swept_ = now;
    for (auto& [ino, d] : dirt_) {
        if (d.sought || d.ranges.empty() || now - d.ranges_since < kUnclaimedAfter) continue;
        d.sought = true;
        expect_write_to_inode(ino, d.pid);
    }
}

void Capture::flush_writes(bool all) {
    expect_unclaimed_writes();
    resolve_unresolved_inodes();
    auto now = std::chrono::steady_clock::now();
    // Pruned now and then, not at every batch: the map holds every file
    // written in the last kInFlightFor.
    if (now - recent_pruned_ >= kInFlightFor / 4) {
        std::erase_if(recent_ranges_, [&](const auto& kv) { return kv.second.until <= now; });
        recent_pruned_ = now;
    }
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
    if (!unresolved_inodes_.empty()) return kInodeIndexEvery;
    if (pending_.empty()) return std::nullopt;
    auto oldest = std::chrono::steady_clock::time_point::max();
    for (auto& [p, pw] : pending_) oldest = std::min(oldest, pw.since);
    auto due = oldest + kCoalesceWindow - std::chrono::steady_clock::now();
    return std::max(std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(due) + std::chrono::milliseconds(1));
}

}  // namespace iz::agent
