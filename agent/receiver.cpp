#include "receiver.hpp"

#include "replicator/apply/applied_record.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/conflict_name.hpp"
#include "common/durable_file.hpp"
#include "common/file_handle.hpp"
#include "keep_local.hpp"
#include "open_writers.hpp"

namespace iz::agent {

namespace proto = replicator::proto;
using replicator::Outcome;

namespace {

// The forwards passed over for good, one JSON object a line.
constexpr const char* kFailedFile = "failed";

std::string describe(const ReceiveFailure& f) {
    if (f.path.empty() && f.op.empty()) return f.message;
    return fmt::format("{} '{}' (server LSN {}, from {}): {}", f.op, f.path, f.lsn, f.origin, f.message);
}

Result<std::vector<ReceiveFailure>> load_failed(const std::filesystem::path& file) {
    std::vector<ReceiveFailure> out;
    std::ifstream in(file);
    if (!in) return out;  // none yet
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object())
            return fail(make_error(fmt::format("{}: not a failure record: {}", file.string(), line)));
        out.push_back(ReceiveFailure{.lsn = j.value("lsn", uint64_t{0}),
                                     .op = j.value("op", ""),
                                     .path = j.value("path", ""),
                                     .origin = j.value("origin", ""),
                                     .message = j.value("error", "")});
    }
    return out;
}

}  // namespace

Result<std::shared_ptr<Receiver>> Receiver::open(ReceiverOptions options) {
    std::shared_ptr<Receiver> r(new Receiver(std::move(options)));
    replicator::ApplierOptions ao;
    ao.root = r->opts_.root;
    ao.state_dir = r->opts_.state_dir;
    ao.host = r->opts_.agent_id;
    // Send-receive: the server decided what a removed directory still
    // holds here (receive-only keeps its local changes: keep_local.hpp).
    ao.forwarded = !r->opts_.local_change;
    auto applier = replicator::Applier::open(ao);
    if (!applier) return fail(Error{"receiving: " + applier.error().message, applier.error().sys_errno});
    r->applier_ = std::move(*applier);
    // The local user writes here too: conflicts are the server's to find
    // (what each change had seen), not this applier's (Applier::share).
    r->applier_->share();
    r->applied_ = r->applier_->durable_lsn();
    auto failed = load_failed(r->opts_.state_dir / kFailedFile);
    if (!failed) return fail(Error{"receiving: " + failed.error().message});
    r->permanent_ = std::move(*failed);
    r->seen_ = r->applied_.load();
    r->thread_ = std::thread([raw = r.get()] {
        pthread_setname_np(pthread_self(), "iz-receive");
        raw->run();
    });
    return r;
}

Receiver::~Receiver() { stop(); }

void Receiver::stop() {
    {
        std::lock_guard lock(mu_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

std::string Receiver::last_error() const {
    std::lock_guard lock(mu_);
    return last_error_;
}

std::optional<ReceiveFailure> Receiver::failure() const {
    std::lock_guard lock(mu_);
    return failure_;
}

std::vector<ReceiveFailure> Receiver::permanent_failures() const {
    std::lock_guard lock(mu_);
    return permanent_;
}

size_t Receiver::forget_failures() {
    std::lock_guard lock(mu_);
    size_t n = permanent_.size();
    permanent_.clear();
    if (auto ok = save_permanent_locked(); !ok) {
        spdlog::error("receiving: {}", ok.error().message);
        permanent_dirty_ = true;  // written again before the next commit
    }
    return n;
}

Status Receiver::save_permanent_locked() const {
    std::string text;
    for (auto& f : permanent_)
        text += nlohmann::json{{"lsn", f.lsn}, {"op", f.op}, {"path", f.path}, {"origin", f.origin}, {"error", f.message}}
                    .dump() +
                "\n";
    auto file = opts_.state_dir / kFailedFile;
    if (auto ok = write_file_durably(file, text); !ok)
        return fail(Error{fmt::format("saving the forwards passed over in {}: {}", file.string(), ok.error().message),
                          ok.error().sys_errno});
    return {};
}

uint64_t Receiver::cursor() {
    std::lock_guard lock(mu_);
    // Read once per connection, right after on_connected().
    if (std::exchange(rewind_subscribed_, false)) return 0;
    return applied_.load();
}

std::optional<uint64_t> Receiver::ranges_whole_through() {
    // A revert replays the fileset to set every path as the server has it:
    // whole content, whatever the copies here are.
    if (reverting_.load()) return std::nullopt;
    std::lock_guard lock(mu_);
    return whole_through_;
}

void Receiver::rewind() {
    reverting_ = true;
    std::lock_guard lock(mu_);
    rewind_pending_ = true;
}

void Receiver::end_revert() { reverting_ = false; }

void Receiver::on_connected() {
    {
        std::lock_guard lock(mu_);
        dropping_ = false;
        ++connections_;
        rewind_subscribed_ = std::exchange(rewind_pending_, false);
        queue_.emplace_back(Restart{rewind_subscribed_});
    }
    cv_.notify_all();
}

void Receiver::on_forward(proto::Forward f) {
    {
        std::lock_guard lock(mu_);
        if (dropping_) return;  // comes again from the cursor, on the next connection
        queue_.emplace_back(std::move(f));
    }
    cv_.notify_all();
}

void Receiver::run() {
    for (;;) {
        Item item;
        bool last_queued = false;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            item = std::move(queue_.front());
            queue_.pop_front();
            last_queued = queue_.empty();
            // The whole burst queued is noted at once: one fdatasync.
            std::vector<const proto::OpMsg*> ahead;
            for (auto& q : queue_)
                if (auto* f = std::get_if<proto::Forward>(&q)) ahead.push_back(&f->op);
            lock.unlock();
            note_applying(ahead);  // (only this thread takes items off the queue)
        }
        try {
            if (auto* f = std::get_if<proto::Forward>(&item)) note_applying({&f->op});
            if (auto* restart = std::get_if<Restart>(&item)) {
                applier_->abort_content();
                applier_->resume();
                if (restart->from_zero) {
                    // Replayed from the start: the cursor follows the
                    // replay, committed as it goes (a restart meanwhile
                    // resumes at the applier's durable LSN).
                    if (uncommitted_ > applied_.load()) commit();
                    uncommitted_ = 0;
                    applied_ = 0;
                    ++rewound_;
                }
                continue;
            }
            apply(std::get<proto::Forward>(item), last_queued);
        } catch (const std::exception& e) {
            spdlog::error("receiving: internal error: {}", e.what());
            std::lock_guard lock(mu_);
            last_error_ = std::string("internal error: ") + e.what();
        }
    }
}

bool Receiver::wait_for_local(const proto::OpMsg& op, bool also_content) {
    if (!opts_.unacked_local || !opts_.wait_acked) return true;
    if (op.kind == proto::OpKind::noop || op.kind == proto::OpKind::conflict ||
        (!also_content && (op.kind == proto::OpKind::content_data || op.kind == proto::OpKind::content_end)))
        return true;  // changes nothing, or its beginning waited
    for (bool told = false;;) {
        uint64_t lsn = opts_.unacked_local(op.path, op.target);
        if (lsn == 0 && op.kind == proto::OpKind::rmdir && opts_.unacked_beneath) lsn = opts_.unacked_beneath(op.path);
        if (lsn == 0) return true;
        if (!told) {
            spdlog::info("receiving: {} '{}' (server LSN {}) waits until the server has this agent's change of it "
                         "(LSN {})",
                         proto::op_kind_name(op.kind), op.path, op.lsn, lsn);
            told = true;
        }
        if (opts_.wait_acked(lsn, std::chrono::milliseconds(200))) continue;
        std::lock_guard lock(mu_);
        if (stopping_) return false;
    }
}

bool Receiver::stopping_within(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return stopping_; });
}

// The path whose entry `op` replaces or removes (empty: none it could
// destroy; a directory keeps its entries, an attribute change the content).
const std::string* replaced_path(const proto::OpMsg& op) {
    switch (op.kind) {
        case proto::OpKind::create:
        case proto::OpKind::write:
        case proto::OpKind::truncate:
        case proto::OpKind::content_begin:
        case proto::OpKind::symlink:
        case proto::OpKind::mknod:
        case proto::OpKind::unlink:
            return &op.path;
        case proto::OpKind::rename:
        case proto::OpKind::link:
        case proto::OpKind::exchange:
            return &op.target;
        default:
            return nullptr;
    }
}

// The file a writer here must not lose: what `op` replaces or removes, and
// a whole content's end, which renames the new version over it.
bool Receiver::wait_for_writers(const proto::OpMsg& op) {
    if (!opts_.settle_capture) return true;
    const std::string* path = op.kind == proto::OpKind::content_end ? &op.path : replaced_path(op);
    if (!path || path->empty()) return true;
    auto full = opts_.root / *path;
    // A file with several links is written in place (apply_content.cpp),
    // through a descriptor for writing the applier holds from the
    // beginning, which waited: that one is the applier's own.
    struct stat st {};
    if (op.kind == proto::OpKind::content_end && ::lstat(full.c_str(), &st) == 0 && st.st_nlink > 1) return true;
    for (bool told = false, waited = false;;) {
        auto open = open_for_writing(full);
        if (!open) {
            // Not knowing must not hold the fileset back for ever. Once a
            // warning: an agent without CAP_LEASE would say it of every file.
            spdlog::log(std::exchange(writers_unknown_told_, true) ? spdlog::level::debug : spdlog::level::warn,
                        "receiving: {} '{}' (server LSN {}) is applied without knowing whether a process here "
                        "writes to it: {} (such files are named at debug level from now on)",
                        proto::op_kind_name(op.kind), *path, op.lsn, open.error().message);
            return true;
        }
        if (*open) {
            if (!told)
                spdlog::info("receiving: {} '{}' (server LSN {}) waits until '{}' is no longer open for writing "
                             "here (what its writer wrote is sent first; the conflict rules keep both versions)",
                             proto::op_kind_name(op.kind), *path, op.lsn, *path);
            told = waited = true;
            if (stopping_within(opts_.writer_poll)) return false;
            continue;
        }
        if (!waited) return true;
        // The writer closed: its change is journaled now (the capture's
        // close event may still be queued), and the server must have it
        // before the forward replaces it. Then look again: a writer may
        // have opened the file meanwhile.
        waited = false;
        if (auto ok = opts_.settle_capture(); !ok)
            spdlog::warn("receiving: journaling the change of '{}' made by its writer before applying {} (server LSN "
                         "{}): {}",
                         *path, proto::op_kind_name(op.kind), op.lsn, ok.error().message);
        if (!wait_for_local(op, true)) return false;
    }
}

std::optional<ReceiveFailure> Receiver::keep_local(const proto::Forward& f) {
    const auto& op = f.op;
    const std::string* path = replaced_path(op);
    if (!path || path->empty() || !opts_.local_change(*path)) return std::nullopt;
    auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    std::string copy = conflict_copy_name(*path, opts_.agent_id, now);
    auto kept = keep_local_copy(opts_.root, *path, copy);
    if (!kept)
        return ReceiveFailure{.lsn = op.lsn,
                              .op = std::string(proto::op_kind_name(op.kind)),
                              .path = *path,
                              .origin = f.origin,
                              .message = "keeping the local version aside first: " + kept.error().message};
    if (opts_.local_change_kept) opts_.local_change_kept(*path);
    if (!kept->copied) return std::nullopt;
    copy = kept->copy;
    ++conflicts_;
    std::string note = fmt::format("the local version of '{}' is kept as '{}': {} from {} (server LSN {}) replaces it",
                                   *path, copy, proto::op_kind_name(op.kind), f.origin, op.lsn);
    spdlog::warn("receive-only: conflict: {}", note);
    journal::Record r;
    r.op = journal::Op::conflict;
    r.path = *path;
    r.target = copy;
    r.message = note;
    // The copy as made: a restart replays this record into the tree it
    // compares the directory with (crash_recovery.cpp), or its rescan takes
    // the copy for a local change made while it was stopped.
    struct stat st {};
    auto at = (opts_.root / copy).string();
    if (::lstat(at.c_str(), &st) == 0) {
        r.mode = st.st_mode;
        r.owner_uid = st.st_uid;
        r.owner_gid = st.st_gid;
        r.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
        r.size = static_cast<uint64_t>(st.st_size);
        if (auto h = handle_of(AT_FDCWD, at, copy)) r.handle = *h;
    }
    if (auto ok = opts_.journal(std::move(r)); !ok)
        spdlog::error("receiving: journaling the conflict on '{}': {}", *path, ok.error().message);
    return std::nullopt;
}

// A write forwarded as ranges patches this agent's copy; that is right only
// where the copy is what the receiver last left there (then it is the
// server's version the ranges were made against: every record of the file
// since came here in order). A local change, or a file this agent made
// itself or never received, may differ elsewhere: the ranges would leave a
// mix. What was applied is committed, and the connection is made anew with
// every write through this one asked for whole (SubscribeRanges).
bool Receiver::needs_whole(const proto::OpMsg& op) {
    // A write sent as ranges whose file the server had replaced since: no
    // forward brings those ranges, so this copy is no longer the one the
    // next ranges patch (fileset_journal.hpp, forwards_of).
    if (op.kind == proto::OpKind::noop && !op.path.empty()) applier_->disown(op.path);
    if (op.kind != proto::OpKind::content_begin || op.base != proto::ContentBase::existing) return false;
    if (applier_->left_unchanged(op.path)) return false;
    spdlog::info("receiving: '{}' (server LSN {}) came as ranges, but the copy here is not the one they patch; "
                 "asking for its whole content",
                 op.path, op.lsn);
    applier_->abort_content();
    if (uncommitted_ > applied_.load() && !commit()) return true;
    {
        std::lock_guard lock(mu_);
        whole_through_ = std::max(whole_through_, op.lsn);
        queue_.clear();
        dropping_ = true;
    }
    ++whole_requests_;
    if (opts_.resubscribe)
        opts_.resubscribe(fmt::format("receiving: '{}' (server LSN {}) is asked for whole", op.path, op.lsn));
    return true;
}

void Receiver::apply(const proto::Forward& f, bool last_queued) {
    const auto& op = f.op;
    if (!wait_for_local(op)) return;
    if (!wait_for_writers(op)) return;
    if (needs_whole(op)) return;
    if (opts_.local_change && !reverting_.load())
        if (auto failed = keep_local(f)) {
            // As a failed apply: what applied before it stays applied.
            applier_->abort_content();
            if (uncommitted_ > applied_.load() && !commit()) return;
            hold(std::move(*failed));
            return;
        }
    auto note = [&] {
        if (opts_.applying) opts_.applying(op.path, op.kind == proto::OpKind::symlink ? std::string() : op.target);
    };
    note();
    auto result = applier_->apply(op);
    note();
    if (result.outcome == Outcome::applied && op.kind == proto::OpKind::conflict) {
        ++conflicts_;
        spdlog::warn("receiving: conflict on '{}' from {}: {}", op.path, f.origin, op.note);
    }
    for (auto& n : applier_->take_rejections())
        spdlog::error("receiving: cannot apply all of server LSN {} on '{}': {}", n.lsn, n.path, n.message);
    auto failure = [&] {
        return ReceiveFailure{.lsn = op.lsn,
                              .op = std::string(proto::op_kind_name(op.kind)),
                              .path = op.path,
                              .origin = f.origin,
                              .message = result.message};
    };
    switch (result.outcome) {
        case Outcome::applied:
            if (!op.more) {
                if (auto r = replicator::journal_record_of(op, f.origin, f.origin_lsn)) {
                    with_handle(*r, op);
                    if (auto ok = opts_.journal(std::move(*r)); !ok)
                        spdlog::error("receiving: journaling server LSN {}: {}", op.lsn, ok.error().message);
                }
                supersede(op);
            }
            break;
        case Outcome::skipped:
            spdlog::debug("receiving: skipped {} '{}' (server LSN {}): {}", proto::op_kind_name(op.kind), op.path,
                          op.lsn, result.message);
            break;
        case Outcome::failed:
            // What applied before it stays applied: the retry resumes after it.
            applier_->abort_content();
            if (uncommitted_ > applied_.load() && !commit()) return;
            hold(failure());
            return;
        case Outcome::rejected:
        case Outcome::refused:
            // A removal of a name this filesystem cannot hold: it is not
            // here either, which is what the fileset has now.
            if (op.kind == proto::OpKind::unlink || op.kind == proto::OpKind::rmdir) supersede(op);
            else if (!result.with_beginning) pass_over(failure());
            break;
    }
    if (!op.more) {
        uncommitted_ = op.lsn;
        seen_ = op.lsn;
    }
    // Committed once nothing more waits: a burst costs one syncfs.
    if (!last_queued || uncommitted_ <= applied_.load()) return;
    commit();
}

namespace {
constexpr const char* kApplyingFile = "applying";
}

std::vector<std::string> Receiver::unconfirmed_paths(const std::filesystem::path& state_dir) {
    std::vector<std::string> out;
    std::ifstream in(state_dir / kApplyingFile);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(line.substr(1));  // "/" + path: "" is the root
    return out;
}

void Receiver::note_applying(const std::vector<const proto::OpMsg*>& ops) {
    std::string lines;
    for (auto* op : ops)
        for (auto* p : {&op->path, &op->target})
            if ((p == &op->path || !p->empty()) && p->find('\n') == std::string::npos && applying_.insert(*p).second)
                lines += "/" + *p + "\n";
    if (lines.empty()) return;
    auto file = opts_.state_dir / kApplyingFile;
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && ::write(fd, lines.data(), lines.size()) == static_cast<ssize_t>(lines.size()) &&
              ::fdatasync(fd) == 0;
    int err = errno;
    if (fd >= 0) ::close(fd);
    // Not fatal: a crash before the commit would only have the rescan
    // journal those changes as local ones (sent once more).
    if (!ok) spdlog::warn("receiving: noting what is applied in {}: {}", file.string(), std::strerror(err));
}

// After a commit: what it covers is journaled and durable. Not synced: a
// machine crash that keeps the list only makes the next restart take a
// local change at one of those paths for the receiver's (it is forwarded
// again anyway).
void Receiver::clear_applying() {
    if (applying_.empty()) return;
    applying_.clear();
    ::unlink((opts_.state_dir / kApplyingFile).c_str());
}

// The object an applied record made: a restart replaying the journal onto
// a tree saved before it (crash_recovery.hpp) must know it by its handle,
// as the rescan does, or it takes the object for a local one. Whole
// content is a new file each time (made aside, renamed over the old).
void Receiver::with_handle(journal::Record& r, const proto::OpMsg& op) const {
    switch (op.kind) {
        case proto::OpKind::content_end:
        case proto::OpKind::create:
        case proto::OpKind::mkdir:
        case proto::OpKind::symlink:
        case proto::OpKind::mknod:
            break;
        default:
            return;
    }
    if (auto h = handle_of(AT_FDCWD, (opts_.root / op.path).string(), op.path)) r.handle = *h;
}

bool Receiver::commit() {
    {
        std::lock_guard lock(mu_);
        if (permanent_dirty_) {
            // Before the cursor moves past them: a restart must still know.
            if (auto ok = save_permanent_locked(); !ok) {
                spdlog::error("receiving: {}", ok.error().message);
                last_error_ = ok.error().message;
                return false;
            }
            permanent_dirty_ = false;
        }
    }
    if (auto ok = applier_->finish_batch(); !ok) spdlog::error("receiving: {}", ok.error().message);
    // The records of what was applied are durable in this agent's journal
    // before the cursor passes them: a restart rescan compares the
    // directory with the journal, and what it lacks there would be
    // journaled as this agent's own change (and sent back).
    if (opts_.journal_durable)
        if (auto ok = opts_.journal_durable(); !ok) {
            hold(ReceiveFailure{.lsn = uncommitted_, .message = "journaling what was applied: " + ok.error().message});
            return false;
        }
    if (auto ok = applier_->commit(uncommitted_); !ok) {
        auto why = fmt::format("making server LSN {} durable: {}", uncommitted_, ok.error().message);
        hold(ReceiveFailure{.lsn = uncommitted_, .message = why});
        return false;
    }
    applied_ = uncommitted_;
    clear_applying();
    {
        std::lock_guard lock(mu_);
        if (failure_ && failure_->lsn <= applied_.load()) {
            spdlog::info("receiving: {} '{}' (server LSN {}) applied after {} attempts", failure_->op, failure_->path,
                         failure_->lsn, failure_->attempts + 1);
            failure_.reset();
            last_error_.clear();
            backoff_ = std::chrono::milliseconds(0);
        }
    }
    if (opts_.moved) opts_.moved();
    return true;
}

// The cursor stays before it; what this connection forwards after it is
// dropped (the server keeps it), and once the backoff has passed the
// connection is made anew, which forwards again from the cursor.
void Receiver::hold(ReceiveFailure f) {
    uint64_t connections = 0;
    std::string why;
    {
        std::unique_lock lock(mu_);
        bool again = failure_ && failure_->lsn == f.lsn && failure_->path == f.path;
        f.attempts = again ? failure_->attempts + 1 : 1;
        why = describe(f);
        backoff_ = again ? std::min(std::max(backoff_ * 2, opts_.first_retry), opts_.max_retry) : opts_.first_retry;
        if (!again)
            spdlog::error("receiving: cannot apply {}; the cursor stays before it and it is tried again until it applies",
                          why);
        else
            spdlog::warn("receiving: still cannot apply {} (attempt {}); next in {} ms", why, f.attempts,
                         backoff_.count());
        failure_ = std::move(f);
        last_error_ = why;
        ++failed_attempts_;
        queue_.clear();
        dropping_ = true;
        connections = connections_;
        lock.unlock();
        if (opts_.moved) opts_.moved();  // a pending sync learns of it
        lock.lock();
        cv_.wait_for(lock, backoff_, [&] { return stopping_; });
        if (stopping_) return;
        // A connection made meanwhile subscribed from the cursor already.
        if (connections_ != connections) return;
    }
    if (opts_.resubscribe) opts_.resubscribe("receiving: cannot apply " + why + "; subscribing again");
}

void Receiver::pass_over(ReceiveFailure f) {
    auto why = describe(f);
    spdlog::error("receiving: cannot ever apply {} here as it stands: passed over; every sync fails naming it until "
                  "a later version of that path arrives or `izwatch revert` makes the directory equal to the fileset",
                  why);
    std::lock_guard lock(mu_);
    last_error_ = why;
    std::erase_if(permanent_, [&](const ReceiveFailure& p) { return p.lsn == f.lsn && p.path == f.path; });
    permanent_.push_back(std::move(f));
    permanent_dirty_ = true;
}

// A later record that sets `op.path` whole here: a failure passed over at
// that path is no difference any more (a rename takes it to the new name).
void Receiver::supersede(const proto::OpMsg& op) {
    std::lock_guard lock(mu_);
    if (permanent_.empty()) return;
    size_t before = permanent_.size();
    switch (op.kind) {
        case proto::OpKind::content_end:
        case proto::OpKind::unlink:
        case proto::OpKind::rmdir:
            std::erase_if(permanent_, [&](const ReceiveFailure& p) { return p.path == op.path; });
            break;
        case proto::OpKind::rename:
            std::erase_if(permanent_, [&](const ReceiveFailure& p) { return p.path == op.target; });
            for (auto& p : permanent_)
                if (p.path == op.path) p.path = op.target, permanent_dirty_ = true;
            break;
        default:
            break;
    }
    if (permanent_.size() != before) permanent_dirty_ = true;
}

}  // namespace iz::agent
