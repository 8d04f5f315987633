#pragma once
// A fileset's journal on the server (shared filesets): every operation the
// server applied for any agent of the fileset, in the order applied, each
// with its origin (the agent and the LSN it shipped it under). It is an
// ordinary journal (journal/FORMAT.md): izlog reads it, and forwarding
// reads it from each subscriber's cursor.
//
// Promises:
//  - note_applied() journals an applied operation that changes the tree
//    (namespace, attributes, xattrs, content); the parts of whole content
//    become one write record at their end, and parts of a range write one
//    at its first part. A write record names the ranges the agent's change
//    wrote (Record::ranges, written_ranges.hpp), none (the whole file) for
//    content made from nothing and for the server's own records.
//  - Noted records are written and synced together, one write and one
//    fdatasync for all noted since the last: when commit() starts it (an
//    agent's Commit, beside the replica's own sync, or the end of its
//    connection), when a flush() or wait_durable() needs it, and at the
//    latest when a subscriber has waited a short grace (kForwardGrace) for
//    another agent's records: a forward is never held back by that agent's
//    commit interval. Noting a record never wakes the journal's thread:
//    one wake-up, write and sync per record cost the server more CPU than
//    applying the operations.
//  - flush() returns once everything noted is durable; wait_durable(lsn)
//    once `lsn` is; wait_durable_beyond() wakes as soon as a later record is.
//  - Concurrent changes (conflict_resolver.hpp): resolve() says what to do
//    with an agent's operation; the caller holds order() across resolve(),
//    applying it and noting it, so that what each decision compared with is
//    what the journal holds. The resolver learns every noted record, and at
//    open() what the journal holds already (a restart decides alike: a
//    record the server journaled as its own for an agent carries that
//    agent, `on_behalf`, and counts as that agent's again).
//  - The resolver's memory is bounded (ResolverMemory): what every agent
//    reporting `seen` since the last prune has seen, and is older than the
//    last `keep` records, is dropped; an operation of an agent whose `seen`
//    is older than that is decided with the history after its `seen`, read
//    from this journal then (and kept for that agent until it catches up).
//  - Thread-safe.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "common/file_handle.hpp"
#include "common/unique_fd.hpp"
#include "journal/record.hpp"
#include "conflict_resolver.hpp"
#include "removed_store.hpp"
#include "written_ranges.hpp"
#include "journal/writer.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

// How much of its history the conflict resolver keeps in memory.
struct ResolverMemory {
    uint64_t keep = 10'000;         // the last records, whatever the agents have seen
    uint64_t prune_every = 4'096;  // records noted between two prunes
};

class FilesetJournal {
public:
    // `dir`: the journal directory (created). `root`: the fileset's replica.
    static Result<std::shared_ptr<FilesetJournal>> open(const std::filesystem::path& dir,
                                                         const std::filesystem::path& root, std::string reserved_top,
                                                         ResolverMemory memory = {});
    ~FilesetJournal();

    // `as`: the agent the resolver counts it for, when `agent` is the
    // server itself (a conflict copy, an update sent back); "" for `agent`.
    // `written`: for a content_end or write, the handle of the file the
    // applier wrote (ApplyResult::written), which the record keeps; without
    // it (or empty) the file is opened beneath the root again for it.
    void note_applied(const std::string& agent, const proto::OpMsg& op, const std::string& as = "",
                      const FileHandle* written = nullptr);
    // Journals the conflict `d` found for `agent`'s `op` (a `conflict`
    // record: path, the copy as target, the agent as origin, both origins
    // in its message), before the copy's own records.
    void note_conflict(const std::string& agent, const proto::OpMsg& op, const ConflictDecision& d);
    // Journals the attributes `agent`'s `op` replaces although it had not
    // seen them (d.attributes_lost): a `conflict` record (path, no target,
    // the agent whose value is lost as origin, what replaced it in its
    // message), so that the loss shows in izlog; the lost value is the
    // record at d.winner_lsn.
    void note_attribute_conflict(const std::string& agent, const proto::OpMsg& op, const ConflictDecision& d);
    // Makes `to` a copy of the regular file `from` (both beneath the
    // root): the start of a conflict copy the agent's delta patches.
    Status copy_current(const std::string& from, const std::string& to);
    // Held by the caller across resolve(), applying and noting.
    std::mutex& order() { return order_mu_; }
    ConflictDecision resolve(const std::string& agent, const proto::OpMsg& op) {
        recall(agent, op);
        return resolver_.decide(agent, op);
    }
    // Where `op` lands, by the moves and removals its agent had not seen
    // (conflict_resolver.hpp); under order(), before resolve().
    ConflictResolver::Placement place(const std::string& agent, const proto::OpMsg& op) {
        recall(agent, op);
        return resolver_.place(agent, op);
    }
    // The resolver's entries held and its floor (what is at or below it is
    // no longer in memory); under order().
    size_t resolver_entries() const { return resolver_.entries(); }
    uint64_t resolver_floor() const { return resolver_.floor(); }
    // A rename `p` found to make a cycle (fileset_journal_moves.cpp): a
    // `conflict` record (path, the agent's target, the agent as origin),
    // then the renames of p.undo with the server (`server`) as origin, so
    // that the agent's tree comes back to the fileset's; the replica is
    // left as it is.
    // Journals the directory `dir` and everything beneath it as the
    // replica holds it (fileset_journal_kept.cpp), with `server` as origin
    // (noted as `agent`'s): an agent that removed it gets it back equal by
    // the full manifest. Described by the hash-tree walk and made by
    // records_to_make() (replicator/apply/tree_records.hpp): every entry
    // type (directories, regular files as a write of their whole content,
    // symlinks, devices, FIFOs and sockets), owner, mode, times, xattrs and
    // POSIX ACLs, and a file's further names as links, from a name outside
    // `dir` when it has one (the agent kept that one). Directory times go
    // last. An error when `dir` cannot be walked (nothing is journaled).
    Status note_subtree(const std::string& server, const std::string& agent, const proto::OpMsg& op,
                        const std::string& dir);
    // What send-receive agents remove, kept for a concurrent rename of it
    // (removed_store.hpp): keep_removed() before an unlink is applied,
    // remake() makes a removed source again at a rename's target.
    Status keep_removed(const std::string& path) { return removed_->keep(path); }
    Status remake(const std::string& from, const std::string& to) { return removed_->remake(from, to); }
    // Whether the replica has an entry at `path` (not followed if a symlink).
    bool has(const std::string& path) const;
    void note_move_conflict(const std::string& server, const std::string& agent, const proto::OpMsg& op,
                            const ConflictResolver::Placement& p);
    // Starts making everything noted so far durable, without waiting;
    // returns the LSN it covers (for wait_durable()).
    uint64_t commit();
    Status wait_durable(uint64_t lsn);
    Status flush();
    uint64_t head() const;
    uint64_t durable() const;
    // Blocks until a record after `lsn` is durable, or `timeout`; returns
    // the durable LSN. A record of an origin other than `subscriber` noted
    // after `lsn` is made durable after kForwardGrace if no commit came.
    uint64_t wait_durable_beyond(uint64_t lsn, std::chrono::milliseconds timeout, const std::string& subscriber = {});
    // Long enough for the noting agent's own Commit to cover a burst (one
    // sync serves both), short beside a person's notice.
    static constexpr std::chrono::milliseconds kForwardGrace{5};
    // The writer's counts (records, writes, syncs).
    journal::WriterStats stats() const;

    const std::filesystem::path& dir() const { return dir_; }
    const std::filesystem::path& root() const { return root_; }
    const std::string& reserved_top() const { return reserved_top_; }

private:
    FilesetJournal() = default;
    std::filesystem::path dir_, root_;
    std::string reserved_top_;
    UniqueFd root_fd_;  // the replica root, for the handles of written files
    std::unique_ptr<journal::Writer> writer_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    uint64_t durable_ = 0;
    std::optional<journal::Record> last_write_;  // see note_applied()
    WrittenRanges written_ranges_;  // under mu_: what each agent's write changed
    std::map<std::string, uint64_t> noted_by_origin_;  // the last LSN noted per origin
    std::mutex order_mu_;
    ConflictResolver resolver_;  // under order_mu_
    std::optional<RemovedStore> removed_;  // under order_mu_
    ResolverMemory memory_;
    uint64_t since_prune_ = 0;   // under order_mu_
    void maybe_prune();
    // Reads into the resolver the history `agent`'s `op` needs when its
    // `seen` is older than what the resolver keeps.
    void recall(const std::string& agent, const proto::OpMsg& op);
    void learn(const journal::Record& r, uint64_t lsn, const std::string& as = "");
    void learn(journal::Op op, const std::string& origin, const std::string& path, const std::string& target,
               uint64_t lsn, const std::string& as);
    void noted(const std::string& origin, uint64_t lsn);
    // Journals `r` (origin and origin_lsn set), which changes `path` (and
    // `target`); `as` and `written` as for note_applied().
    void note_record(journal::Record&& r, const std::string& path, const std::string& target, const std::string& as,
                     const FileHandle* written);
};

// What a subscriber is sent for the fileset-journal record `r` (`root_fd`:
// the replica root, opened for reading, also the mount for handles): the
// operation, with the replica's directory mtimes, and for a write the
// replica's current content (read now): whole, or with `as_ranges` only
// the ranges the record names, holes as holes (forward_content.hpp). A
// noop when the replica no longer has what the record names.
Result<std::vector<proto::Forward>> forwards_of(const journal::Record& r, int root_fd, const std::string& reserved_top,
                                                bool as_ranges = false);

}  // namespace iz::replicator
