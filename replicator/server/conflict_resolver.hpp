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
// Everything else (renames, links, mkdir) is applied as it comes: the
// later one wins. With several servers, `seen` becomes one
// entry per server (journal::SeenLsn) and the comparison one per entry.
//
// Promises: decide() and note() are pure bookkeeping (no I/O); the caller
// serialises them with the applying of the operation (FilesetJournal's
// order lock), so the decision and the journal agree.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

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
};

class ConflictResolver {
public:
    // A record of the fileset journal: `lsn` (server LSN), by `origin` (the
    // agent it was made for, when the server journaled it as its own),
    // of `kind` on `path` (and `target` for rename, link, exchange).
    void note(uint64_t lsn, const std::string& origin, proto::OpKind kind, const std::string& path,
              const std::string& target);
    // What to do with `op` from `agent`.
    ConflictDecision decide(const std::string& agent, const proto::OpMsg& op);

    // `NAME.conflict-<origin>-<time>` for `path` (a name longer than a
    // directory entry takes is shortened before the suffix).
    static std::string copy_name(const std::string& path, const std::string& origin, int64_t time_ns);

private:
    struct Change {
        uint64_t lsn = 0;
        std::string origin;
        bool removed = false;
    };
    struct Aside {
        std::string copy;
        uint64_t winner_lsn = 0;
        std::string winner_origin;
        uint64_t agent_lsn = 0;  // the agent's record first kept there
        bool more_pending = false;  // its last part had `more`: the next one goes on
    };
    std::map<std::string, Change> last_;                          // path -> its latest change
    std::map<std::pair<std::string, std::string>, Aside> aside_;  // (agent, path) -> where it goes
    // (agent, path) -> the LSN its attributes were last sent back to it
    // at, until it has seen that; the one decided and not yet noted.
    std::map<std::pair<std::string, std::string>, uint64_t> echoes_;
    std::optional<std::pair<std::string, std::string>> echoing_;
    bool echo_again(const std::pair<std::string, std::string>& key, uint64_t seen, proto::OpKind kind);
};

}  // namespace iz::replicator
