#pragma once
// What the tests of the server's decisions on a shared fileset
// (conflict_resolver.hpp, forwarded_dir_times.hpp) feed it: an agent's
// operation as it arrives, and a record of the fileset journal.
#include <cstdint>
#include <optional>
#include <string>

#include "journal/record.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator::test_resolver {

// When every operation here was made, 2026-12-07T20:00:00Z: it names the
// conflict copies.
inline constexpr int64_t kOpTime = 1796673600LL * 1'000'000'000;

// The agent's operation of `kind` on `path` (to `target`), its LSN `lsn`,
// made having seen the fileset journal through `seen` (none: send-only).
inline proto::OpMsg op(proto::OpKind kind, const std::string& path, uint64_t lsn, std::optional<uint64_t> seen,
                       const std::string& target = "") {
    proto::OpMsg m;
    m.lsn = lsn;
    m.kind = kind;
    m.path = path;
    m.target = target;
    m.seen = seen;
    m.time_ns = kOpTime;
    return m;
}

// A fileset journal record of `op` on `path` (to `target`).
inline journal::Record rec(journal::Op op, const std::string& path, const std::string& target = "") {
    journal::Record r;
    r.op = op;
    r.path = path;
    r.target = target;
    return r;
}

}  // namespace iz::replicator::test_resolver
