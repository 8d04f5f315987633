// Capture: renames, and what renameat2's flags add to them: an exchange
// (two moves in the kernel's report) and the whiteout left at the old name.
#include "agent/capture.hpp"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "capture_detail.hpp"
#include "common/at_path.hpp"
#include "common/file_handle.hpp"
#include "common/path_tree.hpp"
#include "common/unique_fd.hpp"

namespace iz::agent {

using journal::Op;
using journal::Record;
using namespace capture_detail;

namespace {

// The handle of what `path` names now (deeper than PATH_MAX too).
Result<FileHandle> handle_now(int root_fd, const std::string& path) {
    AtPath at(root_fd, path);
    if (!at.ok()) return fail(sys_error("name_to_handle_at", path, at.error()));
    return handle_of(at.dir(), at.name(), path);
}

}  // namespace

void Capture::on_rename(const FanEvent& ev, std::span<const FanEvent> after) {
    auto from = event_path(ev.dir_handle, ev.name);
    auto to = event_path(ev.new_dir_handle, ev.new_name);
    // A directory is one object with one name: if the tree knows it by its
    // handle, that name is where it moves from, whatever the old parent's
    // handle resolved to.
    if ((ev.mask & FAN_ONDIR) && to && (!from || !tree_.count(*from)))
        if (auto known = tracked_elsewhere(ev.object_handle, *to, 0)) from = known;
    // Nothing moves beneath itself. The tree has the destination's directory
    // beneath the entry moving only when a read ahead of the events (of a
    // directory moved in, or known from its create event only, read as it
    // is now) took it in there, after later moves put it there: where it
    // was at this move the tree cannot say. Moved there, the entry would
    // hold its own ancestor (the replica refuses such a rename, and every
    // record beneath follows a path it never made). The move is taken for
    // one out of the tree's view instead (see dir_path): the entry goes
    // with what the tree has beneath it, and the move that later brings it
    // where the tree can place it reads it with what it holds then.
    if (from && to && strictly_beneath(*to, *from)) {
        spdlog::debug("rename {} -> {}: the tree has the destination beneath the source, read ahead of its moves",
                      *from, *to);
        to.reset();
    }
    if (!from && !to) {
        ++stats_.outside_events;
        return;
    }
    if (from && !to) {  // moved out of the watched tree (or into an excluded name)
        // Unless the name holds another object by now in the tree: the
        // second move of an exchange with a name outside, whose first move
        // brought that object in.
        auto known = tree_.find(*from);
        if (known != tree_.end() && !ev.object_handle.empty() && !known->second.handle.empty() &&
            known->second.handle != ev.object_handle) {
            spdlog::debug("rename {} out: the tree has another object at the source", *from);
            return;
        }
        on_delete(*from, false, ev.pid);
        return;
    }
    if (!from && to) {  // moved in from elsewhere: a creation with contents
        arrival_displaces(std::nullopt, *to, ev.object_handle, ev.mask & FAN_ONDIR, ev.pid);
        on_create(*to, ev.mask & FAN_ONDIR, ev.pid, ev.object_handle, true);
        return;
    }
    settle_deferred_delete(*to);
    if (!tree_.count(*from)) {  // unknown source: treat the destination as new
        arrival_displaces(*from, *to, ev.object_handle, ev.mask & FAN_ONDIR, ev.pid, &ev, after);
        on_create(*to, ev.mask & FAN_ONDIR, ev.pid, ev.object_handle, true);
        // The source is unknown too when a scan read the object ahead at
        // this destination and its create event, finding it there, made
        // no second name of the source: a whiteout left there is still
        // this move's to journal.
        journal_whiteout(*from, ev.dir_handle, ev.name, ev.pid);
        return;
    }
    // Which object moved is in the event: the tree's entries are checked
    // against it. renameat2(RENAME_EXCHANGE) reaches fanotify as two moves,
    // one per direction, and no delete: the first is recognised below (the
    // object the tree has at the destination is at the source name now)
    // and journaled as one exchange; the second then finds the tree
    // already as it says.
    const FileHandle& moving = ev.object_handle;
    const Entry& src = tree_.at(*from);
    auto dst = tree_.find(*to);
    if (!moving.empty() && src.handle != moving) {
        // The tree has the object at the destination already (the second
        // move of an exchange, or a scan that read the tree after this
        // move): nothing to do.
        if (dst != tree_.end() && dst->second.handle == moving) {
            spdlog::debug("rename {} -> {}: the tree has the object there already", *from, *to);
            // A directory known only from its create event is read where
            // its move puts it (see materialize): when the exchange was
            // journaled, it had moved on from there, and this is that move.
            bool is_dir = dst->second.is_dir();
            materialize(*to, ev.pid);
            if (is_dir) materialize_beneath(*to, ev.pid);
            return;
        }
        // The tree's source is another object (the second move of an
        // exchange that could not be recognised as one: the first was
        // journaled as a rename that replaced this object; or entries
        // changed again before their events were read): what the tree has
        // at the destination was replaced, and what arrived is read as it
        // is now.
        if (!src.handle.empty()) {
            // Unless the destination holds what the tree has there: the
            // tree was read after this move (arrival_displaces says how).
            if (dst != tree_.end() && !dst->second.handle.empty())
                if (auto now = handle_now(root_fd_, *to); now && *now == dst->second.handle) {
                    spdlog::debug("rename {} -> {}: the destination holds what the tree has there", *from, *to);
                    return;
                }
            spdlog::debug("rename {} -> {}: the tree has another object at the source; the destination is read", *from,
                          *to);
            if (dst != tree_.end()) on_delete(*to, dst->second.is_dir(), ev.pid);
            on_create(*to, ev.mask & FAN_ONDIR, ev.pid, moving, true);
            return;
        }
    }
    if (dst != tree_.end() && !dst->second.handle.empty() && dst->second.handle != src.handle &&
        exchanged_with(ev, *from, dst->second.handle, after)) {
        on_exchange(*from, *to, ev.pid);
        return;
    }
    if (dst != tree_.end() && dst->second.is_dir() && !(ev.mask & FAN_ONDIR)) {
        // A rename never puts a file over a directory: the tree's directory
        // was read at this name by a scan (of a directory moved in or
        // renamed, read as it is now) ahead of the moves that bring it
        // here, still queued. The file was here before it and has moved on
        // since: it left its old name, and its later events say where it
        // went (a move from here is read as an arrival where it ends).
        spdlog::debug("rename {} -> {}: the tree has a directory there, read ahead of its move", *from, *to);
        on_delete(*from, false, ev.pid);
        journal_whiteout(*from, ev.dir_handle, ev.name, ev.pid);
        return;
    }
    flush_writes(true);  // writes journaled under the old name stay in order
    Record r;
    r.op = Op::rename;
    r.path = *from;
    r.target = *to;
    r.handle = tree_[*from].handle;
    if (auto replaced = tree_.find(*to); replaced != tree_.end()) {
        r.replaced = true;
        r.replaced_handle = replaced->second.handle;
        if (!replaced->second.is_dir() && !replaced->second.handle.empty()) departed_.insert(handle_hash(replaced->second.handle));
        forget_subtree(*to);
    }
    move_subtree(*from, *to);
    emit(std::move(r), ev.pid);
    materialize(*to, ev.pid);
    if (auto moved = tree_.find(*to); moved != tree_.end() && moved->second.is_dir()) materialize_beneath(*to, ev.pid);
    journal_whiteout(*from, ev.dir_handle, ev.name, ev.pid);
    moved_back_unreported(ev, *from, *to, after);
}

// fanotify merges an event into an identical one still queued: an entry
// moved from A to B, back, and to B again before the events are read comes
// as [A->B] (the first and the third) and [B->A], and read in that order
// the tree would keep it at A. So after a move its old name is looked at
// (in the old directory by its handle): the entry back there, and no later
// event of this drain moving it, it went back by a move merged into an
// earlier one. Were that move still queued for a later drain, it finds the
// tree as it says. A directory has one name: found at A, it is not at B. A
// file found at A may have been linked back there instead (a second name,
// its create event still to come): it went back only if the new name no
// longer holds it (looked at in the new directory by its handle), and no
// later event of this drain names it there.
void Capture::moved_back_unreported(const FanEvent& ev, const std::string& from, const std::string& to,
                                    std::span<const FanEvent> after) {
    const FileHandle& moving = ev.object_handle;
    if (moving.empty() || ev.dir_handle.empty() || ev.name.empty() || tree_.count(from)) return;
    auto moved = tree_.find(to);
    if (moved == tree_.end() || moved->second.handle != moving) return;
    bool is_dir = moved->second.is_dir();
    UniqueFd dir(open_by_handle(root_fd_, ev.dir_handle, O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid()) return;
    auto now = handle_of(dir.get(), ev.name, from);
    if (!now || *now != moving) return;
    bool linked_at_new = false;
    for (const FanEvent& later : after) {
        if (later.object_handle != moving) continue;
        if (later.mask & FAN_RENAME) return;
        if (!is_dir && (later.mask & FAN_CREATE)) {
            // A link back to the old name: its create event journals it.
            if (later.dir_handle == ev.dir_handle && later.name == ev.name) return;
            if (later.dir_handle == ev.new_dir_handle && later.name == ev.new_name) linked_at_new = true;
        }
    }
    if (!is_dir && !linked_at_new) {
        // Still at the new name too: a second name at the old one, not a
        // move back (unless a link made the new name again: its create
        // event follows, and finds the file back at the old name).
        if (ev.new_dir_handle.empty() || ev.new_name.empty()) return;
        UniqueFd new_dir(open_by_handle(root_fd_, ev.new_dir_handle, O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!new_dir.valid()) return;
        auto there = handle_of(new_dir.get(), ev.new_name, to);
        if (there && *there == moving) return;
    }
    spdlog::debug("rename {} -> {}: the entry is back at its old name, by a move merged into an earlier event", from,
                  to);
    flush_writes(true);  // writes journaled under the old name stay in order
    Record r;
    r.op = Op::rename;
    r.path = to;
    r.target = from;
    r.handle = moving;
    move_subtree(to, from);
    emit(std::move(r), ev.pid);
    materialize(from, ev.pid);
    if (is_dir) materialize_beneath(from, ev.pid);
    journal_whiteout(to, ev.new_dir_handle, ev.new_name, ev.pid);
}

// The object the tree has at `to` is not the one that arrived there: it
// was replaced, or (an exchange) went to `from`. Where the name still
// holds the arrival, on_create journals it over the old object; but when
// the arrival moved on before the event was read, on_create finds another
// object (or none) there and journals nothing, and the tree would keep the
// old object at that name for good (a file made there later, maybe with
// its inode number, taken for it).
void Capture::arrival_displaces(const std::optional<std::string>& from, const std::string& to,
                                const FileHandle& moving, bool moving_is_dir, int32_t pid, const FanEvent* ev,
                                std::span<const FanEvent> after) {
    auto dst = tree_.find(to);
    if (moving.empty() || dst == tree_.end() || dst->second.handle.empty() || dst->second.handle == moving) return;
    // The name holds again the object the tree has there: that one came
    // back after the arrival (exchanged away and back, its moves still
    // queued, which then find the tree as they say), or the tree was read
    // after this event (the scan of a start reads it after fanotify is
    // armed). Either way the tree is right at this name, and taking the
    // arrival for a replacement removed the object there (a directory's
    // entries kept aside as a conflict copy on the replica) and made it
    // again.
    auto now = handle_now(root_fd_, to);
    if (now && *now == dst->second.handle) return;
    // Holding the arrival, the name may still have lost its object by an
    // exchange rather than a replacement: the object went, with whatever
    // is beneath it, to the name the arrival left (a whiteout, which has
    // no create event, comes from a name the tree does not know).
    if (from && ev && !tree_.count(*from)) {
        if (exchanged_with(*ev, *from, dst->second.handle, after)) {
            spdlog::debug("rename {} -> {}: the object the tree has at the destination went to the source", *from, to);
            flush_writes(true);  // writes journaled under the old name stay in order
            Record r;
            r.op = Op::rename;
            r.path = to;
            r.target = *from;
            r.handle = dst->second.handle;
            move_subtree(to, *from);
            emit(std::move(r), pid);
            return;
        }
    }
    // Otherwise the name holding the arrival lost its object to it:
    // on_create journals the arrival over it.
    if (now && *now == moving) return;
    // A file never replaces a directory (see on_rename): one read at this
    // name ahead of its move stays, and the file that arrived here first
    // is read where it went.
    if (dst->second.is_dir() && !moving_is_dir) return;
    spdlog::debug("rename -> {}: the object the tree has there was replaced", to);
    on_delete(to, dst->second.is_dir(), pid);
}

// The kernel queues the two moves of an exchange one right after the other,
// the second naming the other object and the same two names the other way
// round.
bool Capture::other_half(const FanEvent& ev, const FanEvent& next, const FileHandle& other) {
    return (next.mask & FAN_RENAME) && next.object_handle == other && next.dir_handle == ev.new_dir_handle &&
           next.name == ev.new_name && next.new_dir_handle == ev.dir_handle && next.new_name == ev.name;
}

bool Capture::exchanged_with(const FanEvent& ev, const std::string& from, const FileHandle& other,
                             std::span<const FanEvent> after) {
    for (size_t i = 0; i < after.size() && i < kPairedWithin; ++i) {
        if (other_half(ev, after[i], other)) {
            spdlog::debug("rename {} -> {}: the move of the object there the other way follows: an exchange", from,
                          ev.new_name);
            return true;
        }
    }
    // The second move was not read with the first: the other object is
    // looked for at the old name, in the old directory found by its
    // handle (renamed since, the path would miss it).
    if (ev.dir_handle.empty() || ev.name.empty()) {
        auto now = handle_of(root_fd_, from);
        return now && *now == other;
    }
    UniqueFd dir(open_by_handle(root_fd_, ev.dir_handle, O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid()) return false;  // gone, with whatever was in it
    auto now = handle_of(dir.get(), ev.name, from);
    return now && *now == other;
}

// Only a move onto a name the tree has another object at, near the end of
// what was read, can be a lone first half. Not worth waiting for when that
// object has no name left: a rename over it unlinked it (the usual way to
// replace a file), and an exchange would have kept it.
bool Capture::may_await_other_half(const FanEvent& ev, std::span<const FanEvent> after) {
    if (!(ev.mask & FAN_RENAME) || ev.object_handle.empty() || after.size() >= kPairedWithin) return false;
    auto to = event_path(ev.new_dir_handle, ev.new_name);
    if (!to) return false;
    auto dst = tree_.find(*to);
    if (dst == tree_.end() || dst->second.handle.empty() || dst->second.handle == ev.object_handle) return false;
    const FileHandle& other = dst->second.handle;
    for (const FanEvent& next : after)
        if (other_half(ev, next, other)) return false;
    UniqueFd fd(open_by_handle(root_fd_, other, O_PATH | O_CLOEXEC));
    struct stat st{};
    if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || st.st_nlink == 0) return false;
    spdlog::debug("rename -> {}: held until the next read, for the other half of an exchange", *to);
    return true;
}

void Capture::on_exchange(const std::string& a, const std::string& b, int32_t pid) {
    flush_writes(true);  // writes journaled under the old names stay in order
    Record r;
    r.op = Op::exchange;
    r.path = a;
    r.target = b;
    r.handle = tree_.at(a).handle;
    r.replaced_handle = tree_.at(b).handle;
    // Through a name no path can have (paths hold no NUL), so each side
    // keeps its own subtree, pending writes and handle indexes.
    const std::string aside(1, '\0');
    move_subtree(a, aside);
    move_subtree(b, a);
    move_subtree(aside, b);
    emit(std::move(r), pid);
    for (auto& side : {a, b}) {
        materialize(side, pid);
        if (auto moved = tree_.find(side); moved != tree_.end() && moved->second.is_dir()) materialize_beneath(side, pid);
    }
}

// renameat2(RENAME_WHITEOUT) leaves a whiteout (a character device 0:0) at
// the old name, made by the filesystem without an event of its own. Any
// other entry found there has its own create event still queued.
// The old name is looked at in its directory opened by handle, not by
// path: the directory may have been renamed or exchanged since (its move
// still queued), and the whiteout went with it; the tree moves it there
// when that move is read.
void Capture::journal_whiteout(const std::string& path, const FileHandle& dir_handle, const std::string& name,
                               int32_t pid) {
    if (tree_.count(path)) return;
    UniqueFd dir;
    if (!dir_handle.empty() && !name.empty()) {
        dir.reset(open_by_handle(root_fd_, dir_handle, O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!dir.valid()) return;  // gone, and the whiteout with it (its removal is queued)
    }
    auto read = [&](unsigned parts) {
        return dir.valid() ? read_entry(dir.get(), name, parts) : read_current(path, parts);
    };
    auto e = read(kReadStat);
    if (!e || !S_ISCHR(e->mode) || e->rdev != 0) return;
    e = read(kReadAll);
    if (!e || !S_ISCHR(e->mode) || e->rdev != 0) return;
    auto r = creation_record(path, *e);
    track(path, *e);
    emit(std::move(r), pid);
    for (auto& x : attribute_records(path, Entry{.mode = e->mode, .uid = e->uid, .gid = e->gid, .mtime_ns = e->mtime_ns}, *e))
        emit(std::move(x), pid);
}

}  // namespace iz::agent
