#include <fcntl.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <utility>

#include "apply_impl.hpp"
#include "replicator/fs/block_hash.hpp"
#include "replicator/fs/file_extents.hpp"

namespace iz::replicator {

std::string_view outcome_name(Outcome o) {
    switch (o) {
        case Outcome::applied: return "applied";
        case Outcome::skipped: return "skipped";
        case Outcome::refused: return "refused";
        case Outcome::failed: return "failed";
        case Outcome::rejected: return "rejected";
    }
    return "unknown";
}

Result<std::optional<struct stat>> stat_at(int dirfd, const std::string& name, const std::string& path) {
    struct stat st{};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return std::optional<struct stat>(st);
    if (errno == ENOENT) return std::optional<struct stat>{};
    return fail(sys_error("stat", path, errno));
}

namespace {

// Copies [off, off+len) of `in` to the same offset of `out`; false when
// `in` ended first.
Result<bool> copy_range(int in, int out, uint64_t off, uint64_t len, const std::string& what) {
    loff_t in_off = static_cast<loff_t>(off), out_off = static_cast<loff_t>(off);
    const uint64_t end = off + len;
    while (static_cast<uint64_t>(in_off) < end) {
        ssize_t n = ::copy_file_range(in, &in_off, out, &out_off, end - static_cast<uint64_t>(in_off), 0);
        if (n > 0) continue;
        if (n == 0) return false;  // the source shrank
        if (errno == EINTR) continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
            return fail(sys_error("copy", what, errno));
        // No copy offload here: plain reads and writes.
        std::string buf(static_cast<size_t>(std::min<uint64_t>(1 << 20, end - static_cast<uint64_t>(in_off))), '\0');
        while (static_cast<uint64_t>(in_off) < end) {
            ssize_t r = ::pread(in, buf.data(), std::min<uint64_t>(buf.size(), end - static_cast<uint64_t>(in_off)), in_off);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) return fail(sys_error("read to copy", what, errno));
            if (r == 0) return false;
            for (ssize_t done = 0; done < r;) {
                ssize_t w = ::pwrite(out, buf.data() + done, static_cast<size_t>(r - done), out_off + done);
                if (w < 0 && errno == EINTR) continue;
                if (w < 0) return fail(sys_error("write copy of", what, errno));
                done += w;
            }
            in_off += r;
            out_off += r;
        }
    }
    return true;
}

}  // namespace

Status copy_bytes(int in, int out, uint64_t len, const std::string& what) {
    // Only the data extents: copying holes would fill them (copy_file_range
    // on ext4 writes the zeros it reads), and a sparse file of gigabytes
    // would take that much room on the server at every delta.
    auto extents = data_extents(in, 0, len, what);
    if (!extents) return fail(extents.error());
    uint64_t copied = 0;
    for (auto& e : *extents) {
        auto whole = copy_range(in, out, e.offset, e.length, what);
        if (!whole) return fail(whole.error());
        copied = e.end();
        if (!*whole) return {};  // the source shrank: as much as it had
    }
    // Trailing holes: the size says they are there.
    if (copied < len && ::ftruncate(out, static_cast<off_t>(len)) != 0)
        return fail(sys_error(fmt::format("extend the copy to {} bytes of", len), what, errno));
    return {};
}

int64_t mtime_of(const struct stat& st) {
    return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

struct timespec to_timespec(int64_t ns) {
    struct timespec ts{};
    ts.tv_sec = ns / 1'000'000'000;
    ts.tv_nsec = ns % 1'000'000'000;
    if (ts.tv_nsec < 0) {
        ts.tv_nsec += 1'000'000'000;
        ts.tv_sec -= 1;
    }
    return ts;
}

Result<std::unique_ptr<Applier>> Applier::open(ApplierOptions options) {
    auto a = std::make_unique<ApplierImpl>(std::move(options));
    if (auto ok = a->init(); !ok) return fail(ok.error());
    return std::unique_ptr<Applier>(std::move(a));
}

Status ApplierImpl::init() {
    std::error_code ec;
    std::filesystem::create_directories(opts_.root, ec);
    if (ec) return fail(Error{fmt::format("create fileset root '{}': {}", opts_.root.string(), ec.message()), ec.value()});
    int fd = ::open(opts_.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail(sys_error("open fileset root", opts_.root.string(), errno));
    root_fd_.reset(fd);
    dirs_.emplace(root_fd_.get());
    auto state = AppliedState::open(opts_.state_dir);
    if (!state) return fail(state.error());
    state_.emplace(std::move(*state));
    recovering_ = state_->unclean_at_open();
    recover_through_ = state_->applied_at_most_at_open();
    auto memory = FileMemory::open(opts_.state_dir);
    if (!memory) return fail(memory.error());
    memory_ = std::move(*memory);
    auto exchanges = ExchangeNotes::open(opts_.state_dir);
    if (!exchanges) return fail(exchanges.error());
    exchanges_.emplace(std::move(*exchanges));
    read_replay_note();
    resume();
    return {};
}

namespace {

bool is_state_error(int err) {
    switch (err) {
        case ENOENT:
        case ENOTDIR:
        case EEXIST:
        case ENOTEMPTY:
        case EISDIR:
        case EINVAL:
        case ENODATA:
        case ENOTSUP:
            return true;
        default:
            return false;
    }
}

// What trying the same operation again can never get past: a name or path
// this server's filesystem or layout refuses, a file beyond what it holds.
// EXDEV: the two names of a rename, exchange or link lie on different
// filesystems of the replica (something is mounted inside its root); it
// failed, the connection was dropped and the agent sent it again, for as
// long as the mount stays, nothing after it arriving. EMLINK: the file
// already has as many links (the directory as many subdirectories) as the
// replica's filesystem takes; it was skipped and nobody told. Neither goes
// away by itself, so both are left out and reported.
// EPERM, EACCES: the server (root, or root of its user namespace) meets
// them only where the replica forbids the change itself: an entry made in
// or removed from a directory that is immutable or append-only (chattr +i,
// +a), an entry that is itself, a device node its user namespace may not
// make, an inode its user namespace does not own. EBUSY: a mount point on
// the replica in the way of a removal or rename. None of them says the tree
// is not yet in the state the record expects (a replay meets the same flag
// or mount), and each stays until someone lifts it on the server: skipped,
// the replica went on differing with only an info line in the server's log
// and `izwatch sync` saying done. So they are left out and reported too; a
// verify --repair brings the source's version once the cause is gone.
// ETXTBSY: a program on the server runs the replica's file, so its bytes
// cannot change in place. Such a file is replaced instead (replace_running),
// unless it has several names, which a replacement would split. That write
// was skipped as a state error, with the replica different and `izwatch
// sync` saying done. It is not retried either: the program may run for
// days, and every record after this one would wait for it. Left out and
// reported; verify --repair brings the source's bytes once it has ended.
bool is_permanent(const Error& e) {
    return is_rejection(e) || e.sys_errno == ENAMETOOLONG || e.sys_errno == EILSEQ || e.sys_errno == EFBIG ||
           e.sys_errno == EXDEV || e.sys_errno == EMLINK || e.sys_errno == EPERM || e.sys_errno == EACCES ||
           e.sys_errno == EBUSY || e.sys_errno == ETXTBSY;
}

// What an administrator reading the rejection needs besides the errno text.
std::string why_permanent(const Error& e) {
    switch (e.sys_errno) {
        case EXDEV: return e.message + " (the names are on different filesystems of the replica: something is mounted inside it)";
        case EMLINK: return e.message + " (more links than the replica's filesystem takes)";
        case EPERM:
        case EACCES:
            return e.message + " (the replica forbids it: an immutable or append-only flag on the entry or its "
                               "directory, or a right the server lacks there)";
        case EBUSY: return e.message + " (a mount point on the replica is in the way)";
        case ETXTBSY:
            return e.message + " (a program on the server is running the replica's file, whose bytes cannot change "
                               "in place meanwhile, and its other names keep it from being replaced)";
        default: return e.message;
    }
}

bool needs_target(proto::OpKind k) {
    return k == proto::OpKind::link || k == proto::OpKind::rename || k == proto::OpKind::exchange;
}


bool may_be_root(proto::OpKind k) {
    using K = proto::OpKind;
    return k == K::setattr || k == K::setxattr || k == K::removexattr || k == K::noop || k == K::repair;
}

}  // namespace

ApplyResult ApplierImpl::apply(const OpMsg& op) {
    ApplyResult result;
    conflicts_.clear();
    current_lsn_ = op.lsn;
    if (op.lsn > replay_through_ && !named_in_replay_.empty()) named_in_replay_.clear();
    Status s;
    bool rest = op.kind == proto::OpKind::content_data || op.kind == proto::OpKind::content_end;
    if (rest && !content_ && skipped_content_ && skipped_content_->lsn == op.lsn && skipped_content_->path == op.path) {
        // The rest of content whose beginning was skipped or rejected goes
        // with it, whatever its path would say: reported once.
        s = skip_with_beginning(op);
        result.with_beginning = true;
    } else {
        s = check_wire_path(op.path, may_be_root(op.kind), opts_.reserved_top);
        if (s && needs_target(op.kind)) s = check_wire_path(op.target, false, opts_.reserved_top);
        // The line that survives a kill says this far may be applied.
        if (s) s = state_->announce(op.lsn);
        if (s) {
            s = dispatch(op);
            // The path passed the checks that need no tree, and resolving
            // it found a symlink: replayed, an operation meets the tree as
            // later ones left it, and a directory of its path may be a
            // symlink by now. Nothing was applied; refused, the connection
            // was dropped, the sender resumed at the same place and met the
            // same symlink, forever; rejected, a sync would report as left
            // out an operation that may well have been applied before the
            // stop. (The rest of a content sequence is refused for what the
            // stream holds, not for a path.)
            if (!s && (is_refusal(s.error()) || is_through_symlink(s.error())) && !rest &&
                op.lsn <= std::max(recover_through_, applied_through_))
                s = fail(Error{fmt::format("{} (replayed): {}", proto::op_kind_name(op.kind), s.error().message),
                               ENOTDIR});
        }
    }
    if (op.kind == proto::OpKind::content_begin && !s && !is_refusal(s.error()) &&
        (is_state_error(s.error().sys_errno) || is_permanent(s.error())))
        skipped_content_ = SkippedContent{op.lsn, op.path, s.error().message};
    result.conflicts = std::move(conflicts_);
    conflicts_.clear();
    if (s) result.written = std::move(written_);
    written_ = FileHandle{};
    if (!s) {
        const Error& e = s.error();
        result.message = e.message;
        if (is_refusal(e)) result.outcome = Outcome::refused;
        else if (is_permanent(e)) {
            result.outcome = Outcome::rejected;
            result.message = why_permanent(e);
            // The step that failed may name only the final component, or a
            // temporary name beside it (an open beneath the parent): the
            // agent's status and sync tell it to a person, who needs the path.
            if (result.message.find(fmt::format("'{}'", op.path)) == std::string::npos)
                result.message = fmt::format("{} '{}': {}", proto::op_kind_name(op.kind), op.path, result.message);
        }
        else if (is_state_error(e.sys_errno)) result.outcome = Outcome::skipped;
        else result.outcome = Outcome::failed;
        if (result.outcome == Outcome::refused || result.outcome == Outcome::failed) {
            abort_content();
        } else if (result.outcome == Outcome::rejected && content_) {
            auto rest_of_it = std::move(skipped_content_);
            abort_content();
            skipped_content_ = std::move(rest_of_it);
        }
    }
    if (result.outcome != Outcome::refused && result.outcome != Outcome::failed) {
        applied_through_ = std::max(applied_through_, op.lsn);
        replayed_through_ = std::max(replayed_through_, op.lsn);
        // A replay that got through: what is applied from here on is the
        // first run's. Left saying the replay was under way, the note made
        // a start after a kill take all of it for what the replay made
        // again, and a replayed rename moved it over what the first run
        // had put at its target.
        if (replay_until_ > 0 && replayed_through_ >= replay_until_ && !replay_noted_through_) {
            replay_noted_through_ = true;
            note_replay();
        }
    }
    bool completes = !op.more && op.kind != proto::OpKind::content_begin && op.kind != proto::OpKind::content_data;
    if (completes && result.outcome != Outcome::refused && result.outcome != Outcome::failed) {
        // Once progress names this operation it is never replayed after a
        // kill: nothing of it may still be held back then.
        Status ok = state_->progress_due() ? settle_deferred() : Status{};
        if (ok) ok = state_->note_progress(op.lsn);
        if (!ok) {
            result.outcome = Outcome::failed;
            result.message = ok.error().message;
        }
    }
    return result;
}

Status ApplierImpl::dispatch(const OpMsg& op) {
    using K = proto::OpKind;
    // A content sequence the sender did not end (it could not read the rest)
    // is abandoned: nothing of it becomes visible.
    if (content_ && op.kind != K::content_data && op.kind != K::content_end) abort_content();
    if (op.kind != K::content_data && op.kind != K::content_end) skipped_content_.reset();
    // These may move or remove a directory: no directory is kept open, and
    // no deferred mtime set later, across them.
    if (op.kind == K::rename || op.kind == K::exchange || op.kind == K::rmdir) {
        if (auto ok = dirs_->flush(); !ok) return ok;
        Status s = dispatch_kind(op);
        Status flushed = dirs_->flush();
        return s ? flushed : s;
    }
    // An mtime set explicitly comes after the ones deferred before it.
    if (op.kind == K::setattr) {
        if (auto ok = dirs_->settle(op.path); !ok) return ok;
    }
    return dispatch_kind(op);
}

Status ApplierImpl::dispatch_kind(const OpMsg& op) {
    using K = proto::OpKind;
    switch (op.kind) {
        case K::noop: return {};
        case K::conflict: {
            // A note for the receiver's journal (protocol.hpp); its path is
            // resolved all the same, and one through a symlink left out.
            auto p = open_parent(root_fd_.get(), op.path);
            if (!p && (is_refusal(p.error()) || is_rejection(p.error()))) return fail(p.error());
            return {};
        }
        // The operations that follow make `path` what the source holds; what
        // the server holds there now is known to differ, and replacing it is
        // the point, not a conflict.
        case K::repair: {
            // Resolved all the same: a path through a symlink is left out
            // (rejected) here as by every other operation.
            auto p = open_parent(root_fd_.get(), op.path);
            if (!p && (is_refusal(p.error()) || is_rejection(p.error()))) return fail(p.error());
            memory_->forget(op.path);
            return {};
        }
        case K::create: return do_create(op);
        case K::mkdir: return do_mkdir(op);
        case K::mknod: return do_mknod(op);
        case K::symlink: return do_symlink(op);
        case K::link: return do_link(op);
        case K::unlink: return remove_entry(op, false);
        case K::rmdir: return remove_entry(op, true);
        case K::rename: return do_rename(op);
        case K::exchange: return do_exchange(op);
        case K::setattr: return do_setattr(op);
        case K::write:
        case K::truncate: return do_write(op);
        case K::setxattr:
        case K::removexattr: return do_xattr(op);
        case K::content_begin: return do_content_begin(op);
        case K::content_data: return do_content_data(op);
        case K::content_end: return do_content_end(op);
    }
    return fail(refusal(fmt::format("unknown op kind {}", static_cast<int>(op.kind))));
}

Result<proto::HashReply> ApplierImpl::hashes(const proto::HashRequest& req) {
    proto::HashReply reply;
    reply.id = req.id;
    if (auto ok = check_wire_path(req.path, false, opts_.reserved_top); !ok) {
        if (is_rejection(ok.error())) return reply;  // nothing there the source may have
        return fail(ok.error());
    }
    // A path through a symlink (a rejection) has no file of the source's
    // at its end either: none is described, and the content that follows
    // the reply is left out like every record for that path.
    auto parent = open_parent(root_fd_.get(), req.path);
    if (!parent) {
        if (is_refusal(parent.error())) return fail(parent.error());
        return reply;  // no parent, no file
    }
    auto node = open_beneath(parent->dir.get(), parent->name, O_PATH | O_NOFOLLOW);
    if (!node) {
        if (is_refusal(node.error())) return fail(node.error());
        return reply;
    }
    struct stat st{};
    if (::fstat(node->get(), &st) != 0) return fail(sys_error("stat", req.path, errno));
    if (!S_ISREG(st.st_mode)) return reply;
    int fd = ::open(fd_path(node->get()).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(sys_error("open for block hashes", req.path, errno));
    UniqueFd rfd(fd);
    reply.exists = true;
    reply.size = static_cast<uint64_t>(st.st_size);
    reply.block_size = block_size_for(reply.size);
    auto h = hash_file_blocks(rfd.get(), reply.size, reply.block_size, req.path);
    if (!h) return fail(h.error());
    reply.hashes = std::move(h->hashes);
    reply.hole_blocks = std::move(h->hole_blocks);
    return reply;
}

void ApplierImpl::begin_commit(uint64_t lsn, std::function<void()> woken) {
    settle_sync(true);
    // Content of an LSN this commit covers that was never ended: its sender
    // gave up on it, and it must not lie staged past a point the applied
    // LSN says is done.
    if (content_ && content_->lsn <= lsn) abort_content();
    if (auto ok = dirs_->flush(); !ok) {
        finished_.push_back(CommitOutcome{lsn, std::move(ok)});
        if (woken) woken();
        return;
    }
    auto log = memory_->begin_sync();
    if (!log) {
        // The file memory is due for compaction: made here and now.
        finished_.push_back(CommitOutcome{lsn, commit(lsn)});
        if (woken) woken();
        return;
    }
    if (auto begun = state_->begin_sync(lsn); !begun) {
        memory_->release();
        finished_.push_back(CommitOutcome{lsn, std::move(begun)});
        if (woken) woken();
        return;
    }
    syncing_lsn_ = lsn;
    sync_.start(root_fd_.get(), std::move(*log), opts_.root.string(), std::move(woken));
}

void ApplierImpl::settle_sync(bool wait) {
    if (!syncing_lsn_) return;
    std::optional<Status> st = wait ? std::optional<Status>(sync_.wait()) : sync_.take();
    if (!st) return;
    uint64_t lsn = *std::exchange(syncing_lsn_, std::nullopt);
    // What the memory held back goes to the log, and deferred directory
    // mtimes are set, before the applied LSN moves past the operations
    // applied during the sync: killed in between, the server replays them
    // in the unclean state.
    memory_->release();
    if (auto ok = dirs_->flush(); !ok && *st) *st = std::move(ok);
    if (*st) {
        *st = state_->make_durable(lsn);
        if (*st) committed(lsn);
        if (*st) *st = exchanges_->committed(lsn);
    } else {
        (void)state_->sync_failed();
    }
    finished_.push_back(CommitOutcome{lsn, std::move(*st)});
}

std::vector<CommitOutcome> ApplierImpl::finish_commits() {
    settle_sync(false);
    return std::exchange(finished_, {});
}

Status ApplierImpl::commit(uint64_t lsn) {
    settle_sync(true);
    if (content_ && content_->lsn <= lsn) abort_content();
    if (auto ok = dirs_->flush(); !ok) return ok;
    // One syncfs covers every file and directory touched since the last
    // commit, on whatever filesystem the root lives.
    if (::syncfs(root_fd_.get()) != 0) return fail(sys_error("syncfs", opts_.root.string(), errno));
    if (auto ok = memory_->sync(); !ok) return ok;
    if (auto ok = state_->make_durable(lsn); !ok) return ok;
    committed(lsn);
    return exchanges_->committed(lsn);
}

Status ApplierImpl::finish_batch() { return dirs_->flush(); }

std::vector<RejectionNote> ApplierImpl::take_rejections() {
    auto out = std::exchange(rejections_, {});
    for (auto& r : dirs_->take_rejections()) out.push_back(std::move(r));
    return out;
}

void ApplierImpl::resume() {
    // The clock file systems stamp birth times with: an entry made after
    // this is never older than it (with the fine clock, one made a moment
    // later could be).
    struct timespec now{};
    ::clock_gettime(CLOCK_REALTIME_COARSE, &now);
    int64_t now_ns = static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
    // A replay cut short (the sender, or this server, killed again before it
    // passed what had been applied) left entries it made again; to the
    // replay that follows they are as much a replay's own as what it makes
    // itself, so the earlier start stands until a replay gets through.
    uint64_t high = std::max(recover_through_, applied_through_);
    bool unfinished = replay_until_ > 0 && replayed_through_ < replay_until_ && replay_until_ > state_->durable_lsn();
    if (!unfinished) resumed_at_ns_ = now_ns;
    // Where the sender resumes is its own choice (below the resume point
    // when it was killed inside a span of its plan): a replay runs until an
    // operation past what was applied arrives.
    replay_until_ = std::max(unfinished ? replay_until_ : 0, high > state_->durable_lsn() ? high : 0);
    replayed_through_ = 0;
    // The names a cut-short replay gave are its successor's as well.
    replay_through_ = std::max(high, replay_until_);
    if (!unfinished) named_in_replay_.clear();
    replay_noted_through_ = false;
    note_replay();
}

void ApplierImpl::note_replay() {
    // No fsync: a kill leaves it in the page cache; after a machine crash
    // only the durable LSN is trusted, and the replay starts anew.
    auto file = opts_.state_dir / "replay";
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    std::string line = fmt::format("{} {}\n", resumed_at_ns_, replay_noted_through_ ? 0 : replay_until_);
    (void)!::write(fd, line.data(), line.size());
    ::close(fd);
}

void ApplierImpl::read_replay_note() {
    std::ifstream in(opts_.state_dir / "replay");
    int64_t started = 0;
    uint64_t until = 0;
    if (!(in >> started >> until)) return;
    if (until <= state_->durable_lsn() || !state_->unclean_at_open()) return;
    replay_until_ = until;
    resumed_at_ns_ = started;
}

Status ApplierImpl::settle_deferred() {
    if (auto ok = dirs_->flush(); !ok) return ok;
    memory_->flush();
    return {};
}

void ApplierImpl::abort_content() {
    skipped_content_.reset();
    if (!content_) return;
    if (!content_->temp_name.empty()) ::unlinkat(content_->parent.dir.get(), content_->temp_name.c_str(), 0);
    content_.reset();  // an O_TMPFILE vanishes with its descriptor
}

}  // namespace iz::replicator
