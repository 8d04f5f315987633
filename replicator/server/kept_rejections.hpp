#pragma once
// The rejections the server told one agent about one fileset and the agent
// has not yet said it stored (PROTOCOL.md, "Rejections the server keeps"),
// in a file of the (agent, fileset)'s state directory.
//
// Why the server keeps them at all: it reports a rejection as it applies
// the record, and resumes after the record once it is durable. An agent
// that dies after that and before it has read the report (and stored it in
// its own state directory) would never hear of it again, and its `izwatch
// sync` would say done with the replica different. So each one is kept
// here durably before the Ack that covers its record goes, sent again
// after every handshake of a version 5 agent, and forgotten only when the
// agent confirms (RejectedKept): the agent's own store keeps it from then
// on, until a verification clears it there.
//
// Promises: keep() and forget() return only once the file says so after a
// crash (write_file_durably); the list holds one entry per (lsn, path),
// the latest message, oldest first, at most kMaxKept (the oldest goes);
// a damaged file is an error naming it and saying what to do, never a
// crash or a silent loss. Thread-safe.
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

class KeptRejections {
public:
    // An agent confirms each one as it arrives: more than this many means
    // an agent that stopped confirming; the oldest go.
    static constexpr size_t kMaxKept = 1000;

    // The file beneath an (agent, fileset)'s state directory.
    static std::filesystem::path file_in(const std::filesystem::path& state_dir);
    // Reads what `file` keeps (nothing when it does not exist).
    static Result<std::unique_ptr<KeptRejections>> open(std::filesystem::path file);

    // Keeps `r` durably (a rejection of the same lsn and path is replaced).
    Status keep(const proto::RejectedMsg& r);
    // Forgets the rejection of (lsn, path) durably; false when none was kept.
    Result<bool> forget(uint64_t lsn, const std::string& path);
    // Everything kept, oldest first.
    std::vector<proto::RejectedMsg> all() const;
    const std::filesystem::path& file() const { return file_; }

private:
    explicit KeptRejections(std::filesystem::path file) : file_(std::move(file)) {}
    Status save();  // mu_ held

    std::filesystem::path file_;
    mutable std::mutex mu_;
    std::vector<proto::RejectedMsg> kept_;
};

}  // namespace iz::replicator
