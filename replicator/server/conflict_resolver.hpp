#pragma once
// Concurrent changes in a shared fileset (DESIGN: "Shared filesets"): the
// server orders a fileset, so it is where two agents' changes of one path
// are told apart as "one saw the other" or "concurrent", once, for every
// replica (they all receive the outcome as forwarded records).
//
// An agent's operation carries `seen` (OpMsg::seen): the LSN of this
// server's fileset journal it had applied when it captured the change.
// A change the fileset journal holds for the same path after that LSN,
// made by another origin, is one the agent did not see: the two are
// concurrent. The rule, which needs no clock and is computed here only:
//
//  - update against update, create against create (write, truncate,
//    whole content, create, mknod, symlink): the version the fileset holds
//    stays at NAME; the arriving one is kept as
//    `NAME.conflict-<origin>-<time>` (<time>: the record's time as
//    YYYYMMDDTHHMMSSZ, UTC), journaled as a `conflict` record and the
//    copy's creation, forwarded like any record.
//  - delete against update: the update wins. An unlink or rmdir that did
//    not see the latest change of its path is dropped (the replicas that
//    removed it get it back from the forwarded update); an update arriving
//    after a concurrent delete is applied (it makes the file again) and
//    sent back to its own agent too, which receives the delete first.
//  - An agent's own earlier changes never conflict with it, nor does an
//    operation without `seen` (a send-only agent, an older one): it
//    replaces what the fileset holds, as before.
//  - Later records of the same agent on a path it lost are kept aside at
//    the same copy until the agent has seen the winning version (its
//    attributes, its next writes), so one edit never ends in two places.
//
//  - Attributes and xattrs (setattr, setxattr, removexattr) against a
//    concurrent change of the path: applied, so the one the fileset
//    journals later wins, and journaled with the server as origin like an
//    update after a delete (`echo`): its own agent, which applies the
//    concurrent change only after its own was acknowledged, gets its own
//    value back after it instead of keeping the other one. Its later
//    changes of the path made before it had that back go back too.
//
// Where an operation lands when the tree moved under it concurrently
// (place(), conflict_namespace.cpp; Kleppmann et al. 2021 apply moves in
// one order and skip the one that would make a cycle: the server's order
// is that order here):
//
//  - beneath a directory another origin moved (rename) after what the
//    agent had seen: the operation follows the directory (d/n becomes
//    e/n), and the source of a rename or link follows its entry (A: mv f
//    g, B: mv f h ends as one entry at h: the move the server journals
//    later wins);
//  - beneath a directory another origin removed (rmdir) after what the
//    agent had seen: update wins over delete, as for one path: the
//    directories on the way are made again (the rest of what was removed
//    stays removed);
//  - an rmdir of a directory beneath which another origin changed
//    something after what the agent had seen (B made d/new, A cut off
//    removed d): the update wins, the rmdir is skipped, and the
//    directory's content is journaled again for the removing agent;
//  - a rename whose source another origin removed (unlink, or rmdir of a
//    directory above it) after what the agent had seen: the rename wins
//    for what it moves: the server makes the source again at the target
//    from the objects it kept of the removal (removed_store.hpp), and
//    sends the target to every agent;
//  - an unlink or rmdir of an entry another origin moved after what the
//    agent had seen: the move wins; the removal is not applied and the
//    entry, where the move put it, is sent again to the removing agent
//    (a removal beneath a moved directory follows it, as any operation);
//  - a change of a directory's attributes by an agent that had not seen
//    an entry in it moved or removed by another: applied, and sent back
//    to its agent too (its times were taken before the other's change
//    reached it, which set them to the fileset's);
//  - a rename that, once placed, would move a directory into its own
//    subtree (A: mv x y/x, B: mv y x/y): skipped, and reported as a
//    conflict record; the agent is given renames that take its tree to
//    the fileset's (its move undone, the concurrent moves made again).
//
// Such an operation is journaled with the server as origin: its own agent
// receives the concurrent change after having made the operation, and
// must receive the outcome after that.
//
// Everything else (mkdir, a rename once placed) is applied as it
// comes: the later one wins. With several servers, `seen` becomes one
// entry per server (journal::SeenLsn) and the comparison one per entry.
//
// Memory: what is compared with is a ConflictHistory of the records after
// floor() (conflict_history.hpp); prune() raises the floor, and an agent
// whose `seen` is below it is given the history after its `seen`
// (history_needed(), load_history(): read from the fileset journal by the
// caller), so every decision is the one the whole history gives.
//
// Promises: decide() and note() are pure bookkeeping (no I/O); the caller
// serialises them with the applying of the operation (FilesetJournal's
// order lock), so the decision and the journal agree.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "conflict_history.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

struct ConflictDecision {
    enum class Action {
        apply,       // as it is
        keep_aside,  // at `copy` instead of its path
        drop,        // not applied, not journaled (a delete that lost)
    };
    Action action = Action::apply;
    std::string copy;           // keep_aside: the path it is applied at
    bool fresh = false;         // keep_aside: the conflict is found now (journal it)
    bool first = false;         // keep_aside: the first part of a record kept there
    // Whether the copy must start as the fileset's current file (the
    // operation patches a file: ranges, a truncate, content based on it).
    bool from_current = false;
    // apply: an update after a concurrent delete, or attributes after a
    // concurrent change of the path. Journaled with the
    // server as origin (noted as the agent's): the agent gets it back
    // after the delete it has not applied yet, which would remove it there.
    bool echo = false;
    uint64_t winner_lsn = 0;    // the fileset-journal record it was concurrent with
    std::string winner_origin;
    // apply: attributes set over a concurrent change (winner_lsn's): that
    // value is replaced, and journaled as lost (a `conflict` record).
    bool attributes_lost = false;
};

class ConflictResolver {
public:
    // A record of the fileset journal: `lsn` (server LSN), by `origin` (the
    // agent it was made for, when the server journaled it as its own),
    // of `kind` on `path` (and `target` for rename, link, exchange).
    // `sent_back`: journaled with the server as origin for `origin` (an
    // agent's change sent back to it); attributes so noted go back again
    // with its later changes made before it had them (echo_again).
    void note(uint64_t lsn, const std::string& origin, proto::OpKind kind, const std::string& path,
              const std::string& target, bool sent_back = false);
    // A `conflict` record of the journal read at a start: `agent`'s record
    // `agent_lsn` of `path` was kept at `copy` (server LSN `lsn`), against
    // the path's latest change before it. Its later records follow it there
    // as they did before the restart.
    void note_kept_aside(uint64_t lsn, const std::string& agent, const std::string& path, const std::string& copy,
                         uint64_t agent_lsn);

    // Memory (conflict_history.hpp): what every agent reporting `seen` has
    // seen need not be kept. prune_point() is the least `seen` reported
    // since the last prune (none: nobody reported); prune(floor) drops what
    // is at or below `floor`. An operation whose `seen` is below floor()
    // needs the history after it: history_needed() says from where, and
    // the caller reads the journal's records (from, floor()] into a
    // ConflictHistory for load_history(). Without it, such an operation is
    // decided by what is kept (as if it had seen floor()).
    std::optional<uint64_t> prune_point() const;
    void prune(uint64_t floor);
    uint64_t floor() const { return floor_; }
    std::optional<uint64_t> history_needed(const std::string& agent, const proto::OpMsg& op) const;
    void load_history(const std::string& agent, uint64_t from, ConflictHistory older);
    // Entries held: the kept history, the agents' behind it, and per agent
    // and path what was kept aside or sent back.
    size_t entries() const;
    // What to do with `op` from `agent`.
    ConflictDecision decide(const std::string& agent, const proto::OpMsg& op);

    // `NAME.conflict-<origin>-<time>` for `path` (a name longer than a
    // directory entry takes is shortened before the suffix).
    static std::string copy_name(const std::string& path, const std::string& origin, int64_t time_ns);

    // Where `agent`'s `op` lands in the fileset as it is now (the top of
    // this header; conflict_namespace.cpp). Pure: nothing is noted.
    struct Placement {
        std::string path, target;         // the op's, placed (equal to the op's when nothing moved)
        std::vector<std::string> revive;  // directories to make again first, outermost first
        bool moved = false;               // path or target differ from the op's
        bool echo = false;                // journal it with the server as origin
        bool cycle = false;               // a rename into its own subtree: skipped
        // An rmdir that had not seen a change beneath it: skipped, and
        // what the directory holds sent again (its agent removed it).
        bool keep_dir = false;
        // An unlink or rmdir of an entry another origin moved after what
        // the agent had seen: not applied (the move wins), and the entry,
        // at `keep` now, is sent again to its agent.
        std::string keep;
        // A rename whose source (or a directory above it) another origin
        // removed after what the agent had seen: the source is made again
        // at the target from what the server kept of it (removed_store.hpp).
        bool remake = false;
        // cycle: renames (from, to) that take the agent's tree to the
        // fileset's: its own move undone, then the concurrent moves again.
        std::vector<std::pair<std::string, std::string>> undo;
        uint64_t winner_lsn = 0;          // the concurrent change it met
        std::string winner_origin;
    };
    Placement place(const std::string& agent, const proto::OpMsg& op) const;

private:
    // Everything after floor_ of the fileset journal (prune()).
    ConflictHistory recent_;
    uint64_t floor_ = 0;
    // agent -> the history after `from` (its `seen` when it was behind
    // floor_): records (from, floor_] read from the journal, with recent_
    // laid over them, and every record noted since. Dropped once the
    // agent's `seen` reaches floor_.
    struct Behind {
        uint64_t from = 0;
        ConflictHistory history;
    };
    std::map<std::string, Behind> behind_;
    std::map<std::string, uint64_t> reported_;  // agent -> the latest `seen` since the last prune
    const ConflictHistory& history(const std::string& agent, std::optional<uint64_t> seen) const;
    // Follows `path` through the moves `agent` had not seen; echo when it did.
    std::string follow_moves(const ConflictHistory& h, const std::string& agent, uint64_t seen, std::string path,
                             bool self, Placement& p,
                             std::vector<std::pair<std::string, std::string>>* moves) const;
    bool removed_concurrently(const ConflictHistory& h, const std::string& agent, uint64_t seen,
                              const std::string& path, Placement& p) const;

    struct Aside {
        std::string copy;
        uint64_t winner_lsn = 0;
        std::string winner_origin;
        uint64_t agent_lsn = 0;  // the agent's record first kept there
        bool more_pending = false;  // its last part had `more`: the next one goes on
    };
    std::map<std::pair<std::string, std::string>, Aside> aside_;  // (agent, path) -> where it goes
    // (agent, path) -> the LSN its attributes were last sent back to it
    // at, until it has seen that; the one decided and not yet noted.
    std::map<std::pair<std::string, std::string>, uint64_t> echoes_;
    std::optional<std::pair<std::string, std::string>> echoing_;
    bool echo_again(const std::pair<std::string, std::string>& key, uint64_t seen, proto::OpKind kind);
};

}  // namespace iz::replicator
