#pragma once
// Directory times a subscriber of a shared fileset holds (DESIGN: "Shared
// filesets", convergence). Every forward carries the replica's directory
// mtimes as they are when it is read, and the subscriber sets them. Its
// own records are never forwarded to it: when one of them changes a
// directory (an entry made or removed there, its times set) after a
// forward set that directory's times on it, the subscriber may keep the
// time that forward carried while the replica has the one its own record
// left (two agents making entries in one directory at once). Such a
// directory's times are sent again, as the replica has them, once the
// forwarding has caught up: the last time a subscriber sets is read after
// the last record that changed it.
//
// Promises: bookkeeping for one subscriber's forwarding thread (not
// thread-safe); times_forward() reads the replica and nothing else.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "journal/record.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

class ForwardedDirTimes {
public:
    // The record `r` of another origin was forwarded: the directories whose
    // times it set on the subscriber.
    void forwarded(const journal::Record& r);
    // The subscriber's own record `r` was passed over: the directories it
    // changed whose times a forward set are to be sent again.
    void passed_over(const journal::Record& r);
    // The directories to send again now, taken out.
    std::vector<std::string> take_due();

private:
    std::set<std::string> told_;  // set on the subscriber by a forward
    std::set<std::string> due_;
};

// A setattr of the directory `dir`'s times as the replica (`root_fd`) has
// them now, at `lsn`, from `origin` (the server); nullopt when `dir` is no
// directory there any more.
Result<std::optional<proto::Forward>> times_forward(int root_fd, const std::string& dir, uint64_t lsn,
                                                    const std::string& origin);

}  // namespace iz::replicator
