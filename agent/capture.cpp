// Capture: event dispatch, the directory map, deferred deletes and rescans.
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
#include <unordered_set>

#include "agent/tree_diff.hpp"
#include "capture_detail.hpp"
#include "common/file_handle.hpp"
#include "common/unique_fd.hpp"

namespace iz::agent {

using journal::Op;
using journal::Record;
using namespace capture_detail;

namespace {

// Opens a directory by its handle and asks the kernel where it is now.
std::optional<std::string> locate_by_handle(int mount_fd, const FileHandle& handle) {
    UniqueFd fd(open_by_handle(mount_fd, handle, O_PATH | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    char buf[PATH_MAX];
    ssize_t n = readlink(fmt::format("/proc/self/fd/{}", fd.get()).c_str(), buf, sizeof buf - 1);
    fd.reset();
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
    if (ignored_pid_ != 0 && pid == ignored_pid_) {
        // Applied from the network: the receiver journals it with its origin.
        ++stats_.ignored_own;
        return;
    }
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
    if (seen_) r.seen = seen_();
    std::string path, target;
    // A record with an origin is never sent: nothing waits for its ack.
    const bool tell = emitted_ && r.origin.empty();
    if (tell) {
        path = r.path;
        target = r.target;
    }
    auto lsn = writer_.append(std::move(r));
    if (!lsn) {
        if (stats_.journal_errors++ == 0) spdlog::error("journal append failed: {}", lsn.error().message);
        return;
    }
    ++stats_.records;
    if (tell) emitted_(path, target, *lsn);
}

void Capture::index_dir(const std::string& rel, const FileHandle& handle) {
    if (!handle.empty()) {
        dirs_[handle] = rel;
        outside_.erase(handle);
    }
}

Status Capture::catch_up(const Tree& persisted, const std::string& why) {
    auto fresh = scan_tree(root_fd_, [this](const std::string& rel) { return excluded(rel); });
    if (!fresh) return fail(fresh.error());
    auto records = diff_trees(persisted, *fresh);
    if (take_applied_) {
        applied_ = take_applied_();
        received_.insert(received_.end(), applied_.begin(), applied_.end());
    }
    // Keep per-file versions across restarts, with the object wherever it went.
    std::unordered_map<FileHandle, uint64_t> versions;
    for (auto& [path, e] : persisted)
        if (!e.handle.empty()) versions[e.handle] = std::max(versions[e.handle], e.version);
    for (auto& [path, e] : *fresh) {
        if (auto v = versions.find(e.handle); !e.handle.empty() && v != versions.end()) e.version = v->second;
        else if (auto it = persisted.find(path); it != persisted.end()) e.version = it->second.version;
    }
    tree_.clear();
    dirs_.clear();
    names_.clear();
    deferred_deletes_.clear();  // the scan is the truth now
    deferred_paths_.clear();
    for (auto& [path, e] : *fresh) track(path, std::move(e));
    if (!not_local_.empty() || !received_.empty() || !applied_.empty()) {
        auto at_or_beneath = [](const std::string& p, const std::string& top) {
            return top.empty() || p == top || (p.size() > top.size() && p.starts_with(top) && p[top.size()] == '/');
        };
        // A directory's times alone: what applying beneath it changed.
        auto times_only = [&](const Record& r) {
            auto was = persisted.find(r.path);
            return r.op == Op::setattr && was != persisted.end() && was->second.is_dir() &&
                   (!r.mode || (*r.mode & 07777) == (was->second.mode & 07777)) &&
                   (!r.owner_uid || *r.owner_uid == was->second.uid) && (!r.owner_gid || *r.owner_gid == was->second.gid);
        };
        std::unordered_set<std::string> applied(applied_.begin(), applied_.end());
        auto received = [&](const Record& r) {
            for (auto& p : not_local_)
                if (at_or_beneath(r.path, p) || (!r.target.empty() && at_or_beneath(r.target, p))) return true;
            if (applied.count(r.path) || (!r.target.empty() && applied.count(r.target))) return true;
            if (!times_only(r)) return false;
            for (auto* list : {&not_local_, &received_})
                for (auto& p : *list)
                    if (at_or_beneath(p, r.path)) return true;
            return false;
        };
        size_t before = records.size();
        std::erase_if(records, received);
        if (records.size() != before)
            spdlog::info("{}: {} differences are forwards applied from the server{}, not local changes", why,
                         before - records.size(),
                         not_local_.empty() ? "" : " (some before the last stop and not committed: they come again)");
        not_local_.clear();
        received_.clear();
        applied_.clear();
    }
    size_t n = records.size();
    size_t adopted = 0;
    for (auto& r : records) {
        if (!adopted_.empty() && adopted_.count(r.path) && (r.target.empty() || adopted_.count(r.target))) {
            r.origin = adopted_origin_;
            ++adopted;
        }
        emit(std::move(r), 0);
    }
    if (adopted) spdlog::info("{}: {} records of entries the fileset holds already, not sent", why, adopted);
    adopted_.clear();
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

std::optional<std::string> Capture::dir_path(const FileHandle& handle, bool placed_only) {
    if (handle.empty()) return std::nullopt;
    if (auto it = dirs_.find(handle); it != dirs_.end()) return it->second;
    if (outside_.count(handle)) return std::nullopt;
    auto abs = locate_by_handle(root_fd_, handle);
    if (abs && (*abs == root_ || abs->starts_with(root_ + "/") || root_ == "/")) {
        std::string rel = *abs == root_ ? "" : abs->substr(root_ == "/" ? 1 : root_.size() + 1);
        // Where the kernel has the directory now may be a name that moves
        // still queued bring it to (a directory whose create event found
        // another object at its name is known by none until then): an
        // entry journaled there would reach the replica before its parent
        // (refused), and be taken for journaled when the move brings the
        // directory and its contents are read. Unknown here, the event is
        // left to that read. Not remembered as outside: it is not.
        if (!rel.empty()) {
            auto known = tree_.find(rel);
            if (known == tree_.end() || !known->second.is_dir()) {
                spdlog::debug("directory '{}' not in the tree yet: its event waits for the move that brings it", rel);
                return std::nullopt;
            }
        }
        if (!excluded(rel)) {
            // Where the directory is now, the tree may not have it yet: its
            // create event found another object at its name (it was moved
            // or exchanged before the events were read), and the move that
            // takes it there is still queued. Entries journaled beneath that
            // name now would come before the directory itself (beneath a
            // file the tree has there, or no entry at all): the replica
            // skips them and the tree never sends them again. They are the
            // directory's: its move, when read, reads it with what it holds.
            // (A move is another matter: taken for a move out of the tree,
            // it would remove what the tree has.)
            if (placed_only && !rel.empty()) {
                auto known = tree_.find(rel);
                if (known == tree_.end() || !known->second.is_dir() ||
                    (!known->second.handle.empty() && known->second.handle != handle)) {
                    spdlog::debug("directory found at {} by its handle, ahead of the move that takes it there", rel);
                    return std::nullopt;
                }
            }
            dirs_[handle] = rel;
            return rel;
        }
    }
    if (outside_.size() > 100000) outside_.clear();
    outside_.insert(handle);
    return std::nullopt;
}

// The kernel reports a change of a file's link count (link, unlink, a
// rename over it: fsnotify_link_count) on the inode alone, without a
// directory or name. Each such event of a file in the tree is no event
// outside it; what changed the name is an event of its own.
bool Capture::known_object(const FileHandle& handle) const {
    if (handle.empty()) return false;
    return dirs_.count(handle) || names_.count(handle) || departed_.count(handle_hash(handle));
}

std::optional<std::string> Capture::event_path(const FileHandle& dir_handle, const std::string& name,
                                               bool placed_only) {
    auto dir = dir_path(dir_handle, placed_only);
    if (!dir) return std::nullopt;
    auto path = name.empty() ? *dir : join(*dir, name);
    if (excluded(path)) return std::nullopt;
    return path;
}

Result<Entry> Capture::read_current(const std::string& path, unsigned parts) {
    if (event_read_ && event_read_->path == path && (parts & ~event_read_->parts) == 0) return event_read_->entry;
    auto e = read_entry(root_fd_, path, parts);
    if (e && in_event_) event_read_ = EventRead{path, parts, *e};
    return e;
}

void Capture::on_event(const FanEvent& ev, std::span<const FanEvent> after) {
    ++stats_.events;
    struct EventScope {
        Capture& c;
        EventScope(Capture& c, uint64_t mask) : c(c) {
            c.in_event_ = true;
            c.event_has_attrib_ = mask & FAN_ATTRIB;
            c.event_has_modify_ = mask & FAN_MODIFY;
        }
        ~EventScope() {
            c.in_event_ = c.event_has_attrib_ = c.event_has_modify_ = false;
            c.event_read_.reset();
        }
    } scope(*this, ev.mask);
    if (spdlog::should_log(spdlog::level::debug)) {
        auto known = [this](const FileHandle& h) {
            auto it = dirs_.find(h);
            return it == dirs_.end() ? std::string("?") : "'" + it->second + "'";
        };
        spdlog::debug("event mask={:#x} pid={} dir={} name='{}' new_dir={} new_name='{}'", ev.mask, ev.pid,
                      known(ev.dir_handle), ev.name, known(ev.new_dir_handle), ev.new_name);
    }
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
        on_rename(ev, after);
        return;
    }
    auto path = event_path(ev.dir_handle, ev.name, true);
    if (!path) {
        if (!(ev.dir_handle.empty() && known_object(ev.object_handle))) ++stats_.outside_events;
        return;
    }
    bool is_dir = ev.mask & FAN_ONDIR;
    if (ev.mask & FAN_CREATE) on_create(*path, is_dir, ev.pid, ev.object_handle);
    // The kernel reports a utimes that sets the mtime alone (`touch -m`)
    // as a modify, not an attribute change (fsnotify_change). Nothing else
    // modifies a directory itself: there it is an attribute change, which
    // carries the directory's times (a write record of a directory ships
    // nothing). On a file it cannot be told from a write, which carries the
    // file's mtime anyway. A fifo, device, socket or symlink has no content
    // to ship: there it is an attribute change too (a write into a fifo
    // moves its mtime, and the setattr carries that as well).
    if (ev.mask & FAN_MODIFY) {
        auto known = tree_.find(*path);
        bool special = known != tree_.end() && known->second.ino != 0 && !known->second.is_reg() &&
                       !known->second.is_dir();
        if (!is_dir && !special) on_modify(*path, ev.pid);
        else if (!(ev.mask & FAN_ATTRIB)) on_attrib(*path, ev.pid);
    }
    if (ev.mask & FAN_ATTRIB) on_attrib(*path, ev.pid);
    if (ev.mask & FAN_CLOSE_WRITE) on_close_write(*path, ev.pid);
    if (ev.mask & FAN_DELETE) {
        // A directory where a file went, or the other way round: the tree's
        // entry was read at this name by a scan ahead of the move that
        // brings it (see on_rename), after this entry was removed.
        if (auto known = tree_.find(*path); known != tree_.end() && known->second.is_dir() != is_dir) {
            spdlog::debug("delete {}: the tree has another type of entry there, read ahead of its move", *path);
            return;
        }
        // fanotify merges an event into one of the same name and object
        // still queued, at the earlier one's place: a delete merged into a
        // create (or a write) happened later, maybe after events that still
        // use the name or, for a directory, its handle (entries made in it
        // and moved out, a link from it). It happened before the queue was
        // last found empty, so it is carried out at the end of this batch.
        constexpr uint64_t kEarlier = FAN_CREATE | FAN_MODIFY | FAN_ATTRIB | FAN_CLOSE_WRITE;
        auto it = tree_.find(*path);
        if ((ev.mask & kEarlier) && it != tree_.end()) {
            deferred_deletes_.push_back({*path, it->second.handle, is_dir, ev.pid});
            deferred_paths_.insert(*path);
        } else {
            on_delete(*path, is_dir, ev.pid);
        }
    }
}

void Capture::on_drain(std::span<const FanEvent> events) {
    // Events held from the drain before come first; that drain ends where
    // this one's events begin (its deferred deletes are carried out there).
    std::vector<FanEvent> all;
    size_t earlier = held_.size();
    if (earlier > 0) {
        all = std::move(held_);
        held_.clear();
        all.insert(all.end(), events.begin(), events.end());
        events = all;
    }
    for (size_t i = 0; i < events.size(); ++i) {
        if (i == earlier && earlier > 0) end_of_batch();
        auto after = events.subspan(i + 1);
        // An event is held once: when the next drain comes, the other half
        // of an exchange, queued right after the first, is in it.
        if (i >= earlier && may_await_other_half(events[i], after)) {
            held_.assign(events.begin() + static_cast<ptrdiff_t>(i), events.end());
            held_since_ = Clock::now();
            return;
        }
        on_event(events[i], after);
    }
    end_of_batch();
}

std::optional<std::chrono::milliseconds> Capture::held_due_in() const {
    if (held_.empty()) return std::nullopt;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(held_since_ + kHoldForPair - Clock::now());
    return std::max(left, std::chrono::milliseconds(0));
}

void Capture::settle_deferred_delete(const std::string& path) {
    if (deferred_paths_.empty() || !deferred_paths_.count(path)) return;
    for (auto& d : deferred_deletes_) {
        if (d.path != path || d.done) continue;
        auto it = tree_.find(path);
        if (it != tree_.end() && it->second.handle == d.handle) {
            on_delete(path, d.is_dir, d.pid);
            if (!d.is_dir && !d.handle.empty()) settled_deletes_.insert(d.handle);
        }
        d.done = true;
    }
    deferred_paths_.erase(path);
}

void Capture::end_of_batch() {
    auto pending = std::move(deferred_deletes_);
    deferred_deletes_.clear();
    deferred_paths_.clear();
    settled_deletes_.clear();
    for (auto& d : pending) {
        if (d.done) continue;
        auto it = tree_.find(d.path);
        if (it != tree_.end() && it->second.handle == d.handle) {
            on_delete(d.path, d.is_dir, d.pid);
            continue;
        }
        // Its name was taken by another object, which settled this delete,
        // or it was deleted already (an overflow's rescan): nothing left.
    }
}

}  // namespace iz::agent
