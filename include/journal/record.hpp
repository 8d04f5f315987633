#pragma once
// The journal's record model: InterMezzo's KML operations, made idempotent to
// replay. One flat struct rather than a variant per op: every consumer (izlog,
// the shipper, the applier) reads the same handful of fields, and optional
// fields cost nothing on the wire when absent.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/file_handle.hpp"
#include "common/mutation_ops.hpp"

namespace iz::journal {

// Wire values are part of the on-disk format: append only, never renumber.
enum class Op : uint8_t {
    IZ_MUTATION_OPS(IZ_MUTATION_ENUMERATOR)  // 1..13, shared with the wire
    close_write = 14,
    start = 15,
    stop = 16,
    overflow = 17,
    rescan = 18,
    conflict = 19,
    // renameat2(RENAME_EXCHANGE): the entries at `path` and `target` (with
    // everything beneath them) swap names. `handle` is the object that was
    // at `path`, `replaced_handle` the one that was at `target`. Not a
    // rename: neither side is removed.
    exchange = 20,
    // A verification found `path` different on a replica; the records that
    // follow make the replica equal. `message` says what differed.
    repair = 21,
};

inline constexpr Op kFirstOp = Op::create;
inline constexpr Op kLastOp = Op::repair;

// The names izlog prints and accepts ("close_write", "setxattr", ...).
std::string_view op_name(Op op);
std::optional<Op> op_from_name(std::string_view name);
// Values between kFirstOp and kLastOp that name no op are invalid too.
bool op_is_valid(uint8_t raw);

struct ByteRange {
    uint64_t offset = 0;
    uint64_t length = 0;
    friend bool operator==(const ByteRange&, const ByteRange&) = default;
};

// Merges overlapping and touching ranges; the result is sorted by offset.
std::vector<ByteRange> coalesce(std::vector<ByteRange> ranges);

// An opaque kernel file handle (name_to_handle_at / fanotify FID).
using FileHandle = iz::FileHandle;

// Shared filesets: what the writer of a change had seen of one server's
// fileset journal when the change was made (the LSN it had applied from
// that server, its receive cursor). A server compares it with what its
// journal holds for the path since, to tell a change that replaces the
// current version from a concurrent one (DESIGN: "Shared filesets").
// One entry per server an agent receives from: with several servers, a
// version vector.
struct SeenLsn {
    std::string server;  // the server's endpoint as the agent names it
    uint64_t lsn = 0;
    friend bool operator==(const SeenLsn&, const SeenLsn&) = default;
};

struct Record {
    // Assigned by the writer; whatever the caller sets is overwritten.
    uint64_t lsn = 0;
    // Wall-clock time of the event, nanoseconds since the epoch.
    int64_t time_ns = 0;
    Op op = Op::create;

    // Path relative to the watched root ("" is the root itself).
    std::string path;
    // The second path: rename destination, new link name, symlink target,
    // the other side of an exchange.
    std::string target;

    FileHandle handle;
    // Monotonic per file; lets an applier order and dedupe versions.
    uint64_t version = 0;

    // Who did it, where known.
    std::optional<int32_t> pid;
    std::optional<uint32_t> uid;
    std::optional<uint32_t> gid;
    std::string comm;

    // Attributes: setattr's new values, and the state at create/mkdir/close.
    std::optional<uint32_t> mode;       // full st_mode (type and permission bits)
    std::optional<uint32_t> owner_uid;  // file owner, distinct from the actor's uid
    std::optional<uint32_t> owner_gid;
    std::optional<int64_t> atime_ns;
    std::optional<int64_t> mtime_ns;
    std::optional<uint64_t> size;  // truncate length, size after write/close_write
    std::optional<uint64_t> rdev;  // mknod

    // write: dirty byte ranges. Empty on a write record means "whole file".
    std::vector<ByteRange> ranges;

    // rename: the rename replaced an existing entry at `target`.
    bool replaced = false;
    // rename: the entry replaced; exchange: the entry that was at `target`.
    FileHandle replaced_handle;

    // setxattr / removexattr
    std::string xattr_name;
    std::string xattr_value;

    // Agent events and conflicts: a human-readable note.
    std::string message;

    // Where the change was made, for a change that came from another node
    // of a shared fileset: that agent's id and the LSN of the record in its
    // own journal. Empty and 0 for a change captured here (the journal's
    // own agent is the origin). A server's fileset journal names the origin
    // of every record it holds.
    std::string origin;
    uint64_t origin_lsn = 0;

    // A change captured here in a shared fileset: what this agent had
    // applied of each server's fileset journal when it was captured.
    // Empty when the agent receives from no server.
    std::vector<SeenLsn> seen;

    // A server's fileset journal: the agent a record with the server as
    // origin was journaled for (its own change sent back to it, placed or
    // kept against a concurrent one), so that a restarted server counts it
    // as that agent's change, as the one before did. Empty otherwise.
    std::string on_behalf;

    friend bool operator==(const Record&, const Record&) = default;
};

}  // namespace iz::journal
