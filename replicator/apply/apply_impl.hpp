#pragma once
// The Applier's insides, shared by the apply_*.cpp files: apply.cpp
// dispatches and commits, apply_namespace.cpp creates/removes/renames
// entries, apply_content.cpp writes bytes, apply_attrs.cpp sets attributes
// and xattrs, apply_conflict.cpp keeps the server's versions aside.
#include <sys/stat.h>

#include <optional>
#include <set>

#include "applied_state.hpp"
#include "background_sync.hpp"
#include "replicator/apply/apply.hpp"
#include "replicator/fs/beneath.hpp"
#include "dir_cache.hpp"
#include "exchange_notes.hpp"
#include "file_memory.hpp"

namespace iz::replicator {

using proto::OpMsg;

// lstat of `name` in `dirfd`; nullopt when it does not exist.
Result<std::optional<struct stat>> stat_at(int dirfd, const std::string& name, const std::string& path);

// Copies `len` bytes from the start of `in` to the start of the empty
// `out`, holes as holes (only the data extents are copied).
Status copy_bytes(int in, int out, uint64_t len, const std::string& what);

// Drops the ACLs an entry just made (`fd`, or `proc_path` for one open
// only as O_PATH) inherited from its directory `parent`'s default ACL:
// the source's own ACLs follow its creation as xattr records.
void drop_inherited_acls(int parent, int fd, const std::string& proc_path = {});

int64_t mtime_of(const struct stat& st);
struct timespec to_timespec(int64_t ns);

class ApplierImpl final : public Applier {
public:
    explicit ApplierImpl(ApplierOptions o) : opts_(std::move(o)) {}
    ~ApplierImpl() override {
        abort_content();
        settle_sync(true);
        if (dirs_) (void)dirs_->flush();
    }

    Status init();

    ApplyResult apply(const OpMsg& op) override;
    Result<proto::HashReply> hashes(const proto::HashRequest& req) override;
    Status commit(uint64_t lsn) override;
    void begin_commit(uint64_t lsn, std::function<void()> woken) override;
    std::vector<CommitOutcome> finish_commits() override;
    void abort_content() override;
    Status finish_batch() override;
    std::vector<RejectionNote> take_rejections() override;
    uint64_t durable_lsn() const override { return state_->durable_lsn(); }
    uint64_t resume_lsn() const override { return state_->resume_lsn(); }
    void resume() override;
    const std::filesystem::path& root() const override { return opts_.root; }
    void share() override { shared_ = true; }
    bool left_unchanged(const std::string& path) override;
    void disown(const std::string& path) override { memory_->forget(path); }

private:
    Status dispatch(const OpMsg& op);
    Status dispatch_kind(const OpMsg& op);

    // apply_namespace.cpp
    Status do_create(const OpMsg& op);
    Status do_mkdir(const OpMsg& op);
    Status do_mknod(const OpMsg& op);
    Status do_symlink(const OpMsg& op);
    Status do_link(const OpMsg& op);
    Status remove_entry(const OpMsg& op, bool directory);  // unlink, rmdir
    Status do_rename(const OpMsg& op);
    Status do_exchange(const OpMsg& op);
    // Clears `name` (currently `st`) so a new entry can take its place.
    Status make_room(Parent& p, const std::string& path, const struct stat& st);

    // apply_content.cpp
    Status do_write(const OpMsg& op);  // write and truncate
    // do_write where a program on the server runs the file (ETXTBSY):
    // the file is replaced with the write applied to a copy.
    Status replace_running(const OpMsg& op);
    Status do_content_begin(const OpMsg& op);
    Status do_content_data(const OpMsg& op);
    Status do_content_end(const OpMsg& op);
    // content_data/content_end whose content_begin was skipped.
    Status skip_with_beginning(const OpMsg& op);
    // Writes the op's extents and makes its holes holes.
    Status write_extents(int fd, const OpMsg& op, const std::string& path);
    // Opens the regular file at `path` for writing (creating it when
    // missing), after keeping a copy if it was changed behind our back.
    Result<UniqueFd> open_for_update(const std::string& path);

    // apply_attrs.cpp
    Status do_setattr(const OpMsg& op);
    Status do_xattr(const OpMsg& op);
    // Owner, then mode, then times of `name` in `dirfd`, never following a
    // final symlink.
    Status set_attrs_at(int dirfd, const std::string& name, const OpMsg& op, const std::string& path);
    // `known`: the file's current stat, when the caller has it; owner and
    // mode that already match are then left alone (each change is a
    // journaled inode update).
    Status set_attrs_fd(int fd, const OpMsg& op, const std::string& path, const struct stat* known = nullptr);
    bool link_new_content(int fd, int dir, const std::string& name);
    // A chown of `path` for `op` failed with `err`: true when the owner is
    // left out and reported (rejections_) and the rest goes on.
    bool owner_left_out(const OpMsg& op, const std::string& path, int err);
    // The mtime of `p.dir` after an entry in it changed (deferred: dir_cache.hpp).
    Status set_dir_mtime(const Parent& p, std::optional<int64_t> mtime_ns, const std::string& path);
    // Both ends of a rename or exchange, each the time its record carries;
    // also for one a replay found done (a replayed creation before it may
    // have set an older time).
    Status set_both_dir_mtimes(const Parent& from, const Parent& to, const OpMsg& op);
    // Sets what the directory cache and the file memory hold back, before
    // progress or a commit is recorded.
    Status settle_deferred();

    // apply_conflict.cpp
    enum class KeepHow { move, copy };
    // Keeps the server's version of `name` as NAME.conflict-HOST-TIME.
    Status keep_conflict(Parent& p, const std::string& path, const std::string& why, KeepHow how);
    // Checks the regular file `st` at `path` against the file memory.
    std::optional<std::string> changed_behind(const std::string& path, const struct stat& st) const;
    // Removes the non-empty directory `name` in `dirfd` (at `path`) with
    // everything beneath it, but only if all of it is the replicator's own
    // (see apply_conflict.cpp); false (nothing of the server's removed)
    // otherwise.
    bool remove_if_ours(int dirfd, const std::string& name, const std::string& path);

    struct PendingContent {
        uint64_t lsn = 0;
        std::string path;
        Parent parent;
        UniqueFd fd;
        bool in_place = false;
        bool anonymous = false;   // O_TMPFILE, not yet linked
        std::string temp_name;    // named temporary (when O_TMPFILE is unsupported)
        std::optional<struct stat> before;  // the file it replaces
    };

    ApplierOptions opts_;
    UniqueFd root_fd_;
    std::optional<DirCache> dirs_;
    std::optional<AppliedState> state_;
    std::unique_ptr<FileMemory> memory_;
    std::optional<ExchangeNotes> exchanges_;
    // When the sender last resumed (or this applier was opened;
    // CLOCK_REALTIME_COARSE, ns): an entry born before it was not made by the
    // operations sent since (exchange_notes.hpp).
    int64_t resumed_at_ns_ = 0;
    // The replay in progress runs up to this LSN (0: none); the highest
    // LSN applied since the sender last resumed.
    uint64_t replay_until_ = 0;
    uint64_t replayed_through_ = 0;
    // Keeps when the replay began and how far it goes (state_dir/replay),
    // for a replay after this server is killed; read back at open. Once it
    // gets through, the note says so (until 0), and is left alone.
    void note_replay();
    bool replay_noted_through_ = false;
    void read_replay_note();
    // For a rename or removal of `name` in `dirfd` (op.path): true when a
    // note says this operation ran before and the name now holds what later
    // ones left there (a replay, exchange_notes.hpp); otherwise notes what
    // the name holds (and, for a link, what its second name holds:
    // `displaced`, ExchangeNote), and false.
    Result<bool> done_before(const OpMsg& op, int dirfd, const std::string& name, const std::string& displaced = {});
    // The names link, rename and exchange gave since the sender resumed,
    // while it replays (up to replay_through_): such a name holds an inode
    // born before the resume, which its birth time would date before the
    // replay (done_before). Emptied once the replay is over.
    std::set<std::string> named_in_replay_;
    uint64_t replay_through_ = 0;
    void named(const std::string& path) {
        if (current_lsn_ <= replay_through_) named_in_replay_.insert(path);
    }
    // Whether the entry `name` in `dirfd` was born before the sender last
    // resumed (nullopt: no birth time).
    std::optional<bool> born_before_resume(int dirfd, const std::string& name) const;
    // A replayed attribute record (setattr, xattr) whose name (`name` in
    // `dirfd`, op.path) holds an object a later operation, applied before
    // the replay, put there: the record was for the object the name held
    // before, and was applied to it then.
    bool replayed_onto_placed(const OpMsg& op, int dirfd, const std::string& name) const;
    // A replayed rename that cannot reach its target: removes what the replay
    // made again at its source's name (apply_namespace.cpp).
    Status drop_remade_source(const OpMsg& op);
    // A replayed creation that finds at its name (in `p`) an entry born
    // before the sender resumed: a later operation put it there
    // (apply_namespace.cpp).
    bool replayed_onto_later(const OpMsg& op, const Parent& p) const;
    // The note of the rename or removal `op` when the entry `name` in
    // `dirfd` (op.path) is not what it noted and was born since the sender
    // resumed: this replay made it again.
    std::optional<ExchangeNote> remade_by_replay(const OpMsg& op, int dirfd, const std::string& name);
    // Removes the entry at `path` a replay made again (a directory only
    // when empty, all the replicator's own, or all made by the replay);
    // false when it stays.
    Result<bool> remove_remade(Parent& from, const std::string& path);
    bool remove_if_remade(int dirfd, const std::string& name, const std::string& path);
    // After an unclean stop, until the first commit: what the replayed
    // operations find changed is taken for the replicator's own work.
    bool recovering_ = false;
    bool shared_ = false;  // see share()
    // ... and until a commit covers every operation the stopped run may
    // have applied (AppliedState::applied_at_most_at_open()).
    uint64_t recover_through_ = 0;
    // The highest LSN this run has applied (or skipped): a sender that
    // resumes below it replays what it sends up to there.
    uint64_t applied_through_ = 0;
    void committed(uint64_t lsn) {
        if (lsn >= recover_through_) recovering_ = false;
    }
    std::optional<PendingContent> content_;
    FileHandle written_;  // ApplyResult::written of the content_end applying
    // A content_begin that was skipped (the tree was not in a state to take
    // it): its content_data and content_end are skipped with it rather than
    // refused as parts without a beginning, which would drop the connection
    // and have the agent resend the same LSN forever.
    struct SkippedContent {
        uint64_t lsn = 0;
        std::string path;
        std::string why;
    };
    std::optional<SkippedContent> skipped_content_;
    uint64_t current_lsn_ = 0;
    std::vector<ConflictNote> conflicts_;
    // Parts of applied operations left out (take_rejections()), besides
    // the directory cache's own.
    std::vector<RejectionNote> rejections_;

    // The commit in the background (its LSN), and commits done but not yet
    // reported by finish_commits().
    // Finishes the background commit: `wait` for it, or only if it is done.
    void settle_sync(bool wait);
    std::optional<uint64_t> syncing_lsn_;
    std::vector<CommitOutcome> finished_;
    BackgroundSync sync_;
};

}  // namespace iz::replicator
