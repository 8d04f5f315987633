#include "fileset_journal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <optional>

#include "journal/reader.hpp"
#include "replicator/apply/applied_record.hpp"
#include "replicator/fs/beneath.hpp"
#include "forward_content.hpp"

namespace iz::replicator {

using journal::Op;
using journal::Record;
using proto::OpKind;

namespace {

// The protocol kind a journal record replays as; none for the records that
// only the journal holds (start, stop, overflow, ...). The mutation ops
// share their numbers with the wire; exchange and conflict do not.
std::optional<OpKind> kind_of(Op op) {
    auto k = static_cast<uint8_t>(op);
    if (op == Op::exchange) return OpKind::exchange;
    if (op == Op::conflict) return OpKind::conflict;
    if (k >= static_cast<uint8_t>(Op::create) && k <= static_cast<uint8_t>(Op::removexattr))
        return static_cast<OpKind>(k);
    return std::nullopt;
}

}  // namespace

Result<std::shared_ptr<FilesetJournal>> FilesetJournal::open(const std::filesystem::path& dir,
                                                              const std::filesystem::path& root,
                                                              std::string reserved_top, ResolverMemory memory) {
    std::shared_ptr<FilesetJournal> j(new FilesetJournal());
    j->memory_ = memory;
    j->dir_ = dir;
    j->root_ = root;
    j->reserved_top_ = std::move(reserved_top);
    journal::WriterOptions o;
    o.dir = dir;
    // Servers hold many filesets: no 64 MiB reserved up front for each.
    o.segment_bytes = 16ull << 20;
    o.preallocate = false;
    FilesetJournal* raw = j.get();
    o.on_durable = [raw](uint64_t lsn) {
        {
            std::lock_guard lock(raw->mu_);
            raw->durable_ = std::max(raw->durable_, lsn);
        }
        raw->cv_.notify_all();
    };
    int root_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) return fail(sys_error("open replica root", root.string(), errno));
    j->root_fd_.reset(root_fd);
    auto removed = RemovedStore::open(dir.parent_path() / "removed", root_fd);
    if (!removed) return fail(removed.error());
    j->removed_ = std::move(*removed);
    auto w = journal::Writer::open(std::move(o));
    if (!w) return fail(Error{fmt::format("fileset journal '{}': {}", dir.string(), w.error().message), w.error().sys_errno});
    j->writer_ = std::move(*w);
    // For good: appends leave the committer asleep until commit() or a
    // wait for durability wakes it (see the header).
    j->writer_->hold();
    {
        std::lock_guard lock(j->mu_);
        j->durable_ = j->writer_->durable_lsn();
    }
    // What each path's latest change was, for the conflict rules: a
    // restarted server decides as the one before it would have.
    if (j->writer_->head_lsn() > 0) {
        auto reader = journal::Reader::open(dir);
        if (!reader) return fail(Error{fmt::format("fileset journal '{}': {}", dir.string(), reader.error().message)});
        for (;;) {
            auto rec = (*reader)->next();
            if (!rec) return fail(Error{fmt::format("fileset journal '{}': {}", dir.string(), rec.error().message)});
            if (!*rec) break;
            const Record& r = **rec;
            j->learn(r, r.lsn, r.on_behalf);
            if (r.op == Op::conflict && r.target.find(".conflict-" + r.origin + "-") != std::string::npos)
                j->resolver_.note_kept_aside(r.lsn, r.origin, r.path, r.target, r.origin_lsn);
            // Nobody has reported what it saw yet: what is older than the
            // last `keep` records is read again for whoever needs it.
            if (r.lsn % j->memory_.prune_every == 0 && r.lsn > j->memory_.keep)
                j->resolver_.prune(r.lsn - j->memory_.keep);
        }
    }
    return j;
}

void FilesetJournal::learn(const Record& r, uint64_t lsn, const std::string& as) {
    learn(r.op, r.origin, r.path, r.target, lsn, as);
}

void FilesetJournal::learn(Op op, const std::string& origin, const std::string& path, const std::string& target,
                           uint64_t lsn, const std::string& as) {
    auto kind = kind_of(op);
    if (!kind) return;
    resolver_.note(lsn, as.empty() ? origin : as, *kind, path, target, !as.empty());
}

void FilesetJournal::maybe_prune() {
    if (++since_prune_ < memory_.prune_every) return;
    since_prune_ = 0;
    // What is not durable cannot be read again; what every agent that
    // reported since the last prune has seen, and the last `keep` records,
    // are what operations to come compare with.
    uint64_t floor = durable();
    if (auto least = resolver_.prune_point()) floor = std::min(floor, *least);
    uint64_t head = writer_->head_lsn();
    floor = std::min(floor, head > memory_.keep ? head - memory_.keep : 0);
    resolver_.prune(floor);
}

void FilesetJournal::recall(const std::string& agent, const proto::OpMsg& op) {
    auto from = resolver_.history_needed(agent, op);
    if (!from) return;
    uint64_t floor = resolver_.floor();
    ConflictHistory older;
    auto read = [&]() -> Status {
        auto reader = journal::Reader::open(dir_);
        if (!reader) return fail(reader.error());
        if (auto s = (*reader)->seek_lsn(*from + 1); !s) return s;
        for (;;) {
            auto rec = (*reader)->next();
            if (!rec) return fail(rec.error());
            if (!*rec || (*rec)->lsn > floor) return {};
            const Record& r = **rec;
            if (auto kind = kind_of(r.op))
                older.note(r.lsn, r.on_behalf.empty() ? r.origin : r.on_behalf, *kind, r.path, r.target);
        }
    };
    if (auto s = read(); !s) {
        // Decided by what is kept (as if it had seen the floor): a
        // concurrent change older than that is taken as seen.
        spdlog::warn("fileset journal '{}': reading records {}..{} for agent '{}' (behind what the conflict rules keep): "
                     "{}; its operation is compared with the last {} records only",
                     dir_.string(), *from + 1, floor, agent, s.error().message, memory_.keep);
        return;
    }
    resolver_.load_history(agent, *from, std::move(older));
}

void FilesetJournal::note_conflict(const std::string& agent, const proto::OpMsg& op, const ConflictDecision& d) {
    Record r;
    r.op = Op::conflict;
    r.time_ns = op.time_ns.value_or(0);
    r.path = op.path;
    r.target = d.copy;
    r.origin = agent;
    r.origin_lsn = op.lsn;
    r.message = fmt::format("concurrent with {} (server LSN {}): {}'s version stays at '{}', {}'s LSN {} is kept as '{}'",
                            d.winner_origin, d.winner_lsn, d.winner_origin, op.path, agent, op.lsn, d.copy);
    (void)writer_->append(std::move(r));
}

void FilesetJournal::note_attribute_conflict(const std::string& agent, const proto::OpMsg& op,
                                             const ConflictDecision& d) {
    Record r;
    r.op = Op::conflict;
    r.time_ns = op.time_ns.value_or(0);
    r.path = op.path;
    r.origin = d.winner_origin;
    r.message = fmt::format("{} of '{}' by {} (its LSN {}) did not see the change of {} (server LSN {}): {}'s value "
                            "is the one kept, {}'s is replaced (it is the record at server LSN {})",
                            proto::op_kind_name(op.kind), op.path, agent, op.lsn, d.winner_origin, d.winner_lsn, agent,
                            d.winner_origin, d.winner_lsn);
    (void)writer_->append(std::move(r));
}

FilesetJournal::~FilesetJournal() {
    if (writer_) (void)writer_->close();
}

void FilesetJournal::note_applied(const std::string& agent, const proto::OpMsg& op, const std::string& as,
                                  const FileHandle* written) {
    std::vector<journal::ByteRange> ranges;
    {
        std::lock_guard lock(mu_);
        ranges = written_ranges_.add(as.empty() ? agent : as, op);
    }
    // A record the server makes (a copy kept aside, an update sent back)
    // goes whole: its receivers' copies need not be what it patched.
    if (!as.empty()) ranges.clear();
    auto r = journal_record_of(op, agent, op.lsn);
    if (!r) return;
    if (r->op == Op::write) r->ranges = std::move(ranges);
    // The resolver learns it from `op`, which holds the same path and
    // target (no copy of the record).
    note_record(std::move(*r), op.path, op.target, as, written);
}

void FilesetJournal::note_record(Record&& r, const std::string& path, const std::string& target,
                                 const std::string& as, const FileHandle* written) {
    // The parts of one range write are one change for those who receive it
    // (a write in parts is forwarded whole): the first part is enough.
    bool write = r.op == Op::write;
    std::string agent = r.origin;
    {
        std::lock_guard lock(mu_);
        if (write && last_write_ && last_write_->origin == agent && last_write_->origin_lsn == r.origin_lsn &&
            last_write_->path == path)
            return;
        if (write) last_write_ = Record{.path = path, .origin = agent, .origin_lsn = r.origin_lsn};
        else last_write_.reset();
    }
    if (write) {
        // The file's handle: by the time it is forwarded the file may have
        // moved (a rename follows), and its content is read through it.
        if (written && !written->empty()) r.handle = *written;
        else if (auto node = open_beneath(root_fd_.get(), path, O_PATH | O_NOFOLLOW))
            if (auto h = handle_of(node->get(), "", path)) r.handle = *h;
    }
    // The record goes to the writer whole.
    Op kind = r.op;
    if (!as.empty() && as != agent) r.on_behalf = as;
    auto lsn = writer_->append(std::move(r));  // a failed writer shows in flush()
    if (!lsn) return;
    learn(kind, agent, path, target, *lsn, as);
    maybe_prune();
    noted(agent, *lsn);
}

void FilesetJournal::noted(const std::string& origin, uint64_t lsn) {
    {
        std::lock_guard lock(mu_);
        noted_by_origin_[origin] = lsn;
    }
    cv_.notify_all();  // a subscriber waiting for others' records
}

Status FilesetJournal::copy_current(const std::string& from, const std::string& to) {
    auto src = open_beneath(root_fd_.get(), from, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    if (!src) return fail(src.error());
    struct stat st{};
    if (::fstat(src->get(), &st) != 0) return fail(sys_error("stat", from, errno));
    if (!S_ISREG(st.st_mode)) return fail(make_error(fmt::format("'{}' is no regular file to copy", from)));
    auto dst = open_beneath(root_fd_.get(), to, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, st.st_mode & 07777);
    if (!dst) return fail(dst.error());
    for (off_t left = st.st_size; left > 0;) {
        ssize_t n = ::copy_file_range(src->get(), nullptr, dst->get(), nullptr, static_cast<size_t>(left), 0);
        if (n < 0) return fail(sys_error("copy to the conflict copy", to, errno));
        if (n == 0) break;
        left -= n;
    }
    if (::fchown(dst->get(), st.st_uid, st.st_gid) != 0 || ::fchmod(dst->get(), st.st_mode & 07777) != 0)
        return fail(sys_error("copy attributes to", to, errno));
    return {};
}

uint64_t FilesetJournal::commit() {
    uint64_t head = writer_->head_lsn();
    // release() wakes the committer for what is pending; holding again at
    // once leaves it asleep for the records noted after.
    writer_->release();
    writer_->hold();
    return head;
}

Status FilesetJournal::wait_durable(uint64_t lsn) { return writer_->wait_durable(lsn); }

Status FilesetJournal::flush() { return writer_->flush(); }

journal::WriterStats FilesetJournal::stats() const { return writer_->stats(); }

uint64_t FilesetJournal::head() const { return writer_->head_lsn(); }

// The writer's own: durable_ (for the waits below) moves in a callback
// that runs only after a wait_durable() or flush() has returned.
uint64_t FilesetJournal::durable() const { return writer_->durable_lsn(); }

uint64_t FilesetJournal::wait_durable_beyond(uint64_t lsn, std::chrono::milliseconds timeout,
                                             const std::string& subscriber) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto others_noted = [&] {
        for (const auto& [origin, last] : noted_by_origin_)
            if (origin != subscriber && last > lsn) return true;
        return false;
    };
    std::unique_lock lock(mu_);
    if (!cv_.wait_until(lock, deadline, [&] { return durable_ > lsn || others_noted(); })) {
        // Noted, and no commit for a whole wait (an agent gone before its
        // Commit, or only the subscriber's own records): made durable now.
        lock.unlock();
        if (writer_->head_lsn() > lsn) commit();
        return durable();
    }
    if (durable_ > lsn) return durable_;
    if (cv_.wait_for(lock, kForwardGrace, [&] { return durable_ > lsn; })) return durable_;
    lock.unlock();
    commit();
    lock.lock();
    cv_.wait_until(lock, std::max(deadline, std::chrono::steady_clock::now() + kForwardGrace),
                   [&] { return durable_ > lsn; });
    return durable_;
}

namespace {

std::optional<int64_t> dir_mtime_of(int root_fd, const std::string& path) {
    if (path.empty()) return std::nullopt;
    auto [parent, name] = split_parent(path);
    auto fd = open_beneath(root_fd, parent, O_PATH | O_DIRECTORY);
    if (!fd) return std::nullopt;
    struct stat st{};
    if (::fstat(fd->get(), &st) != 0) return std::nullopt;
    return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

int64_t ns_of(const struct timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec; }

}  // namespace

Result<std::vector<proto::Forward>> forwards_of(const Record& r, int root_fd, const std::string& reserved_top,
                                                bool as_ranges) {
    std::vector<proto::Forward> out;
    auto part = [&](OpKind kind) -> proto::OpMsg& {
        proto::Forward f;
        f.origin = r.origin;
        f.origin_lsn = r.origin_lsn;
        f.op.lsn = r.lsn;
        f.op.kind = kind;
        f.op.path = r.path;
        out.push_back(std::move(f));
        return out.back().op;
    };
    auto noop = [&]() {
        out.clear();
        auto& m = part(OpKind::noop);
        m.path.clear();
        return out;
    };
    // A write sent as ranges whose file the server replaced since (a later
    // write of it makes a new file): its ranges are read by no forward, so
    // the noop names the path, and the agent no longer takes its copy there
    // for one ranges patch (the next write of it comes whole).
    auto gone = [&]() {
        noop();
        if (as_ranges && !r.ranges.empty()) out.back().op.path = r.path;
        return out;
    };
    if (!check_wire_path(r.path, true, reserved_top)) return noop();

    if (r.op == Op::write) {
        // Through the handle when the record has one: the file may have
        // moved since, and its content is sent where the record puts it
        // (the records after it move it). Gone: a later record says so.
        Result<UniqueFd> fd = fail(make_error("no handle"));
        if (!r.handle.empty()) {
            int raw = open_by_handle(root_fd, r.handle, O_RDONLY | O_CLOEXEC);
            if (raw < 0) return gone();
            fd = UniqueFd(raw);
        } else {
            fd = open_beneath(root_fd, r.path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
            if (!fd) return gone();
        }
        struct stat st{};
        if (::fstat(fd->get(), &st) != 0)
            return fail(sys_error("stat replica file", r.path, errno));
        if (!S_ISREG(st.st_mode)) return gone();
        uint64_t size = static_cast<uint64_t>(st.st_size);
        static const std::vector<journal::ByteRange> kWhole;
        auto content = forward_content(fd->get(), size, as_ranges ? r.ranges : kWhole, r.path);
        if (!content) return fail(content.error());
        for (auto& c : *content) {
            auto& m = part(c.kind);
            if (c.kind == OpKind::content_begin) m.mode = st.st_mode;  // made with the file's mode
            m.base = c.base;
            m.more = c.more;
            m.extents = std::move(c.extents);
            m.holes = std::move(c.holes);
        }
        auto& end = part(OpKind::content_end);
        end.mode = st.st_mode;
        end.uid = st.st_uid;
        end.gid = st.st_gid;
        end.mtime_ns = ns_of(st.st_mtim);
        end.size = size;
        end.parent_mtime_ns = dir_mtime_of(root_fd, r.path);
        return out;
    }

    auto found = kind_of(r.op);
    if (!found) return noop();
    OpKind kind = *found;
    auto& m = part(kind);
    if (kind == OpKind::conflict) {
        // A note: what stayed where and where the other version went (the
        // records after it make the copy).
        m.target = r.target;
        m.note = r.message;
        m.time_ns = r.time_ns;
        return out;
    }
    m.target = r.target;
    m.mode = r.mode;
    m.uid = r.owner_uid;
    m.gid = r.owner_gid;
    m.atime_ns = r.atime_ns;
    m.mtime_ns = r.mtime_ns;
    m.size = r.size;
    m.rdev = r.rdev;
    m.replaced = r.replaced;
    m.xattr_name = r.xattr_name;
    m.xattr_value = r.xattr_value;
    m.parent_mtime_ns = dir_mtime_of(root_fd, r.path);
    if (kind == OpKind::rename || kind == OpKind::link || kind == OpKind::exchange)
        m.target_parent_mtime_ns = dir_mtime_of(root_fd, r.target);
    return out;
}

}  // namespace iz::replicator
