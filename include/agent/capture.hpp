#pragma once
// The normaliser: fanotify events (and eBPF dirty ranges) in, journal
// records out. It keeps the directory-handle -> path map and the tree state
// current, pairs renames, coalesces bursts of writes, and turns a queue
// overflow into an overflow record plus a rescan that journals exactly the
// differences.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bpf/bpf_capture.hpp"
#include "agent/fanotify_source.hpp"
#include "agent/process_info.hpp"
#include "agent/tree_state.hpp"
#include "journal/writer.hpp"

namespace iz::agent {

struct CaptureStats {
    uint64_t events = 0;
    uint64_t outside_events = 0;  // on the same filesystem, outside the root
    uint64_t records = 0;
    uint64_t overflows = 0;
    uint64_t rescans = 0;
    uint64_t journal_errors = 0;
    uint64_t ignored_own = 0;  // changes this agent made applying others' (see ignore_changes_of)
};

class Capture {
public:
    // `root_fd` is a readable O_DIRECTORY descriptor of the watched root
    // (readable: it is also the mount reference for open_by_handle_at).
    Capture(std::string root, int root_fd, std::vector<std::string> excludes, journal::Writer& writer,
            bool ranges_from_bpf);

    // Compares the persisted tree with the tree as it is and journals the
    // differences (everything, the first time: the baseline).
    Status catch_up(const Tree& persisted, const std::string& why);

    // The events of one drain of the fanotify queue, in order; then what
    // end_of_batch() does. The kernel queues the two moves of an exchange
    // one right after the other, and a drain can end between them: a move
    // onto a name that holds another object still linked somewhere (it may
    // come back the other way) with no such move read after it is held,
    // with every event read after it, and handed over with the next drain,
    // whose events follow it (see `after` below), or by release_held().
    void on_drain(std::span<const FanEvent> events);
    // Hands over what on_drain() holds now, whatever follows.
    void release_held() { on_drain({}); }
    // Until what on_drain() holds should be released (nothing more came);
    // nullopt when nothing is held.
    std::optional<std::chrono::milliseconds> held_due_in() const;
    // How long a move held by on_drain() waits for its other half.
    static constexpr std::chrono::milliseconds kHoldForPair{50};

    // `after` is the events read after `ev` in the same drain: a move is
    // told from the first half of an exchange by the one that follows it.
    void on_event(const FanEvent& ev, std::span<const FanEvent> after = {});
    // Every event read in one drain of the queue has been handed over:
    // deletes that arrived merged into an earlier event of their name are
    // carried out now (see on_event).
    void end_of_batch();
    void on_dirty_range(const DirtyRangeEvent& ev);
    // The eBPF ring buffer dropped events: ranges of writes in flight are
    // unknown, so those writes are journaled as whole-file.
    void on_dirty_ranges_lost();
    // Journals coalesced writes older than the bound (or all of them).
    void flush_writes(bool all);
    // Finds now, not at the next rebuild of the inode index, the files that
    // eBPF events named by inode number only (stores through a mapping,
    // writes through libaio to a file still open): a sync must not answer
    // before their writes are journaled.
    void resolve_inodes_now();
    // Until the oldest pending write is due; nullopt when none is pending.
    std::optional<std::chrono::milliseconds> next_flush_in() const;

    const Tree& tree() const { return tree_; }
    const CaptureStats& stats() const { return stats_; }
    // A capture that takes over from another (after the journal was
    // reopened) goes on counting where that one stopped.
    void carry_stats(const CaptureStats& before) { stats_ = before; }
    // Shared filesets: changes made by process `pid` (this agent applying
    // what other agents did) update the tree but are not journaled as
    // local changes, so they are never sent back. 0: every change is.
    void ignore_changes_of(int32_t pid) { ignored_pid_ = pid; }
    // For the next catch_up only: the paths a receiver may have changed
    // without committing it (Receiver::unconfirmed_paths). What it finds
    // changed at them, beneath them, and the attributes (mtimes) of the
    // directories above them, is taken into the tree without a record: the
    // server forwards those changes again, and they are journaled then.
    void not_local_at_catch_up(std::vector<std::string> paths) { not_local_ = std::move(paths); }
    // For the next catch_up only: paths that records applied from a server
    // changed after the tree was saved (the journal has them; its records
    // do not say the directory mtimes the server sent): a directory above
    // one of them whose times alone differ is not a local change.
    void received_at_catch_up(std::vector<std::string> paths) { received_ = std::move(paths); }
    // For the next catch_up only (a first start joining a shared fileset
    // with a non-empty directory, agent/join_merge.hpp): the paths the
    // fileset holds as this directory does. Their records are journaled
    // with `origin`, so that the shipper never sends them (the server has
    // them) and no forward waits for their acknowledgement.
    void adopt_at_catch_up(std::unordered_set<std::string> paths, std::string origin) {
        adopted_ = std::move(paths);
        adopted_origin_ = std::move(origin);
    }
    // Send-receive: the paths (and rename targets) the receiver applied
    // whose events the capture may not have read, read by each catch_up
    // once it has scanned. A rescan after an overflow lost the events of
    // those forwards (the tree it compares with never saw them): what it
    // finds changed at exactly those paths, and the times of directories
    // above them, is the receiver's work, journaled by the receiver with
    // its origin, and never a local change (it would go back as an echo).
    void applied_by_receiver(std::function<std::vector<std::string>()> take) { take_applied_ = std::move(take); }
    // Shared filesets, send-receive: every record journaled carries what
    // `seen()` says this agent had applied of each server it receives
    // from (Record::seen), and `emitted(path, target, lsn)` is told of it
    // (the receiver holds back what would overwrite it unacknowledged).
    void stamp_with(std::function<std::vector<journal::SeenLsn>()> seen,
                    std::function<void(const std::string&, const std::string&, uint64_t)> emitted) {
        seen_ = std::move(seen);
        emitted_ = std::move(emitted);
    }
    bool excluded(const std::string& rel) const;

    // How long a write may wait to be coalesced with the next ones.
    static constexpr std::chrono::milliseconds kCoalesceWindow{100};

private:
    int32_t ignored_pid_ = 0;
    std::vector<std::string> not_local_;
    std::vector<std::string> received_;
    std::vector<std::string> applied_;
    std::unordered_set<std::string> adopted_;
    std::string adopted_origin_;
    std::function<std::vector<std::string>()> take_applied_;
    std::function<std::vector<journal::SeenLsn>()> seen_;
    std::function<void(const std::string&, const std::string&, uint64_t)> emitted_;
    using Clock = std::chrono::steady_clock;
    struct PendingWrite {
        std::chrono::steady_clock::time_point since;
        int32_t pid = 0;
        // Journaled as a whole-file write whatever its ranges: the file
        // appeared with content no range describes (see on_create).
        bool whole = false;
    };
    struct InodeDirt {
        std::vector<journal::ByteRange> ranges;
        // Ranges are merged when there are this many: twice what the last
        // merge left, so scattered writes that do not merge (direct I/O at
        // random offsets) cost a sort now and then, not one per write.
        size_t merge_at = 256;
        // Changed where no range tracepoint fired (see DirtyKind::unknown):
        // the write names the whole file.
        bool unexplained = false;
        // Ranges past the end of the file at an earlier flush (the write
        // that named them had not yet moved the size), kept whole (the
        // part before the end too: that write is still in flight) for the
        // next flushes of the file until the time beside each; a range
        // still past the end by then was cut by a truncate.
        std::vector<std::pair<journal::ByteRange, Clock::time_point>> carried;
        std::optional<uint64_t> truncated_to;
        // When `ranges` last became non-empty, and whether the file was
        // looked for since because no fanotify event claimed them (see
        // expect_unclaimed_writes).
        Clock::time_point ranges_since{};
        bool sought = false;
        // The smallest size a truncate set in the window: bytes past it were
        // cut even if a later truncate extended the file again (with zeros).
        std::optional<uint64_t> shrunk_to;
        ProcessInfo who;
        int32_t pid = 0;
    };

    // placed_only: a directory found by its handle only where the tree has it.
    std::optional<std::string> dir_path(const FileHandle& handle, bool placed_only = false);
    std::optional<std::string> event_path(const FileHandle& dir_handle, const std::string& name,
                                          bool placed_only = false);
    // `handle` names an object the tree has (or had until it was deleted).
    bool known_object(const FileHandle& handle) const;
    void emit(journal::Record r, int32_t pid);
    void index_dir(const std::string& rel, const FileHandle& handle);
    // Whether the directory `path` is made in has a default ACL (which the
    // kernel copies onto every new entry in it).
    bool parent_has_default_acl(const std::string& path) const;
    // The handle indexes know `e` as `new_path` instead of `old_path`.
    void repoint(const Entry& e, const std::string& old_path, const std::string& new_path);
    // Puts an entry in the tree and in the handle indexes.
    void track(const std::string& path, Entry e);
    // Another name the tree holds for the object `handle` names (a hard
    // link, or the name an entry had before a move still queued), if any.
    std::optional<std::string> tracked_elsewhere(const FileHandle& handle, const std::string& path, uint64_t ino);
    // Attributes belong to the inode: what was just read (and journaled)
    // for `path` becomes what every other known name of it has, so an
    // event on another name compares against the latest journaled state.
    void share_attributes(const std::string& path, bool xattrs_read);
    void forget_subtree(const std::string& rel);
    void move_subtree(const std::string& from, const std::string& to);
    void adopt_subtree(const std::string& rel, int32_t pid);

    void on_create(const std::string& path, bool is_dir, int32_t pid, const FileHandle& handle, bool moved_in = false);
    void journal_vanished_creation(const std::string& path, bool is_dir, int32_t pid, const FileHandle& handle);
    bool read_ahead_at(const std::string& other, const FileHandle& handle);
    void materialize(const std::string& path, int32_t pid);
    void materialize_beneath(const std::string& dir, int32_t pid);
    void on_delete(const std::string& path, bool is_dir, int32_t pid);
    // Carries out a deferred delete of whatever object held `path`, before
    // another object takes that name.
    void settle_deferred_delete(const std::string& path);
    void on_rename(const FanEvent& ev, std::span<const FanEvent> after);
    // Whether the move `ev` of an object onto a name where the tree has the
    // object `other` is the first half of an exchange: `other` is at the
    // old name now (looked up in the old directory by its handle: that
    // directory may have been renamed since), or, when it moved on before
    // the event was read, the move of `other` the other way follows.
    bool exchanged_with(const FanEvent& ev, const std::string& from, const FileHandle& other,
                        std::span<const FanEvent> after);
    // `next` is the move of `other` that makes the move `ev` an exchange.
    static bool other_half(const FanEvent& ev, const FanEvent& next, const FileHandle& other);
    // The kernel queues the other half of an exchange within this many
    // events of the first (an event from elsewhere can only slip in
    // between at that very moment).
    static constexpr size_t kPairedWithin = 8;
    // `ev` may be the first half of an exchange whose other half is not
    // among `after`, read with it (see on_drain).
    bool may_await_other_half(const FanEvent& ev, std::span<const FanEvent> after);
    // An object the tree does not know at `from` (none: from outside)
    // arrived at `to`: what the tree has there other than it is journaled
    // as gone, or moved to `from` where it is found now (an exchange).
    // After the move `ev` of an entry from `from` to `to`: it is back at
    // `from` by a move whose event fanotify merged into an earlier one (a
    // file only if `to` no longer holds it: not a link back).
    void moved_back_unreported(const FanEvent& ev, const std::string& from, const std::string& to,
                               std::span<const FanEvent> after);
    // `ev` is the move read (null: none to pair with a following one).
    void arrival_displaces(const std::optional<std::string>& from, const std::string& to, const FileHandle& moving,
                           bool moving_is_dir, int32_t pid, const FanEvent* ev = nullptr,
                           std::span<const FanEvent> after = {});
    // The entries at `a` and `b` swapped names (renameat2 RENAME_EXCHANGE).
    void on_exchange(const std::string& a, const std::string& b, int32_t pid);
    // Journals the whiteout a rename may have left at its old name `path`.
    void journal_whiteout(const std::string& path, const FileHandle& dir_handle, const std::string& name, int32_t pid);
    void on_attrib(const std::string& path, int32_t pid);
    void on_modify(const std::string& path, int32_t pid);
    void on_close_write(const std::string& path, int32_t pid);
    // A close_write without a modify event: a write fanotify did not report
    // (libaio) is found by eBPF ranges or by comparing size and mtime, and
    // flushed. Whether anything was.
    bool flush_unreported_write(const std::string& path, int32_t pid, bool modified);
    void flush_write(const std::string& path, const PendingWrite& pw);
    // A file changed without a fanotify event (DirtyKind::unknown): its
    // write is coalesced and flushed like one that had an event.
    void expect_write_to_inode(uint64_t ino, int32_t pid);
    enum class InodeLookup { found, absent, later };
    // A name of the regular file `ino` in the tree (`path`), none, or
    // `later`: the index is out of date and was rebuilt too recently.
    InodeLookup find_inode(uint64_t ino, std::optional<std::string>& path);
    // Inodes whose lookup had to wait, looked up again once it may be rebuilt.
    void resolve_unresolved_inodes();
    // Ranges that no fanotify event claimed within kUnclaimedAfter (libaio
    // writes to a file kept open) become a write of their file, without
    // waiting for a sync. Each inode is looked for once: one outside the
    // root stays unknown and is not looked for again.
    void expect_unclaimed_writes();
    void emit_whole_content(const std::string& path, const Entry& e, int32_t pid);
    void rescan(const std::string& why);
    // Reads `path` as it is now, or returns what was read of it earlier in
    // the same event when that covers `parts`.
    Result<Entry> read_current(const std::string& path, unsigned parts);

    std::string root_;
    int root_fd_;
    std::vector<std::string> excludes_;
    journal::Writer& writer_;
    bool bpf_ranges_;
    Tree tree_;
    std::unordered_map<FileHandle, std::string> dirs_;     // directory -> relative path
    std::unordered_set<FileHandle> outside_;               // handles known to be elsewhere
    // handle -> names of a non-directory. Pairs go stale as names go
    // (checked against the tree on use, dropped then); the index is rebuilt
    // when stale pairs outnumber live ones.
    std::unordered_multimap<FileHandle, std::string> names_;
    // Handles of files whose name was deleted: one showing up again under
    // a new name is no new file (bounded: cleared when it grows large).
    // Kept as hashes: a collision only costs an extra xattr read, and a
    // tree deleted was a string allocation per file.
    std::unordered_set<size_t> departed_;
    static size_t handle_hash(const FileHandle& handle) { return std::hash<FileHandle>{}(handle); }
    struct DeferredDelete {
        std::string path;
        FileHandle handle;  // the object the delete was for
        bool is_dir = false;
        int32_t pid = 0;
        bool done = false;
    };
    std::vector<DeferredDelete> deferred_deletes_;
    std::unordered_set<std::string> deferred_paths_;
    // Handles of files whose deferred delete was carried out in this batch:
    // that delete came after every event of the batch that names them, so
    // one read after it that brings such a file to a name it has left
    // since must not journal it there (nothing would remove it).
    std::unordered_set<FileHandle> settled_deletes_;
    std::unordered_map<std::string, PendingWrite> pending_;  // path -> coalescing write
    std::unordered_set<std::string> dirty_;                  // written since last close
    std::unordered_map<uint64_t, InodeDirt> dirt_;           // ino -> ranges from eBPF
    // ino -> the ranges its last flush journaled, until the time beside
    // them. A write's eBPF event comes when it begins: a flush for an
    // earlier event of the file (its create's close) can take the range of
    // a libaio write still in flight, whose bytes the shipper may then read
    // before they land, and whose own close (no modify event; the size and,
    // at coarse granularity, the mtime unchanged) finds nothing left. Such
    // a close journals these ranges again.
    struct RecentRanges {
        std::vector<journal::ByteRange> ranges;
        Clock::time_point until;
    };
    std::unordered_map<uint64_t, RecentRanges> recent_ranges_;
    Clock::time_point recent_pruned_{};
    static constexpr std::chrono::seconds kInFlightFor{1};
    // ino -> a name of it, built from the tree when an inode must be found
    // by number (rare: writes without fanotify events); rebuilt on a miss
    // only if records were journaled since (nothing new could be found),
    // and at most every kInodeIndexEvery.
    std::unordered_map<uint64_t, std::string> inode_paths_;
    std::optional<uint64_t> inode_paths_at_records_;
    Clock::time_point inode_paths_built_{};
    std::unordered_map<uint64_t, int32_t> unresolved_inodes_;  // ino -> pid, for the next rebuild
    Clock::time_point unclaimed_swept_{};
    static constexpr std::chrono::seconds kUnclaimedAfter{1};
    static constexpr std::chrono::milliseconds kInodeIndexEvery{100};
    // How long a range past the end of the file waits for the size to
    // catch up before it counts as cut.
    static constexpr std::chrono::seconds kCarryPastEnd{2};
    Clock::time_point distrust_ranges_until_{};
    ProcessInfoCache procs_;
    CaptureStats stats_;
    // One read of an entry serves every handler of one event: `cp -a` gets
    // create, modify, attrib and close_write merged into one event, whose
    // handlers read the same file three or four times. Whatever they could
    // see in later reads was done after the event, and is journaled from the
    // events that follow it. Only valid inside on_event.
    struct EventRead {
        std::string path;
        unsigned parts = 0;
        Entry entry;
    };
    std::optional<EventRead> event_read_;
    // What on_drain() holds, and since when.
    std::vector<FanEvent> held_;
    Clock::time_point held_since_{};
    bool in_event_ = false;
    bool event_has_attrib_ = false;  // its xattrs will be read: read them with the first read
    bool event_has_modify_ = false;  // a write of its object is journaled after its other changes
};

}  // namespace iz::agent
