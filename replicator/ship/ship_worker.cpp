#include "ship_worker.hpp"

#include <utility>

#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "common/path_tree.hpp"
#include "replicator/fs/block_hash.hpp"
#include "journal/retention.hpp"

namespace iz::replicator {

using journal::Op;
using journal::Record;
using Clock = std::chrono::steady_clock;

// The operations both the journal and the wire have carry the same number
// in both, from one list (common/mutation_ops.hpp); the mapping below is
// still by name, so neither side's later values need to line up.

namespace {

constexpr size_t kWindowRecords = 1024;
constexpr size_t kChunkBytes = 1u << 20;               // one extent
constexpr size_t kMessageBytes = 4u << 20;             // raw data per Op message
constexpr size_t kMessageHoles = 65536;                // holes per Op message (1 MiB of them)
// Data waiting for the socket beyond which extents are compressed: about
// one Op message. zstd at level 1 makes 300-450 MB/s per core and the
// server pays to decompress; over loopback or a fast LAN that is slower than
// sending the bytes as they are (a tree copy cost the agent a third of its
// CPU in zstd to save a wire that was idle). Compressing only while the
// socket cannot take what is offered spends CPU only where bytes are what
// is scarce; the backlog then shrinks and compression turns itself off.
constexpr uint64_t kCompressBacklogBytes = 4u << 20;
constexpr uint64_t kCommitBytes = 8ull << 20;          // commit at least this often
constexpr auto kCommitInterval = std::chrono::milliseconds(200);
// How long a caught-up worker waits for the ack of the commit in flight
// before looking at the journal again.
constexpr auto kCommitPatience = std::chrono::milliseconds(20);
// How long a directory whose mtime was read is followed through renames
// (ShipWorker::read_dirs_): far longer than events wait in the agent.
constexpr auto kReadDirsKept = std::chrono::seconds(60);

int64_t mtime_ns(const struct stat& st) {
    return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

}  // namespace

// One record's data spread over as many Op messages as the size limits
// need: in-place writes (all parts but the last flagged `more`), or a
// content sequence (content_begin, content_data..., content_end).
class OpStream {
public:
    // `mode`: of the file whose content this is; sent with content_begin
    // too, so the server makes its new file with it rather than changing
    // it at the end (an inode update per file).
    OpStream(ShipWorker& w, const Record& r, bool content, proto::ContentBase base,
             std::optional<uint32_t> mode = std::nullopt)
        : w_(w), content_(content), begin_mode_(mode) {
        cur_.lsn = r.lsn;
        cur_.path = r.path;
        cur_.base = base;
    }

    // Takes the bytes: a chunk that travels as it is moves into its extent.
    bool add(uint64_t offset, std::string&& data) {
        if (data.size() <= kChunkBytes) {
            size_t n = data.size();
            cur_.extents.push_back(proto::make_extent_taking(offset, std::move(data), w_.wire_is_bottleneck()));
            return added(n);
        }
        for (size_t off = 0; off < data.size(); off += kChunkBytes) {
            auto part = std::string_view(data).substr(off, kChunkBytes);
            cur_.extents.push_back(proto::make_extent(offset + off, part, w_.wire_is_bottleneck()));
            if (!added(part.size())) return false;
        }
        return true;
    }

    // A range the server makes a hole: no bytes travel. Adjacent holes
    // merge.
    bool add_hole(uint64_t offset, uint64_t length) {
        if (!cur_.holes.empty() && cur_.holes.back().offset + cur_.holes.back().length == offset) {
            cur_.holes.back().length += length;
            return true;
        }
        cur_.holes.push_back({offset, length});
        return cur_.holes.size() < kMessageHoles || flush();
    }

    // Sends what is left, with the final fields of `last`.
    bool finish(proto::OpMsg last) {
        last.lsn = cur_.lsn;
        last.path = cur_.path;
        if (content_) {
            if (!begun_ || !cur_.extents.empty() || !cur_.holes.empty()) {
                if (!flush()) return false;
            }
            last.kind = proto::OpKind::content_end;
        } else {
            last.kind = proto::OpKind::write;
            last.extents = std::move(cur_.extents);
            last.holes = std::move(cur_.holes);
            last.more = false;
        }
        return w_.send_op(std::move(last));
    }

private:
    bool added(size_t raw_bytes) {
        raw_ += raw_bytes;
        w_.link_->count_data(raw_bytes);
        return raw_ < kMessageBytes || flush();
    }

    bool flush() {
        // The extents move into the message; the rest of cur_ is kept.
        proto::OpMsg m;
        m.lsn = cur_.lsn;
        m.path = cur_.path;
        m.base = cur_.base;
        m.extents = std::move(cur_.extents);
        m.holes = std::move(cur_.holes);
        if (content_) {
            m.kind = begun_ ? proto::OpKind::content_data : proto::OpKind::content_begin;
            if (!begun_) m.mode = begin_mode_;
        } else {
            m.kind = proto::OpKind::write;
            m.more = true;
        }
        begun_ = true;
        cur_.extents.clear();
        cur_.holes.clear();
        raw_ = 0;
        return w_.send_op(std::move(m));
    }

    ShipWorker& w_;
    bool content_;
    std::optional<uint32_t> begin_mode_;
    bool begun_ = false;
    proto::OpMsg cur_;
    size_t raw_ = 0;
};

ShipWorker::ShipWorker(const ShipperOptions& options, std::shared_ptr<ServerLink> link, const std::atomic<bool>& stopping,
                       DurableMark& durable, std::function<void(uint64_t)> saw_lsn)
    : options_(options), link_(std::move(link)), stopping_(stopping), durable_(durable), saw_lsn_(std::move(saw_lsn)) {}

void ShipWorker::run() {
    while (!stopping_) {
        try {
            if (!tree_) {
                auto t = SourceTree::open(options_.watched_root);
                if (!t) {
                    spdlog::error("shipper: {}", t.error().message);
                    std::this_thread::sleep_for(std::chrono::seconds(1));
                    continue;
                }
                tree_.emplace(std::move(*t));
            }
            auto session = link_->wait_connected();
            if (!session) break;
            ship_session(*session);
        } catch (const std::exception& e) {
            spdlog::error("shipper to {}: internal error: {}", link_->endpoint().to_string(), e.what());
            std::this_thread::sleep_for(std::chrono::seconds(1));
        } catch (...) {
            spdlog::error("shipper to {}: internal error: an exception that is not a std::exception",
                          link_->endpoint().to_string());
            std::this_thread::sleep_for(std::chrono::seconds(1));
        }
    }
    try {
        save_cursor(true);
    } catch (...) {
    }
}

bool ShipWorker::reopen_reader(uint64_t next_lsn) {
    held_.reset();
    if (!reader_) {
        auto r = journal::Reader::open(options_.journal_dir);
        if (!r) {
            spdlog::warn("shipper to {}: {}", link_->endpoint().to_string(), r.error().message);
            return false;
        }
        reader_ = std::move(*r);
    }
    if (auto ok = reader_->refresh(); !ok) {
        spdlog::warn("shipper: {}", ok.error().message);
        reader_.reset();
        return false;
    }
    if (auto ok = reader_->seek_lsn(next_lsn); !ok) {
        spdlog::warn("shipper: {}", ok.error().message);
        reader_.reset();
        return false;
    }
    return true;
}

bool ShipWorker::ship_session(const LinkSession& session) {
    generation_ = session.generation;
    recover_dir_times(session.welcome.resume_lsn);
    last_complete_ = last_boundary_ = session.welcome.resume_lsn;
    uint64_t last_committed = session.welcome.durable_lsn;
    // What the last connection shipped is no evidence of what this server has.
    last_content_.reset();
    bytes_since_commit_ = 0;
    auto committed_at = Clock::now();
    bool gap_reported = false;
    bool positioned = false;

    while (!stopping_ && link_->alive(generation_)) {
        if (!positioned) {
            positioned = reopen_reader(last_complete_ + 1);
            if (!positioned) {
                std::this_thread::sleep_for(std::chrono::seconds(1));
                continue;
            }
        }
        std::vector<Record> window;
        bool read_error = false;
        while (window.size() < kWindowRecords) {
            if (!held_) {
                auto rec = reader_->next();
                if (!rec) {
                    spdlog::error("shipper to {}: reading the journal: {}", link_->endpoint().to_string(), rec.error().message);
                    read_error = true;
                    break;
                }
                if (!*rec) break;
                held_ = std::move(**rec);
            }
            if (held_->lsn > durable_.get()) break;  // see DurableMark
            window.push_back(std::move(*held_));
            held_.reset();
        }
        if (read_error) {
            // Retried from the last record sent, in case the damage was a
            // transient view of a segment being replaced (or of a batch
            // still being written).
            positioned = false;
            reader_.reset();
            held_.reset();
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            if (window.empty()) continue;
        }
        // A window cut short by a read error is not the end of the journal:
        // what is done at the end (directory mtimes that went stale) needs
        // every record before it shipped.
        bool at_end = window.size() < kWindowRecords && !read_error;
        if (window.empty()) {
            if (last_committed < last_boundary_ && link_->commit_in_flight() &&
                Clock::now() - committed_at < kCommitInterval) {
                // Caught up, with a commit still being made durable: commit
                // the rest once its ack is back (records that arrive in the
                // meantime are shipped first and covered by the same commit).
                if (!link_->wait_commits_acked(generation_, kCommitPatience)) return false;
                continue;
            }
            if (last_committed < last_boundary_) {
                if (!commit(last_boundary_)) return false;
                last_committed = last_boundary_;
                committed_at = Clock::now();
            }
            save_cursor(false);
            // The journal's growth wakes the wait (inotify); the timeout
            // only bounds how long a stop waits, and an idle agent wakes
            // four times a second rather than twenty.
            if (held_) {
                durable_.wait_for(held_->lsn, std::chrono::milliseconds(250));
                continue;
            }
            auto waited = reader_->wait(std::chrono::milliseconds(250));
            if (!waited) {
                spdlog::warn("shipper: {}", waited.error().message);
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
            }
            continue;
        }
        if (window.front().lsn != last_complete_ + 1 && !gap_reported) {
            spdlog::error("shipper to {}: the journal no longer holds LSNs {}..{} that this server has not applied; "
                          "the replica misses them until a rescan",
                          link_->endpoint().to_string(), last_complete_ + 1, window.front().lsn - 1);
            gap_reported = true;
        }
        saw_lsn_(window.back().lsn);
        // A shared fileset: a write travels as the file's whole version
        // (the blocks that differ from the server's copy). A server that
        // finds it concurrent with another agent's keeps it aside as a
        // copy of its own, which ranges patched onto the other version
        // would not be (conflict_resolver.hpp on the server).
        if (options_.receiver)
            for (auto& r : window)
                if (r.op == journal::Op::write && r.origin.empty()) r.ranges.clear();
        auto plan = plan_window(window);
        window_parent_mtimes_.clear();
        uint64_t pending = 0;
        for (size_t i = 0; i < window.size(); ++i)
            if (plan[i].action != ShipAction::skip && plan[i].action != ShipAction::send) pending += window[i].size.value_or(0);
        link_->set_pending_bytes(pending);
        // The window's frames go to the network thread a few at a time;
        // whatever is left goes when the window is done (or the worker waits).
        struct Held {
            ServerLink& link;
            explicit Held(ServerLink& l) : link(l) { link.hold(); }
            ~Held() { link.release(); }
        } held(*link_);
        for (size_t i = 0; i < window.size(); ++i) {
            if (stopping_) return false;
            at_boundary_ = plan[i].boundary;
            shipping_ = &window[i];
            bool shipped = ship_record(window[i], plan[i]);
            shipping_ = nullptr;
            if (!shipped) return false;
            follow_stale_dirs(window[i]);
            last_complete_ = window[i].lsn;
            if (plan[i].boundary) last_boundary_ = last_complete_;
            if (commit_due()) {
                if (!commit(last_boundary_)) return false;
                last_committed = last_boundary_;
                committed_at = Clock::now();
            }
        }
        link_->set_pending_bytes(0);
        if (at_end && !fix_stale_dirs()) return false;
        // One commit in flight at a time while records keep coming: the
        // server makes each one durable with a syncfs that holds up applying,
        // and commits queued behind one another paid that again and again.
        bool interval_over = Clock::now() - committed_at > kCommitInterval;
        if (last_committed < last_boundary_ && (at_end || interval_over) && (interval_over || !link_->commit_in_flight())) {
            if (!commit(last_boundary_)) return false;
            last_committed = last_boundary_;
            committed_at = Clock::now();
        }
    }
    return false;
}

// Every change the records of a window describe was made before the window
// was read, so a directory's mtime read once while shipping it is as fresh
// for all of them; a change made since is journaled in a later window, which
// reads it again. One open and stat per directory and window, instead of one
// per record (an eighth of the agent's CPU in a burst of links or renames).
std::optional<int64_t> ShipWorker::parent_mtime(const std::string& path) {
    auto slash = path.rfind('/');
    std::string parent = slash == std::string::npos ? std::string() : path.substr(0, slash);
    auto [it, fresh] = window_parent_mtimes_.try_emplace(parent);
    if (fresh) it->second = tree_->parent_mtime(path);
    if (it->second) read_dirs_[std::move(parent)] = std::chrono::steady_clock::now();
    return it->second;
}

void ShipWorker::note_stale_parent(const std::string& path) {
    auto slash = path.rfind('/');
    stale_dirs_.insert(slash == std::string::npos ? std::string() : path.substr(0, slash));
}

namespace {

// Where the directory at `d` is after `r` (a rename, rmdir or exchange);
// nullopt when `r` removed it.
std::optional<std::string> followed(const std::string& d, const Record& r) {
    if (r.op == Op::exchange && at_or_beneath(d, r.target)) return r.path + d.substr(r.target.size());
    if (!at_or_beneath(d, r.path)) return d;
    if (r.op == Op::rename || r.op == Op::exchange) return r.target + d.substr(r.path.size());
    return std::nullopt;
}

// The entries of `dirs` at or beneath `dir`, taken out of it.
template <class Map>
std::vector<std::pair<std::string, typename Map::mapped_type>> take_subtree(Map& dirs, const std::string& dir) {
    std::vector<std::pair<std::string, typename Map::mapped_type>> out;
    if (auto it = dirs.find(dir); it != dirs.end()) {
        out.emplace_back(it->first, it->second);
        dirs.erase(it);
    }
    auto [first, last] = subtree_range(dirs, dir);
    for (auto it = first; it != last; ++it) out.emplace_back(it->first, it->second);
    dirs.erase(first, last);
    return out;
}

}  // namespace

void ShipWorker::follow_stale_dirs(const Record& r) {
    if (r.op != Op::rename && r.op != Op::rmdir && r.op != Op::exchange) return;
    std::set<std::string> next;
    for (auto& d : stale_dirs_)
        if (auto to = followed(d, r)) next.insert(std::move(*to));
    stale_dirs_ = std::move(next);
    // Only what lies at or beneath the names moved changes: a burst of
    // renames beside a large tree costs no walk of all it read.
    auto moved = take_subtree(read_dirs_, r.path);
    if (r.op == Op::exchange) {
        auto other = take_subtree(read_dirs_, r.target);
        moved.insert(moved.end(), other.begin(), other.end());
    }
    for (auto& [d, when] : moved)
        if (auto to = followed(d, r)) {
            auto& at = read_dirs_[std::move(*to)];
            at = std::max(at, when);
        }
}

// The mtime sent for a directory was read through its path when its record
// shipped. A rename or exchange of that path (or of a directory above it)
// shipped later happened at the source before that read, or the read named
// the right directory: either way the one read may have been another, and
// the directory gets its own mtime once the shipper has caught up. A
// directory renamed is noted too: some filesystems (XFS) set the mtime of
// a directory an exchange moves to another parent, and an exchange the
// agent saw only in parts is journaled as renames.
void ShipWorker::note_moved_dirs(const Record& r) {
    if (r.op != Op::rename && r.op != Op::exchange) return;
    for (auto* name : {&r.path, &r.target}) {
        if (read_dirs_.count(*name)) stale_dirs_.insert(*name);
        auto [first, last] = subtree_range(read_dirs_, *name);
        for (auto it = first; it != last; ++it) stale_dirs_.insert(it->first);
    }
    if (r.op == Op::rename && tree_->is_directory(r.handle)) stale_dirs_.insert(r.path);
}

// What this worker knows of directory mtimes (stale_dirs_, read_dirs_)
// lives in its memory and names directories as the records it shipped
// leave them. A server that resumes before the last record shipped (it
// was killed, or the connection dropped with frames in flight) gets those
// records again, which would move those names a second time (an exchange
// sent twice swaps them back), and lost whatever was sent after its resume
// point: the setattrs that fixed directories named stale, among them. A
// worker that starts afresh (the agent restarted, after kill -9 too) knows
// nothing of what its predecessor left stale. Either way a directory could
// keep the time the server gave it for good. So every session starts from
// the records before its resume point: every directory they made or
// removed an entry in, within the time a directory is followed, is stale
// again under the name those records leave it (its mtime is set once the
// shipper has caught up), and what is known beyond that point is dropped.
void ShipWorker::recover_dir_times(uint64_t resume_lsn) {
    constexpr uint64_t kLookBack = 20000;  // records, at most
    if (last_complete_ != resume_lsn) {
        stale_dirs_.clear();
        read_dirs_.clear();
    }
    if (resume_lsn == 0) return;
    auto reader = journal::Reader::open(options_.journal_dir);
    if (!reader) return;
    uint64_t from = resume_lsn > kLookBack ? resume_lsn - kLookBack + 1 : 1;
    if (!(*reader)->seek_lsn(from) && !(*reader)->seek_head()) return;
    std::vector<Record> before;
    for (;;) {
        auto rec = (*reader)->next();
        if (!rec || !*rec || (**rec).lsn > resume_lsn) break;
        switch ((**rec).op) {
            case Op::create:
            case Op::mkdir:
            case Op::mknod:
            case Op::symlink:
            case Op::link:
            case Op::unlink:
            case Op::rmdir:
            case Op::rename:
            case Op::exchange: before.push_back(std::move(**rec)); break;
            default: break;
        }
    }
    if (before.empty()) return;
    int64_t since = before.back().time_ns - std::chrono::nanoseconds(kReadDirsKept).count();
    size_t noted = 0;
    for (auto& r : before) {
        if (r.time_ns < since) continue;
        // Applied from a server (shared filesets): the directory times are
        // the ones that server sent, set by this agent's receiver; sent
        // back they would be this agent's setattr of times it never made.
        // Its moves still move the names noted before it.
        if (!r.origin.empty()) {
            follow_stale_dirs(r);
            continue;
        }
        note_stale_parent(r.path);
        if (r.op == Op::link || r.op == Op::rename || r.op == Op::exchange) note_stale_parent(r.target);
        // As ship_record does: a directory moved has its own mtime set
        // (some filesystems change it when its parent changes).
        if ((r.op == Op::rename || r.op == Op::exchange) && tree_->is_directory(r.handle)) stale_dirs_.insert(r.path);
        if (r.op == Op::exchange && tree_->is_directory(r.replaced_handle)) stale_dirs_.insert(r.target);
        follow_stale_dirs(r);
        ++noted;
    }
    spdlog::debug("shipper to {}: resuming after LSN {}: {} directories to set the mtime of, from {} records before it",
                  link_->endpoint().to_string(), resume_lsn, stale_dirs_.size(), noted);
}

// Every entry change sets its directory's mtime on the replica to the
// source's, read at ship time. A record whose directory was renamed or
// removed by the time it ships cannot read it; once the shipper has caught
// up, every rename has travelled, so the path it followed names the same
// directory on both sides and its mtime can be sent as a setattr.
bool ShipWorker::fix_stale_dirs() {
    // A rename still queued in the agent when a directory's mtime was read
    // is journaled soon after; one read longer ago than that is not
    // followed any further.
    auto now = std::chrono::steady_clock::now();
    std::erase_if(read_dirs_, [&](const auto& e) { return now - e.second > kReadDirsKept; });
    if (stale_dirs_.empty()) return true;
    at_boundary_ = true;  // the window's end
    auto dirs = std::move(stale_dirs_);
    stale_dirs_.clear();
    for (auto& d : dirs) {
        auto mt = tree_->parent_mtime(d.empty() ? std::string("x") : d + "/x");
        if (!mt) {
            // Moved or removed at the source by a record not read yet: the
            // rename or rmdir, when it comes, says where it went.
            stale_dirs_.insert(d);
            continue;
        }
        // Read by its path like any other: a rename of it journaled late
        // makes it stale again (note_moved_dirs).
        read_dirs_[d] = now;
        proto::OpMsg m;
        m.lsn = last_complete_;
        m.kind = proto::OpKind::setattr;
        m.path = d;
        m.mtime_ns = mt;
        if (!send_op(std::move(m))) return false;
    }
    return true;
}

bool ShipWorker::send_op(proto::OpMsg&& op) {
    auto kind = op.kind;
    // Only a shared fileset's records have seen (and need their time, to
    // name a conflict copy): the others' frames stay as they were.
    if (shipping_ && op.lsn == shipping_->lsn && !shipping_->seen.empty()) {
        auto self = link_->endpoint().to_string();
        for (auto& s : shipping_->seen)
            if (s.server == self) {
                op.seen = s.lsn;
                op.time_ns = shipping_->time_ns;
            }
    }
    // Inside a span of the plan: applied, this is still no point to resume
    // after (ship_plan.hpp).
    if (!at_boundary_ && kind != proto::OpKind::content_begin && kind != proto::OpKind::content_data) op.more = true;
    auto path = op.path;
    auto frame = proto::encode_frame(proto::Message(std::move(op)));
    if (!frame) {
        // Cannot happen within the limits this worker keeps; if it does,
        // the record cannot travel and the connection starts over.
        link_->fail(generation_, fmt::format("cannot encode {} of '{}': {}", proto::op_kind_name(kind), path,
                                             frame.error().message));
        return false;
    }
    bytes_since_commit_ += frame->size();
    if (!link_->send(generation_, std::move(*frame))) return false;
    // Only an acknowledged commit opens the window: with it full, what is
    // sent and not committed yet is committed now, or no ack would come.
    if (!link_->window_open(options_.max_inflight_bytes) && bytes_since_commit_ > 0 && !commit(last_boundary_))
        return false;
    if (!link_->wait_window(generation_, options_.max_inflight_bytes)) return false;
    return !commit_due() || commit(last_boundary_);
}

bool ShipWorker::wire_is_bottleneck() const {
    switch (options_.compression) {
    case Compression::always: return true;
    case Compression::never: return false;
    case Compression::adaptive: break;
    }
    // A server on this machine: a backlog means it is short of CPU, which
    // compressing would take more of (for it too, to decompress).
    if (link_->same_host()) return false;
    return link_->backlogged(kCompressBacklogBytes);
}

bool ShipWorker::commit_due() const {
    // Commit at least every kCommitBytes so acknowledgements keep coming,
    // but one commit in flight at a time: each costs the server a syncfs,
    // and commits queued behind one another paid it again and again (after
    // a burst, once per 8 MiB still queued).
    return bytes_since_commit_ >= kCommitBytes && !link_->commit_in_flight();
}

bool ShipWorker::commit(uint64_t lsn) {
    auto frame = proto::encode_frame(proto::Commit{lsn});
    if (!frame) return false;
    bytes_since_commit_ = 0;
    return link_->send(generation_, std::move(*frame), lsn);
}

bool ShipWorker::ship_record(const Record& r, const PlannedRecord& p) {
    // Only the record right after a content sequence may lean on it.
    auto content_before = std::exchange(last_content_, std::nullopt);
    switch (p.action) {
        case ShipAction::skip: return true;
        case ShipAction::close_attrs:
            // The content just sent ended with this file's size, mode, owner
            // and mtime, read a moment ago: sending them again cost an open
            // and a stat here and a stat, truncate and utimes on the server,
            // per file of a tree copy. A change since then is a later record.
            if (content_before && !r.handle.empty() && content_before->path == r.path &&
                content_before->handle == r.handle)
                return true;
            return ship_close_attrs(r);
        case ShipAction::content_full:
        case ShipAction::content_delta:
        case ShipAction::write_delta: return ship_whole(r, p.action);
        case ShipAction::send: break;
    }
    proto::OpMsg m;
    m.lsn = r.lsn;
    m.path = r.path;
    auto attrs = [&] {
        m.mode = r.mode;
        m.uid = r.owner_uid;
        m.gid = r.owner_gid;
        m.mtime_ns = r.mtime_ns;
    };
    // The second name of a link, rename or exchange, with its parent's mtime.
    auto second_name = [&] {
        m.target = r.target;
        m.target_parent_mtime_ns = parent_mtime(r.target);
    };
    switch (r.op) {
        case Op::write: return ship_ranges(r, p.ranges);
        case Op::create:
            m.kind = proto::OpKind::create;
            attrs();
            if (!m.mode) attrs_by_handle(r, m, S_IFREG);
            break;
        case Op::mkdir:
            m.kind = proto::OpKind::mkdir;
            attrs();
            if (!m.mode) attrs_by_handle(r, m, S_IFDIR);
            break;
        case Op::mknod: m.kind = proto::OpKind::mknod; attrs(); m.rdev = r.rdev; break;
        case Op::symlink:
            m.kind = proto::OpKind::symlink;
            attrs();
            m.target = r.target;
            if (m.target.empty()) {
                // A link the agent could not read in time: read it now.
                auto now = tree_->link_target(r.handle);
                if (!now) {
                    spdlog::warn("shipper: skipping symlink '{}' (LSN {}): its text is unknown and it is gone", r.path,
                                 r.lsn);
                    return true;
                }
                m.target = *now;
            }
            break;
        case Op::link:
            // The first name is named as the agent read it. When it no
            // longer names the linked object here, and no record journaled
            // since says where that name went, it may name another object
            // on the server by the time this applies (a name reused before
            // the records were read, or one the server could not follow):
            // of another type the server would refuse it, but of the same
            // type it would be linked, and the second name would share an
            // inode with another object for good. The server cannot tell
            // (it knows no source handles): the second name travels as the
            // object itself instead.
            if (!r.handle.empty() && !tree_->holds(r.path, r.handle) && !link_explained_later(r))
                return ship_linked_apart(r);
            m.kind = proto::OpKind::link;
            second_name();
            // The type of the object linked, so the server links nothing
            // else: the first name may hold another object there by the
            // time the record arrives (a name reused before its records
            // were read). The object's type never changes; gone, the type
            // the agent knew it by, if any.
            if (auto type = tree_->file_type(r.handle)) m.mode = *type;
            else if (r.mode && (*r.mode & S_IFMT)) m.mode = *r.mode & S_IFMT;
            break;
        case Op::unlink: m.kind = proto::OpKind::unlink; break;
        case Op::rmdir: m.kind = proto::OpKind::rmdir; break;
        case Op::rename:
            m.kind = proto::OpKind::rename;
            second_name();
            m.replaced = r.replaced;
            break;
        case Op::exchange: m.kind = proto::OpKind::exchange; second_name(); break;
        case Op::setattr: m.kind = proto::OpKind::setattr; attrs(); m.atime_ns = r.atime_ns; break;
        case Op::truncate: {
            m.kind = proto::OpKind::truncate;
            m.size = r.size;
            // The file's mtime now, so it converges even with no close_write.
            auto f = tree_->open_file(r.path, r.handle);
            if (f && *f) m.mtime_ns = mtime_ns((*f)->st);
            break;
        }
        case Op::setxattr:
        case Op::removexattr:
            m.kind = r.op == Op::setxattr ? proto::OpKind::setxattr : proto::OpKind::removexattr;
            m.xattr_name = r.xattr_name;
            m.xattr_value = r.xattr_value;
            break;
        case Op::repair: m.kind = proto::OpKind::repair; break;
        default: return true;  // agent events: nothing to apply
    }
    bool moves_entries = m.kind != proto::OpKind::setattr && m.kind != proto::OpKind::truncate &&
                         m.kind != proto::OpKind::setxattr && m.kind != proto::OpKind::removexattr &&
                         m.kind != proto::OpKind::repair;
    if (moves_entries)
        m.parent_mtime_ns = parent_mtime(r.path);
    if (moves_entries && !m.parent_mtime_ns) note_stale_parent(r.path);
    if ((m.kind == proto::OpKind::rename || m.kind == proto::OpKind::link || m.kind == proto::OpKind::exchange) &&
        !m.target_parent_mtime_ns)
        note_stale_parent(r.target);
    note_moved_dirs(r);
    if (m.kind == proto::OpKind::exchange) {
        // Records before the exchange read their directory's mtime at ship
        // time through a path that may hold the other directory by now,
        // and some filesystems (XFS) set the mtime of a directory that an
        // exchange moves to another parent: each exchanged directory gets
        // its own mtime once the shipper has caught up (fix_stale_dirs;
        // later renames and exchanges carry it along, this one included:
        // each is noted under the name it had before, which
        // follow_stale_dirs then swaps. Noted under its new name, a
        // directory exchanged with a file sent its mtime to the file).
        if (tree_->is_directory(r.handle)) stale_dirs_.insert(r.path);
        if (tree_->is_directory(r.replaced_handle)) stale_dirs_.insert(r.target);
    }
    return send_op(std::move(m));
}

// A creation journaled without attributes: the agent knew the entry only
// from its create event (it had moved on, or another object had its name,
// when the event was read). Made with a default mode on the server (0700
// for a directory), it kept that mode whenever no later record named its
// attributes (one the source never had). The object is read by its handle
// now, as its content would be: a later change of it is a later record.
void ShipWorker::attrs_by_handle(const Record& r, proto::OpMsg& m, uint32_t type) const {
    auto st = tree_->stat_object(r.handle);
    if (!st || (st->st_mode & S_IFMT) != type) return;
    m.mode = st->st_mode;
    m.uid = st->st_uid;
    m.gid = st->st_gid;
    m.mtime_ns = mtime_ns(*st);
}

bool ShipWorker::ship_ranges(const Record& r, const std::vector<journal::ByteRange>& ranges) {
    auto f = tree_->open_file(r.path, r.handle);
    if (!f) {
        spdlog::warn("shipper: skipping write of '{}' (LSN {}): {}", r.path, r.lsn, f.error().message);
        return true;
    }
    if (!*f) return true;  // gone: a later record says what became of it
    auto& file = **f;
    uint64_t size = static_cast<uint64_t>(file.st.st_size);
    OpStream stream(*this, r, false, proto::ContentBase::empty);
    // The replica's copy may have data where the source now has a hole (a
    // punched one, or a write of zeros): the hole travels and is punched.
    SparseOut out{[&](uint64_t off, std::string&& bytes) { return stream.add(off, std::move(bytes)); },
                  [&](uint64_t off, uint64_t len) { return stream.add_hole(off, len); }};
    for (auto& range : journal::coalesce(ranges)) {
        if (range.offset >= size) continue;
        uint64_t end = range.length > size - range.offset ? size : range.offset + range.length;
        uint64_t now_end = end;
        auto extents = file_data(file, range.offset, end, r.path, &now_end);
        auto got = extents ? read_sparse(file.fd.get(), *extents, range.offset, now_end, kChunkBytes, r.path, out)
                           : Result<SparseRead>(fail(extents.error()));
        if (!got) {
            spdlog::warn("shipper: skipping write of '{}' (LSN {}): {}", r.path, r.lsn, got.error().message);
            return true;
        }
        if (got->stopped) return false;
        if (got->end < end) break;  // the file shrank: a later record says so
    }
    proto::OpMsg last;
    last.size = size;
    last.mtime_ns = mtime_ns(file.st);
    return stream.finish(std::move(last));
}

bool ShipWorker::ship_close_attrs(const Record& r) {
    auto f = tree_->open_file(r.path, r.handle);
    if (!f || !*f) return true;
    auto& st = (**f).st;
    proto::OpMsg m;
    m.lsn = r.lsn;
    m.path = r.path;
    m.kind = proto::OpKind::truncate;
    m.size = static_cast<uint64_t>(st.st_size);
    m.mode = st.st_mode;
    m.uid = st.st_uid;
    m.gid = st.st_gid;
    m.mtime_ns = mtime_ns(st);
    return send_op(std::move(m));
}

// The first name usually moved on at the source after the link, by records
// journaled since (the shipper reads behind the capture): the server then
// has the object at that name when the link arrives, and the link is right.
// The agent may still be journaling that move, for longer than any wait
// would cover when it is busy (a burst of events, a loaded machine): the
// capture is settled first, after which the move is in the journal if it
// ever will be. Without a capture to settle, the journal is read ahead
// again for a moment before the link is given up.
bool ShipWorker::link_explained_later(const Record& link) {
    constexpr size_t kReadAhead = 100000;
    constexpr int kTries = 6;
    constexpr auto kPause = std::chrono::milliseconds(50);
    uint64_t next = link.lsn + 1;
    size_t read = 0;
    auto reader = journal::Reader::open(options_.journal_dir);
    if (!reader) return false;
    // Whether a record from `next` on, as far as the journal holds now,
    // takes that name or a directory above it away.
    auto taken = [&] {
        if (!(*reader)->refresh() || !(*reader)->seek_lsn(next)) return false;
        for (; read < kReadAhead; ++read) {
            auto rec = (*reader)->next();
            if (!rec || !*rec) break;
            const Record& r = **rec;
            next = r.lsn + 1;
            switch (r.op) {
                case Op::rename:
                case Op::exchange:
                    if (at_or_beneath(link.path, r.path) || at_or_beneath(link.path, r.target)) return true;
                    break;
                case Op::unlink:
                case Op::rmdir:
                    if (at_or_beneath(link.path, r.path)) return true;
                    break;
                default: break;
            }
        }
        return false;
    };
    if (taken()) return true;
    if (options_.settle_capture && !stopping_) {
        // What is staged goes to the server before the wait: a server
        // killed meanwhile would replay whatever it had not received.
        link_->release();
        link_->hold();
        if (auto settled = options_.settle_capture())
            return tree_->holds(link.path, link.handle) || taken();
        else
            spdlog::debug("shipper: link '{}' -> '{}' (LSN {}): the capture did not settle ({}); reading ahead instead",
                          link.path, link.target, link.lsn, settled.error().message);
    }
    for (int attempt = 1; attempt < kTries && !stopping_; ++attempt) {
        std::this_thread::sleep_for(kPause);
        if (tree_->holds(link.path, link.handle) || taken()) return true;
    }
    return false;
}

// Never a link then: the object's own content (a regular file, or what is
// left of it: a placeholder when it is gone) or its own creation, with its
// attributes and compared xattrs, all read through the handle. Should the
// first name have named the object on the server after all (moved on at
// the source by a record the agent journals later still), the two names
// are two files there until a verify repairs the group: a file apart is
// the safe side of that doubt, another object's inode is not.
bool ShipWorker::ship_linked_apart(const Record& r) {
    spdlog::info("shipper: link '{}' -> '{}' (LSN {}): the first name no longer names the object; sent as itself",
                 r.path, r.target, r.lsn);
    Record own = r;
    own.path = r.target;
    own.target.clear();
    auto st = tree_->stat_object(r.handle);
    auto xattrs = st ? tree_->xattrs(r.handle) : std::map<std::string, std::string>{};
    // Several operations for one record: only the last may be a point to
    // resume after (see ship_plan.hpp), or a server killed in between
    // would resume past xattrs never set.
    bool boundary = at_boundary_;
    if (!xattrs.empty()) at_boundary_ = false;
    if (!st || S_ISREG(st->st_mode)) {
        own.op = Op::close_write;
        if (!ship_whole(own, ShipAction::content_full)) return false;
    } else {
        proto::OpMsg m;
        m.lsn = r.lsn;
        m.path = r.target;
        m.mode = st->st_mode;
        m.uid = st->st_uid;
        m.gid = st->st_gid;
        m.mtime_ns = mtime_ns(*st);
        if (S_ISLNK(st->st_mode)) {
            auto text = tree_->link_target(r.handle);
            if (!text) {  // gone since: a later record removes the name
                at_boundary_ = boundary;
                return true;
            }
            m.kind = proto::OpKind::symlink;
            m.target = *text;
        } else {
            m.kind = proto::OpKind::mknod;
            m.rdev = st->st_rdev;
        }
        m.parent_mtime_ns = parent_mtime(r.target);
        if (!m.parent_mtime_ns) note_stale_parent(r.target);
        if (!send_op(std::move(m))) return false;
    }
    size_t left = xattrs.size();
    for (auto& [name, value] : xattrs) {
        if (--left == 0) at_boundary_ = boundary;
        proto::OpMsg x;
        x.lsn = r.lsn;
        x.kind = proto::OpKind::setxattr;
        x.path = r.target;
        x.xattr_name = name;
        x.xattr_value = value;
        if (!send_op(std::move(x))) return false;
    }
    return true;
}

bool ShipWorker::ship_whole(const Record& r, ShipAction action) {
    auto f = tree_->open_file(r.path, r.handle);
    if (!f) {
        spdlog::warn("shipper: skipping content of '{}' (LSN {}): {}", r.path, r.lsn, f.error().message);
        return true;
    }
    if (!*f) {
        if (action != ShipAction::content_full) return true;
        // What the record names is no file at all (a late record carrying
        // the handle of what its path holds now, a device or a fifo made
        // by records before it): its own records made it on the server,
        // and an empty file holding the place would replace it there.
        if (tree_->names_other_than_a_file(r.path, r.handle)) return true;
        // The content stood in for the file's create, and the file is gone
        // by now. Its name still matters until a later record removes it:
        // a rename of it over another file must replace that file, not
        // find nothing to move. An empty file holds the place.
        proto::OpMsg m;
        m.lsn = r.lsn;
        m.kind = proto::OpKind::create;
        m.path = r.path;
        m.mode = S_IFREG | 0600;
        m.mtime_ns = r.mtime_ns;
        m.parent_mtime_ns = parent_mtime(r.path);
        if (!m.parent_mtime_ns) note_stale_parent(r.path);
        return send_op(std::move(m));
    }
    auto& file = **f;
    uint64_t size = static_cast<uint64_t>(file.st.st_size);

    std::optional<proto::HashReply> theirs;
    if (action != ShipAction::content_full) {
        auto reply = link_->request_hashes(generation_, r.path);
        if (!reply) return false;
        if (reply->exists) {
            uint32_t bs = reply->block_size;
            if (bs < 4096 || bs > kMaxBlockSize || (bs & (bs - 1)) != 0 || reply->hashes.size() % 16 != 0) {
                link_->fail(generation_, fmt::format("the server sent block hashes with block size {}", bs));
                return false;
            }
            theirs = std::move(*reply);
        } else if (action == ShipAction::content_delta) {
            action = ShipAction::content_full;
        }
    }
    bool content = action != ShipAction::write_delta;
    auto base = theirs && content ? proto::ContentBase::existing : proto::ContentBase::empty;
    OpStream stream(*this, r, content, base, static_cast<uint32_t>(file.st.st_mode));
    // Only the data extents are read, hashed and sent: a sparse file of
    // gigabytes costs what its data costs.
    // A file that shrank since it was opened is sent as it is now.
    auto extents = file_data(file, 0, size, r.path, &size);
    if (!extents) {
        spdlog::warn("shipper: skipping content of '{}' (LSN {}): {}", r.path, r.lsn, extents.error().message);
        return true;
    }
    uint64_t block = theirs ? theirs->block_size : kChunkBytes;
    size_t their_blocks = theirs ? theirs->hashes.size() / 16 : 0;
    for (uint64_t off = 0; off < size; off += block) {
        uint64_t end = std::min(off + block, size);
        uint64_t k = off / block;
        // Where the server's copy (patched in place or copied) has data, a
        // hole at the source must be punched; a new file, a file the server
        // does not have, the end past its copy and its own holes are holes
        // already.
        bool theirs_data = theirs && k < their_blocks && !theirs->hole_block(k);
        SparseOut out{[&](uint64_t o, std::string&& bytes) { return stream.add(o, std::move(bytes)); },
                      [&](uint64_t o, uint64_t len) { return !theirs_data || stream.add_hole(o, len); }};
        if (!has_data(*extents, off, end)) {
            if (!out.hole(off, end - off)) return false;
            continue;
        }
        std::optional<std::string> whole;
        if (theirs_data) {
            // Compared with the server's block (one that is all hole there
            // differs unless this one is all zeros, which would not travel):
            // hashed as the server did, the whole block, holes as zeros.
            auto data = read_range(file.fd.get(), off, static_cast<size_t>(end - off), r.path);
            if (!data) {
                spdlog::warn("shipper: skipping content of '{}' (LSN {}): {}", r.path, r.lsn, data.error().message);
                return true;  // a content sequence left unended is abandoned by the server
            }
            if (block_hash(data->data(), data->size()) == std::string_view(theirs->hashes).substr(k * 16, 16)) {
                if (data->size() < end - off) {
                    size = off + data->size();
                    break;
                }
                // The same bytes; but where this block has holes, the
                // server's may hold the zeros as data (written so, and
                // punched here since): those are punched there too, or the
                // replica keeps blocks its source freed.
                uint64_t at = off;
                for (auto& e : *extents) {
                    if (e.end() <= off) continue;
                    if (e.offset >= end) break;
                    if (e.offset > at && !stream.add_hole(at, e.offset - at)) return false;
                    at = std::max(at, e.end());
                }
                if (at < end && !stream.add_hole(at, end - at)) return false;
                continue;
            }
            whole = std::move(*data);
        }
        auto got = read_sparse(file.fd.get(), *extents, off, end, kChunkBytes, r.path, out,
                               whole ? std::optional<std::string_view>(*whole) : std::nullopt);
        if (!got) {
            spdlog::warn("shipper: skipping content of '{}' (LSN {}): {}", r.path, r.lsn, got.error().message);
            return true;
        }
        if (got->stopped) return false;
        if (got->end < end) {
            size = got->end;
            break;
        }
    }
    proto::OpMsg last;
    last.size = size;
    last.mtime_ns = mtime_ns(file.st);
    if (content) {
        last.mode = file.st.st_mode;
        last.uid = file.st.st_uid;
        last.gid = file.st.st_gid;
        last.parent_mtime_ns = parent_mtime(r.path);
        if (!last.parent_mtime_ns) note_stale_parent(r.path);
    }
    if (!stream.finish(std::move(last))) return false;
    if (content && size == static_cast<uint64_t>(file.st.st_size)) last_content_ = ShippedContent{r.path, r.handle};
    return true;
}

void ShipWorker::save_cursor(bool force) {
    if (!options_.register_consumers) return;
    uint64_t acked = link_->acked_lsn();
    if (acked == saved_cursor_) return;
    auto now = Clock::now();
    if (!force && now - cursor_saved_at_ < std::chrono::seconds(1)) return;
    cursor_saved_at_ = now;
    if (auto ok = journal::save_consumer_lsn(options_.journal_dir, consumer_name(link_->endpoint()), acked); !ok) {
        spdlog::warn("shipper: {}", ok.error().message);
        return;
    }
    saved_cursor_ = acked;
}

}  // namespace iz::replicator
