#pragma once
// The cursor of one server: follows the journal from where that server
// resumes, plans each window of records (ship_plan.hpp), reads the data at
// ship time (source_reader.hpp) and sends it through the server's link,
// committing at intervals so acknowledgements flow back.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "durable_mark.hpp"
#include "journal/reader.hpp"
#include "replicator/ship/shipper.hpp"
#include "server_link.hpp"
#include "ship_plan.hpp"
#include "source_reader.hpp"

namespace iz::replicator {

class ShipWorker {
public:
    ShipWorker(const ShipperOptions& options, std::shared_ptr<ServerLink> link, const std::atomic<bool>& stopping,
               DurableMark& durable, std::function<void(uint64_t)> saw_lsn);
    // The thread body. Returns when stopping; never throws.
    void run();

private:
    // Ships on one connection until it is gone (false) or stopping.
    bool ship_session(const LinkSession& session);
    bool ship_record(const journal::Record& r, const PlannedRecord& p);
    bool send_op(proto::OpMsg&& op);
    bool commit(uint64_t lsn);
    // Whether data extents are compressed now (ShipperOptions::compression).
    bool wire_is_bottleneck() const;
    // Whether a commit is due: kCommitBytes sent since the last, and none
    // in flight.
    bool commit_due() const;
    bool ship_ranges(const journal::Record& r, const std::vector<journal::ByteRange>& ranges);
    bool ship_whole(const journal::Record& r, ShipAction action);
    bool ship_close_attrs(const journal::Record& r);
    // A link whose first name no longer names the linked object at the
    // source: the second name is sent as that object itself.
    bool ship_linked_apart(const journal::Record& r);
    // Whether `link`'s first name no longer names the linked object at the
    // source because a record journaled after it (read ahead, once the
    // capture has settled: ShipperOptions::settle_capture) took that name,
    // or a directory above it, away.
    bool link_explained_later(const journal::Record& link);
    // A creation journaled without a mode: `m` gets the attributes of the
    // object its handle names, when that is still of type `type`.
    void attrs_by_handle(const journal::Record& r, proto::OpMsg& m, uint32_t type) const;
    void save_cursor(bool force);
    // Directories whose mtime a record could not carry (see fix_stale_dirs).
    void note_stale_parent(const std::string& path);
    // The mtime of the directory holding `path`, read once per window.
    std::optional<int64_t> parent_mtime(const std::string& path);
    void follow_stale_dirs(const journal::Record& r);
    // A rename or exchange about to ship: the directories it may have
    // given another directory's mtime to become stale (see read_dirs_).
    void note_moved_dirs(const journal::Record& r);
    bool fix_stale_dirs();
    // At the start of a session: directories the records before the
    // server's resume point may have left with the wrong mtime are stale.
    void recover_dir_times(uint64_t resume_lsn);
    bool reopen_reader(uint64_t next_lsn);

    const ShipperOptions& options_;
    std::shared_ptr<ServerLink> link_;
    const std::atomic<bool>& stopping_;
    DurableMark& durable_;
    std::function<void(uint64_t)> saw_lsn_;
    std::unique_ptr<journal::Reader> reader_;
    // Read from the journal but not yet durable: it waits here, in order.
    std::optional<journal::Record> held_;
    std::optional<SourceTree> tree_;

    std::set<std::string> stale_dirs_;
    // Directories whose mtime was read by path and sent, under the name
    // the records shipped since give them, with when it was read. A rename
    // or exchange journaled after the read (still queued in the agent when
    // it was made) may have put another directory at that path by then:
    // its mtime went to this one on the replica.
    std::map<std::string, std::chrono::steady_clock::time_point> read_dirs_;
    // Parent directory mtimes read while shipping the current window.
    std::unordered_map<std::string, std::optional<int64_t>> window_parent_mtimes_;
    uint64_t generation_ = 0;
    uint64_t last_complete_ = 0;  // every record up to here has been sent
    // The last of those a server may resume after (PlannedRecord::boundary):
    // commits name only such LSNs.
    uint64_t last_boundary_ = 0;
    // Whether the record being shipped is such a point.
    bool at_boundary_ = true;
    // The record being shipped: its parts carry what its writer had seen
    // of this server (shared filesets) and its time (send_op).
    const journal::Record* shipping_ = nullptr;
    uint64_t bytes_since_commit_ = 0;
    uint64_t saved_cursor_ = 0;
    std::chrono::steady_clock::time_point cursor_saved_at_{};

    // The file whose whole content (ending with its attributes) the last
    // record shipped.
    struct ShippedContent {
        std::string path;
        journal::FileHandle handle;
    };
    std::optional<ShippedContent> last_content_;

    friend class OpStream;
};

}  // namespace iz::replicator
