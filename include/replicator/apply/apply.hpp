#pragma once
// Applying replication operations beneath one fileset root.
//
// Promises:
//  - Every path is resolved beneath the root (see beneath.hpp); a path that
//    escapes, traverses a symlink or is malformed is refused and nothing of
//    that operation is applied.
//  - Operations are idempotent: applying an already applied one again
//    leaves the tree as it was (mkdir of an existing directory, unlink of a
//    missing name, a rename already done, the same bytes written again...).
//  - Whole-file content becomes visible atomically (O_TMPFILE + linkat +
//    rename, or a named temporary), except for a file with several hard
//    links, which is patched in place to keep the links together.
//  - A regular file changed on the server behind the replicator's back
//    (file_memory.hpp) is kept as NAME.conflict-HOST-TIME before the
//    source's version is applied, and reported.
//  - commit() returns only after the applied changes (syncfs of the root's
//    filesystem), the file memory and the applied LSN are durable.
//    begin_commit() makes them so on a thread of its own while operations go
//    on being applied; an Ack must wait for finish_commits() to report it.
//  - Not thread-safe: one caller at a time.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/file_handle.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

struct ApplierOptions {
    std::filesystem::path root;       // the fileset root; created if missing
    std::filesystem::path state_dir;  // this (agent, fileset)'s state
    std::string host;                 // goes into conflict copy names
    // A first path component refused on the wire (the state directory, when
    // it lives inside the root); "" for none.
    std::string reserved_top;
    // Applying what a server forwards to an agent of a shared fileset: a
    // directory a forward removes or replaces goes with what it still
    // holds here. The server decided every conflict, and the agent's own
    // entries in it were sent and decided first (the receiver holds such a
    // forward until they are acknowledged); what won comes back in the
    // records after it. Kept aside as a conflict copy here, it was on this
    // replica only.
    bool forwarded = false;
    // ApplyResult::written is wanted (a server's fileset journal names each
    // written file by its handle): the applier has the file open then, and
    // reading the handle there spares opening it again beneath the root.
    bool written_handles = false;
};

struct ConflictNote {
    uint64_t lsn = 0;
    std::string path;           // the file the source changed
    std::string conflict_copy;  // where the server's own version was kept
    std::string message;
};

enum class Outcome {
    applied,
    skipped,  // the tree is not in the state the op expects; it was left alone
    refused,  // hostile or malformed: the connection must be dropped
    failed,   // the server could not apply it (disk full, I/O error): retry later
    // The server can never apply it as it stands (a name its filesystem or
    // its own layout refuses, a file larger than its filesystem takes):
    // nothing of it was applied, it is reported, and the stream goes on.
    rejected,
};
std::string_view outcome_name(Outcome o);

struct ApplyResult {
    Outcome outcome = Outcome::applied;
    std::string message;  // why, for skipped/refused/failed
    // A part of content whose beginning was skipped or rejected: skipped
    // with it, and told already when the beginning was.
    bool with_beginning = false;
    std::vector<ConflictNote> conflicts;
    // A content_end or write applied, with ApplierOptions::written_handles:
    // the handle of the file it wrote (empty when the filesystem gives
    // none, or the write replaced a running file).
    FileHandle written;
};

// A part of an operation this server cannot apply, found after the
// operation itself was applied (a directory mtime set when the directories
// kept open are closed) or besides the rest of it (an owner the replica
// cannot take): reported like an Outcome::rejected operation.
struct RejectionNote {
    uint64_t lsn = 0;
    std::string path;
    std::string message;
};

struct CommitOutcome {
    uint64_t lsn = 0;
    Status status;
};

class Applier {
public:
    static Result<std::unique_ptr<Applier>> open(ApplierOptions options);
    virtual ~Applier() = default;

    virtual ApplyResult apply(const proto::OpMsg& op) = 0;
    // Block hashes of the regular file at `path` (exists=false otherwise).
    // A refused path is an Error with is_refusal().
    virtual Result<proto::HashReply> hashes(const proto::HashRequest& req) = 0;
    // Makes everything applied so far durable and records `lsn` as applied.
    virtual Status commit(uint64_t lsn) = 0;
    // The same, in the background: returns at once (after any commit still
    // in flight is done: one at a time), and `woken` is called from another
    // thread once this one is done, for the caller to call finish_commits().
    // A commit that cannot go to the background (the file memory is due
    // for compaction) is made at once and reported by finish_commits().
    virtual void begin_commit(uint64_t lsn, std::function<void()> woken) = 0;
    // Commits done since the last call, oldest first, each recorded as
    // durable (when it succeeded) before it is returned.
    virtual std::vector<CommitOutcome> finish_commits() = 0;
    // Forgets a content sequence that was begun but not ended (the
    // connection that sent it is gone).
    virtual void abort_content() = 0;
    // The operations received so far are applied: closes the directories
    // kept open for them and sets the directory mtimes deferred until then
    // (dir_cache.hpp).
    virtual Status finish_batch() = 0;

    // The RejectionNotes found since the last call, oldest first. A caller
    // takes them after apply(), finish_batch() and the commit calls.
    virtual std::vector<RejectionNote> take_rejections() = 0;

    virtual uint64_t durable_lsn() const = 0;
    virtual uint64_t resume_lsn() const = 0;
    // A sender resumes after resume_lsn() (a new connection): what it sends
    // may replay operations applied before, whose entries are all older
    // than this call (see exchange_notes.hpp).
    virtual void resume() = 0;
    virtual const std::filesystem::path& root() const = 0;
    // The root has other writers by design (a shared fileset: the other
    // agents' appliers on a server, the local user where an agent applies
    // what others did): a file changed since this applier last left it is
    // replaced without a conflict copy. Concurrent versions are told apart
    // by what each writer had seen, before the applier is called: by the
    // server that orders the fileset (replicator/server/conflict_resolver.hpp),
    // and on an agent by holding a forward back until its own change of
    // the path is acknowledged (agent/receiver.hpp).
    virtual void share() = 0;
    // Whether the regular file at `path` is exactly what this applier last
    // left there (the inode, size and mtime its file memory holds): content
    // patched over it (base existing) then starts from the version the
    // sender's ranges were made against. False for a file changed since by
    // anyone else, one it never wrote, and one that is missing.
    virtual bool left_unchanged(const std::string& path) = 0;
    // Forgets what it left at `path` (and beneath): left_unchanged() is
    // false there until it writes the file again.
    virtual void disown(const std::string& path) = 0;
};

}  // namespace iz::replicator
