#pragma once
// The normaliser: fanotify events (and eBPF dirty ranges) in, journal
// records out. It keeps the directory-handle -> path map and the tree state
// current, pairs renames, coalesces bursts of writes, and turns a queue
// overflow into an overflow record plus a rescan that journals exactly the
// differences.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "agent/bpf_capture.hpp"
#include "agent/fanotify_source.hpp"
#include "agent/inode_names.hpp"
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
};

class Capture {
public:
    // `root_fd` is an O_PATH|O_DIRECTORY descriptor of the watched root.
    Capture(std::string root, int root_fd, std::vector<std::string> excludes, journal::Writer& writer,
            bool ranges_from_bpf);

    // Compares the persisted tree with the tree as it is and journals the
    // differences (everything, the first time: the baseline).
    Status catch_up(const Tree& persisted, const std::string& why);

    void on_event(const FanEvent& ev);
    void on_dirty_range(const DirtyRangeEvent& ev);
    // The eBPF ring buffer dropped events: ranges of writes in flight are
    // unknown, so those writes are journaled as whole-file.
    void on_dirty_ranges_lost();
    // Journals coalesced writes older than the bound (or all of them).
    void flush_writes(bool all);
    // Until the oldest pending write is due; nullopt when none is pending.
    std::optional<std::chrono::milliseconds> next_flush_in() const;

    const Tree& tree() const { return tree_; }
    const CaptureStats& stats() const { return stats_; }
    bool excluded(const std::string& rel) const;

    // How long a write may wait to be coalesced with the next ones.
    static constexpr std::chrono::milliseconds kCoalesceWindow{100};

private:
    using Clock = std::chrono::steady_clock;
    struct PendingWrite {
        std::chrono::steady_clock::time_point since;
        int32_t pid = 0;
    };
    struct InodeDirt {
        std::vector<journal::ByteRange> ranges;
        std::optional<uint64_t> truncated_to;
        ProcessInfo who;
        int32_t pid = 0;
    };

    std::optional<std::string> dir_path(const std::string& handle);
    std::optional<std::string> event_path(const std::string& dir_handle, const std::string& name);
    void emit(journal::Record r, int32_t pid);
    void index_dir(const std::string& rel, const std::string& handle);
    void forget_subtree(const std::string& rel);
    void move_subtree(const std::string& from, const std::string& to);
    void adopt_subtree(const std::string& rel, int32_t pid);

    void on_create(const std::string& path, bool is_dir, int32_t pid, const std::string& handle, bool moved_in = false);
    void journal_vanished_creation(const std::string& path, bool is_dir, int32_t pid, const std::string& handle);
    void materialize(const std::string& path, int32_t pid);
    void materialize_beneath(const std::string& dir, int32_t pid);
    void on_delete(const std::string& path, bool is_dir, int32_t pid);
    void on_rename(const FanEvent& ev);
    void on_attrib(const std::string& path, int32_t pid);
    void on_modify(const std::string& path, int32_t pid);
    void on_close_write(const std::string& path, int32_t pid);
    void flush_write(const std::string& path, const PendingWrite& pw);
    void rescan(const std::string& why);

    std::string root_;
    int root_fd_;
    std::vector<std::string> excludes_;
    journal::Writer& writer_;
    bool bpf_ranges_;
    Tree tree_;
    InodeNames names_by_ino_;  // finds a file's other name for link records
    std::unordered_map<std::string, std::string> dirs_;    // handle key -> relative path
    std::unordered_set<std::string> outside_;              // handle keys known to be elsewhere
    std::unordered_map<std::string, PendingWrite> pending_;  // path -> coalescing write
    std::unordered_set<std::string> dirty_;                  // written since last close
    std::unordered_map<uint64_t, InodeDirt> dirt_;           // ino -> ranges from eBPF
    Clock::time_point distrust_ranges_until_{};
    ProcessInfoCache procs_;
    CaptureStats stats_;
};

}  // namespace iz::agent
