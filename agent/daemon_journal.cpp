// The journal keeper: the writer and the tree state saved beside it,
// retention, and reopening a journal that failed.

#include "daemon_impl.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/crash_recovery.hpp"
#include "agent/unflushed_content.hpp"
#include "journal/retention.hpp"

namespace iz::agent {

// Whole segments go once every consumer has passed them and the history
// window is over. Without servers the agent is the only consumer.
void DaemonImpl::apply_retention() {
    if (opts_.shipping.servers.empty()) {
        if (auto ok = journal::save_consumer_lsn(opts_.journal_dir, "local", writer_->durable_lsn()); !ok)
            spdlog::warn("journal retention: {}", ok.error().message);
    }
    journal::RetentionPolicy policy;
    policy.history = opts_.history;
    auto dropped = writer_->apply_retention(policy);
    if (!dropped) spdlog::warn("journal retention: {}", dropped.error().message);
    else if (*dropped) spdlog::info("journal retention: dropped {} segment(s)", *dropped);
}

// The saved tree is what the next start compares the directory with, so
// it is never saved ahead of the journal: a change it holds whose record
// is not durable (still being coalesced, or lost with a failed journal)
// would be missed by that comparison and never reach the servers.
// It is saved with the LSN it describes, so that a start after a crash
// replays the records journaled after it (see bring_up_to_journal).
void DaemonImpl::persist() {
    capture_->flush_writes(true);
    // Everything the capture journaled so far is in its tree; records
    // appended meanwhile by the shipper's thread are conflicts, which
    // change no tree.
    uint64_t lsn = writer_->head_lsn();
    if (!writer_->flush()) return;
    if (auto ok = save_tree(capture_->tree(), lsn, opts_.state_dir / "tree.state"); !ok)
        spdlog::error("saving agent state: {}", ok.error().message);
}

// A journal that failed (its disk full, an I/O error) takes no more
// records, and the changes made meanwhile are journaled the way a
// restart journals what happened while no agent ran: every few seconds
// the journal is opened anew, and once that works the last saved tree
// (never ahead of the journal, see persist()) is compared with a fresh
// scan and the differences are journaled.
void DaemonImpl::retry_failed_journal() {
    auto failed = writer_->failure();
    if (!failed) return;
    auto now = Clock::now();
    if (now - last_journal_retry_ < kJournalRetryEvery) return;
    if (last_journal_retry_ == Clock::time_point{})
        spdlog::error("the journal failed: {}; changes are journaled again, from a rescan, once it can be written",
                      failed->message);
    last_journal_retry_ = now;
    auto ok = reopen_journal();
    if (!ok) {
        spdlog::debug("the journal cannot be reopened yet: {}", ok.error().message);
        return;
    }
    last_journal_retry_ = {};
    spdlog::info("the journal is written again; what changed while it failed is journaled from a rescan");
}

Result<std::unique_ptr<journal::Writer>> DaemonImpl::open_journal(std::chrono::milliseconds lock_wait) {
    journal::WriterOptions wo;
    wo.dir = opts_.journal_dir;
    wo.lock_wait = lock_wait;
    wo.segment_bytes = opts_.segment_bytes;
    wo.on_durable = durable_relay();
    return journal::Writer::open(wo);
}

Status DaemonImpl::reopen_journal() {
    auto saved = load_tree(opts_.state_dir / "tree.state");
    if (!saved) return fail(saved.error());
    // The failed writer holds the journal's lock until it is closed; it
    // stays in place, failed, if the new one cannot be opened.
    (void)writer_->close();
    auto writer = open_journal();
    if (!writer) return fail(writer.error());
    auto capture = std::make_unique<Capture>(opts_.dir, root_fd_, opts_.excludes, **writer, bpf_ != nullptr);
    capture->carry_stats(capture_->stats());
    if (receiving()) {
        capture->ignore_changes_of(static_cast<int32_t>(::getpid()));
        stamp_capture(*capture);
    }
    {
        std::lock_guard lock(writer_mu_);  // the shipper's thread journals conflicts
        capture_ = std::move(capture);
        writer_ = std::move(*writer);
    }
    if (auto ok = bring_up_to_journal(*saved); !ok) return ok;
    if (auto ok = capture_->catch_up(saved->tree, "journal failure"); !ok) return ok;
    if (auto ok = writer_->flush(); !ok) return ok;
    if (auto ok = save_tree(capture_->tree(), writer_->head_lsn(), opts_.state_dir / "tree.state"); !ok) return ok;
    return {};
}

// The saved tree becomes what the servers hold once they have applied
// the whole journal, which is what the rescan must compare the
// directory with: the records journaled after it was saved (before a
// crash, or before the journal failed) are replayed onto it. A state
// saved without its LSN (by an older agent) gets back, at least, the
// entries those records made that are gone.
Status DaemonImpl::bring_up_to_journal(SavedTree& saved) {
    if (saved.tree.empty()) return {};  // a baseline: everything is journaled anew
    if (saved.lsn) {
        auto replayed = replay_journal(opts_.journal_dir, *saved.lsn, saved.tree);
        if (!replayed) return fail(replayed.error());
        if (*replayed)
            spdlog::info("{} records journaled after the saved tree state (LSN {}) are replayed onto it", *replayed,
                         *saved.lsn);
    } else {
        auto recovered = recover_unsaved_entries(opts_.journal_dir, root_fd_, saved.tree);
        if (!recovered) return fail(recovered.error());
        if (*recovered)
            spdlog::info("after an unclean stop: {} entries journaled since the last saved state are gone", *recovered);
    }
    // Stores through a mapping that the last agent would have reported at
    // a writeback that came after it ended (unflushed_content.hpp).
    auto run = last_run_started(opts_.journal_dir);
    if (!run) return fail(run.error());
    if (*run) {
        if (size_t marked = mark_unflushed_content(root_fd_, saved.tree, **run))
            spdlog::info("{} files changed in the last run still have pages not written back: their content is "
                         "compared",
                         marked);
    }
    return {};
}

Status DaemonImpl::settle() {
    drain();
    capture_->release_held();  // whatever it waits for was read by now, if it ever comes
    capture_->resolve_inodes_now();
    capture_->flush_writes(true);
    return writer_->flush();
}
}  // namespace iz::agent
