// Entries: create, mkdir, mknod, symlink, link, unlink, rmdir, rename, exchange.
// Each first looks at what is there now, so replaying an operation that was
// already applied finds its result and leaves it alone.
#include <fcntl.h>
#include <stdio.h>  // renameat2, RENAME_EXCHANGE
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>

#include "apply_impl.hpp"
#include "remove_tree.hpp"
#include "common/path_tree.hpp"

namespace iz::replicator {

namespace {

mode_t perms(const OpMsg& op, mode_t fallback) { return op.mode ? (*op.mode & 07777) : fallback; }

}  // namespace

// A creation replayed (the sender resumed below what was applied) that finds
// at its name an entry born before the sender resumed: the first run made
// its entry there, and a later operation it applied (a rename onto the
// name, a removal and another creation) left this one. Replacing it cut a
// file from its other hard links, or put a directory's place to a device,
// and the replayed operations after it then found nothing where the first
// run had left their result. Applied once, the journal leaves there what
// is there: the entry and its attributes are left alone.
bool ApplierImpl::replayed_onto_later(const OpMsg& op, const Parent& p) const {
    if (op.lsn > std::max(recover_through_, applied_through_)) return false;
    return born_before_resume(p.dir.get(), p.name).value_or(false);
}

Status ApplierImpl::make_room(Parent& p, const std::string& path, const struct stat& st) {
    if (S_ISDIR(st.st_mode)) {
        // It, or a directory beneath it, may be kept open for later entries.
        if (auto ok = dirs_->flush(); !ok) return ok;
        if (::unlinkat(p.dir.get(), p.name.c_str(), AT_REMOVEDIR) == 0) {
            memory_->forget(path);
            return {};
        }
        if (errno != ENOTEMPTY && errno != EEXIST) return fail(sys_error("remove directory", path, errno));
        // Only the replicator's own files inside (a replay): they may go.
        if (remove_if_ours(p.dir.get(), p.name, path)) {
            memory_->forget(path);
            return {};
        }
        if (opts_.forwarded && remove_tree_if(p.dir.get(), p.name, path, [](int, const std::string&,
                                                                           const std::string&, const struct stat&) {
                return true;
            })) {
            memory_->forget(path);
            return {};
        }
        // What is inside was never the source's: keep it, out of the way.
        return keep_conflict(p, path, "a directory the source replaced still has entries on the server", KeepHow::move);
    }
    if (S_ISREG(st.st_mode)) {
        if (auto why = changed_behind(path, st)) return keep_conflict(p, path, *why, KeepHow::move);
    }
    if (::unlinkat(p.dir.get(), p.name.c_str(), 0) != 0 && errno != ENOENT) return fail(sys_error("remove", path, errno));
    memory_->forget(path);
    return {};
}

Status ApplierImpl::do_create(const OpMsg& op) {
    auto p = dirs_->parent_of(op.path);
    if (!p) return fail(p.error());
    auto st = stat_at(p->dir.get(), p->name, op.path);
    if (!st) return fail(st.error());
    if (*st) {
        if (replayed_onto_later(op, *p)) return set_dir_mtime(*p, op.parent_mtime_ns, op.path);
        if (S_ISREG((*st)->st_mode) && memory_->ours(op.path, **st)) {
            // Exactly what the replicator left here: a replay. Its
            // attributes are at least as recent as the creation's (later
            // records brought them), and after a later rename it may even
            // be another file: setting the creation's mode, owner and
            // mtime would take it back in time, and the changed mtime
            // would then look like a change behind our back.
            return set_dir_mtime(*p, op.parent_mtime_ns, op.path);
        }
        if (S_ISREG((*st)->st_mode) && !changed_behind(op.path, **st)) {
            // A file nothing is known about: adopted with the source's
            // attributes (content comes with later operations), and
            // recorded as ours like do_setattr does.
            memory_->doubt(static_cast<uint64_t>((*st)->st_ino));
            if (auto ok = set_attrs_at(p->dir.get(), p->name, op, op.path); !ok) return ok;
            if (auto now = stat_at(p->dir.get(), p->name, op.path); now && *now && S_ISREG((*now)->st_mode))
                memory_->remember(op.path, **now);
            return set_dir_mtime(*p, op.parent_mtime_ns, op.path);
        }
        if (auto ok = make_room(*p, op.path, **st); !ok) return ok;
    }
    auto fd = open_beneath(p->dir.get(), p->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, perms(op, 0600));
    if (!fd) return fail(fd.error());
    drop_inherited_acls(p->dir.get(), fd->get());
    if (auto ok = set_attrs_fd(fd->get(), op, op.path); !ok) return ok;
    struct stat now{};
    if (::fstat(fd->get(), &now) == 0) memory_->remember(op.path, now);
    return set_dir_mtime(*p, op.parent_mtime_ns, op.path);
}

Status ApplierImpl::do_mkdir(const OpMsg& op) {
    auto p = dirs_->parent_of(op.path);
    if (!p) return fail(p.error());
    auto st = stat_at(p->dir.get(), p->name, op.path);
    if (!st) return fail(st.error());
    if (*st && replayed_onto_later(op, *p)) return set_dir_mtime(*p, op.parent_mtime_ns, op.path);
    if (*st && !S_ISDIR((*st)->st_mode)) {
        if (auto ok = make_room(*p, op.path, **st); !ok) return ok;
        st->reset();
    }
    bool made = false;
    if (!*st) {
        if (::mkdirat(p->dir.get(), p->name.c_str(), perms(op, 0700)) == 0) made = true;
        else if (errno != EEXIST) return fail(sys_error("mkdir", op.path, errno));
    }
    auto dir = open_beneath(p->dir.get(), p->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!dir) return fail(dir.error());
    if (made) drop_inherited_acls(p->dir.get(), dir->get());
    if (auto ok = set_attrs_fd(dir->get(), op, op.path); !ok) return ok;
    // Its entries usually come next (a copy, an unpacked archive).
    dirs_->adopt(op.path, SharedFd(std::move(*dir)));
    return set_dir_mtime(*p, op.parent_mtime_ns, op.path);
}

Status ApplierImpl::do_mknod(const OpMsg& op) {
    if (!op.mode) return fail(refusal(fmt::format("mknod of '{}' without a mode", op.path)));
    mode_t type = *op.mode & S_IFMT;
    if (type == S_IFREG) return do_create(op);
    if (type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK)
        return fail(refusal(fmt::format("mknod of '{}' with file type 0{:o}", op.path, type)));
    auto p = dirs_->parent_of(op.path);
    if (!p) return fail(p.error());
    auto st = stat_at(p->dir.get(), p->name, op.path);
    if (!st) return fail(st.error());
    dev_t rdev = static_cast<dev_t>(op.rdev.value_or(0));
    bool same = *st && ((*st)->st_mode & S_IFMT) == type && ((*st)->st_rdev == rdev || type == S_IFIFO || type == S_IFSOCK);
    if (*st && !same && replayed_onto_later(op, *p)) return set_dir_mtime(*p, op.parent_mtime_ns, op.path);
    if (*st && !same) {
        if (auto ok = make_room(*p, op.path, **st); !ok) return ok;
    }
    if (!same && ::mknodat(p->dir.get(), p->name.c_str(), type | perms(op, 0600), rdev) != 0)
        return fail(sys_error("mknod", op.path, errno));
    if (!same) {
        if (auto node = open_beneath(p->dir.get(), p->name, O_PATH | O_NOFOLLOW))
            drop_inherited_acls(p->dir.get(), -1, fd_path(node->get()));
    }
    if (auto ok = set_attrs_at(p->dir.get(), p->name, op, op.path); !ok) return ok;
    return set_dir_mtime(*p, op.parent_mtime_ns, op.path);
}

Status ApplierImpl::do_symlink(const OpMsg& op) {
    // The link text is data, never resolved here: it may point anywhere.
    if (op.target.empty() || op.target.size() > 4095 || op.target.find('\0') != std::string::npos)
        return fail(refusal(fmt::format("symlink '{}' with an invalid target", op.path)));
    auto p = dirs_->parent_of(op.path);
    if (!p) return fail(p.error());
    auto st = stat_at(p->dir.get(), p->name, op.path);
    if (!st) return fail(st.error());
    bool same = false;
    if (*st && S_ISLNK((*st)->st_mode)) {
        std::string text(4096, '\0');
        ssize_t n = ::readlinkat(p->dir.get(), p->name.c_str(), text.data(), text.size());
        same = n >= 0 && std::string_view(text.data(), static_cast<size_t>(n)) == op.target;
    }
    if (*st && !same && replayed_onto_later(op, *p)) return set_dir_mtime(*p, op.parent_mtime_ns, op.path);
    if (*st && !same) {
        if (auto ok = make_room(*p, op.path, **st); !ok) return ok;
    }
    if (!same && ::symlinkat(op.target.c_str(), p->dir.get(), p->name.c_str()) != 0)
        return fail(sys_error("symlink", op.path, errno));
    if (auto ok = set_attrs_at(p->dir.get(), p->name, op, op.path); !ok) return ok;
    return set_dir_mtime(*p, op.parent_mtime_ns, op.path);
}

namespace {

// Both ends of a link or rename: their parents, opened beneath the root,
// and what is at each name now (nothing: nullopt).
struct Ends {
    Parent from, to;
    std::optional<struct stat> src, dst;
};

Result<Ends> open_ends(DirCache& dirs, const OpMsg& op) {
    auto from = dirs.parent_of(op.path);
    if (!from) return fail(from.error());
    auto to = dirs.parent_of(op.target);
    if (!to) return fail(to.error());
    auto src = stat_at(from->dir.get(), from->name, op.path);
    if (!src) return fail(src.error());
    auto dst = stat_at(to->dir.get(), to->name, op.target);
    if (!dst) return fail(dst.error());
    return Ends{std::move(*from), std::move(*to), *src, *dst};
}

}  // namespace

Status ApplierImpl::do_link(const OpMsg& op) {
    auto ends = open_ends(*dirs_, op);
    if (!ends) return fail(ends.error());
    auto& [from, to, src, dst] = *ends;
    // Found done (a replay), it still sets the time its record carries:
    // a replayed creation before it set the one of its own, older record
    // (and a kill may have come before the first run's time was set).
    auto done = [&] {
        return set_dir_mtime(to, op.target_parent_mtime_ns ? op.target_parent_mtime_ns : op.parent_mtime_ns,
                             op.target);
    };
    if (!src) {
        if (dst) return done();  // the source name is gone since; the link was made before
        return fail(sys_error("link", op.path, ENOENT));
    }
    if (S_ISDIR(src->st_mode)) return fail(sys_error("hard link to directory", op.path, EISDIR));
    // The first name holds another object than the one the source linked
    // (reused there before the record was read, or grouped differently
    // here): linking it would put an object of the wrong type under the
    // second name and in its link group. Skipped; the records that follow
    // (or a verify) say what the second name holds.
    if (op.mode && (*op.mode & S_IFMT) && (*op.mode & S_IFMT) != (src->st_mode & S_IFMT))
        return fail(sys_error(fmt::format("link to '{}' (the source's object is of another type than what is here) of",
                                          op.target),
                              op.path, EINVAL));
    if (dst && dst->st_ino == src->st_ino && dst->st_dev == src->st_dev) return done();
    // Replayed after later operations gave one of the two names to another
    // object, the link would take that object into the wrong group: "link
    // f g; rename h f" replayed puts h's object at g too (in place of f's),
    // "link f g; rename h g" puts f's object over h's at g. The link is
    // noted like a rename (what its first name held, exchange_notes.hpp): a
    // first name holding another object than noted, or a second name
    // holding one born before the sender resumed, says it ran. Unless that
    // one is what the note says the second name held: the link was killed
    // between its note and making room there, and runs.
    const auto note = exchanges_->find(op.lsn, op.path, op.target);
    std::string displaced = "-";
    if (dst) {
        auto id = object_identity(to.dir.get(), to.name, op.target);
        if (!id) return fail(id.error());
        displaced = std::move(*id);
    }
    auto moved = done_before(op, from.dir.get(), from.name, displaced);
    if (!moved) return fail(moved.error());
    if (*moved) return done();
    if (dst && note && displaced != note->displaced && !named_in_replay_.count(op.target) &&
        born_before_resume(to.dir.get(), to.name).value_or(false))
        return done();
    if (dst) {
        if (auto ok = make_room(to, op.target, *dst); !ok) return ok;
    }
    // No AT_SYMLINK_FOLLOW: a symlink is linked as itself.
    if (::linkat(from.dir.get(), from.name.c_str(), to.dir.get(), to.name.c_str(), 0) != 0)
        return fail(sys_error(fmt::format("link '{}' to", op.path), op.target, errno));
    memory_->alias(op.target, static_cast<uint64_t>(src->st_ino));
    named(op.target);
    return set_dir_mtime(to, op.target_parent_mtime_ns ? op.target_parent_mtime_ns : op.parent_mtime_ns,
                         op.target);
}

Result<bool> ApplierImpl::done_before(const OpMsg& op, int dirfd, const std::string& name,
                                      const std::string& displaced) {
    auto at = object_identity(dirfd, name, op.path);
    if (!at) return fail(at.error());
    auto note = exchanges_->find(op.lsn, op.path, op.target);
    if (!note) {
        if (auto ok = exchanges_->add_quick({op.lsn, op.path, op.target, *at, "-", displaced}, state_->durable_lsn());
            !ok)
            return fail(ok.error());
        return false;
    }
    if (*at == note->at_path) return false;  // as it was: the operation runs (again, or for the first time)
    if (*at == "-") return true;             // moved or removed since: by this operation, or a later one
    // Named by this replay (a link or rename made again): run, whenever
    // its inode was born. Left, a name the source removed or moved stayed
    // on the replica for good.
    if (named_in_replay_.count(op.path)) return false;
    // Another entry: made by a later operation before the sender resumed
    // (done), or by this replay (run). Without a birth time it cannot be told: run, as
    // before notes were kept.
    return born_before_resume(dirfd, name).value_or(false);
}

std::optional<bool> ApplierImpl::born_before_resume(int dirfd, const std::string& name) const {
    struct statx stx{};
    if (::statx(dirfd, name.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BTIME, &stx) != 0 || !(stx.stx_mask & STATX_BTIME))
        return std::nullopt;
    int64_t born = static_cast<int64_t>(stx.stx_btime.tv_sec) * 1'000'000'000 + stx.stx_btime.tv_nsec;
    return born < resumed_at_ns_;
}

// A replayed rename whose target's directory is gone: the first time it ran,
// the entry moved there, and a later operation (applied then, and replayed
// only after this one) moved or removed that directory. The entry at the
// source's name now is another one, born since the sender resumed: a
// replayed create or mkdir of this prefix of the journal made it again.
// Applied once, the journal left nothing at the source's name after this
// rename, so that entry goes (a directory only with what the replay made
// in it); the later records that name the object find it where the first
// run put it. Anything else at the name (what the note says was there, an
// entry older than the resumption, an unknown birth time) is left alone.
Status ApplierImpl::drop_remade_source(const OpMsg& op) {
    auto from = dirs_->parent_of(op.path);
    if (!from) return {};
    if (!remade_by_replay(op, from->dir.get(), from->name)) return {};
    auto removed = remove_remade(*from, op.path);
    if (!removed) return fail(removed.error());
    if (!*removed) return {};
    return set_dir_mtime(*from, op.parent_mtime_ns, op.path);
}

std::optional<ExchangeNote> ApplierImpl::remade_by_replay(const OpMsg& op, int dirfd, const std::string& name) {
    auto note = exchanges_->find(op.lsn, op.path, op.target);
    if (!note) return std::nullopt;
    auto at = object_identity(dirfd, name, op.path);
    if (!at || *at == "-" || *at == note->at_path) return std::nullopt;
    if (born_before_resume(dirfd, name).value_or(true)) return std::nullopt;
    return note;
}

Result<bool> ApplierImpl::remove_remade(Parent& from, const std::string& path) {
    auto st = stat_at(from.dir.get(), from.name, path);
    if (!st || !*st) return false;
    if (S_ISDIR((*st)->st_mode)) {
        if (auto ok = dirs_->flush(); !ok) return fail(ok.error());
        // Entries the replay made in it (born since the sender resumed) go
        // with it; one older than that came from elsewhere, and the
        // directory stays.
        if (::unlinkat(from.dir.get(), from.name.c_str(), AT_REMOVEDIR) != 0 &&
            !remove_if_ours(from.dir.get(), from.name, path) && !remove_if_remade(from.dir.get(), from.name, path))
            return false;
    } else if (::unlinkat(from.dir.get(), from.name.c_str(), 0) != 0) {
        return false;
    }
    memory_->forget(path);
    return true;
}

bool ApplierImpl::remove_if_remade(int dirfd, const std::string& name, const std::string& path) {
    return remove_tree_if(dirfd, name, path, [&](int at, const std::string& entry, const std::string&, const struct stat&) {
        return !born_before_resume(at, entry).value_or(true);
    });
}

// unlink and rmdir differ only in the type they expect at the name. A
// removal replayed after a kill finds nothing to remove; it still forgets,
// since the forget it logged the first time may have been lost
// (file_memory.hpp).
Status ApplierImpl::remove_entry(const OpMsg& op, bool directory) {
    auto p = dirs_->parent_of(op.path);
    if (!p) {
        if (p.error().sys_errno != ENOENT) return fail(p.error());
        memory_->forget(op.path);  // the whole directory is gone already
        return {};
    }
    auto done = done_before(op, p->dir.get(), p->name);
    if (!done) return fail(done.error());
    // What the name holds now came later. The removal's time is still set,
    // as for one found done below: a replayed creation may have set an
    // older one.
    if (*done) return set_dir_mtime(*p, op.parent_mtime_ns, op.path);
    auto st = stat_at(p->dir.get(), p->name, op.path);
    if (!st) return fail(st.error());
    if (!*st) {
        memory_->forget(op.path);
    } else {
        if (S_ISDIR((*st)->st_mode) != directory)
            return fail(sys_error(directory ? "rmdir" : "unlink", op.path, directory ? ENOTDIR : EISDIR));
        // Not recursive: a directory with entries the source never had is
        // kept aside by make_room rather than deleted.
        if (auto ok = make_room(*p, op.path, **st); !ok) return ok;
    }
    return set_dir_mtime(*p, op.parent_mtime_ns, op.path);
}

Status ApplierImpl::set_both_dir_mtimes(const Parent& from, const Parent& to, const OpMsg& op) {
    if (auto ok = set_dir_mtime(from, op.parent_mtime_ns, op.path); !ok) return ok;
    return set_dir_mtime(to, op.target_parent_mtime_ns, op.target);
}

Status ApplierImpl::do_rename(const OpMsg& op) {
    if (op.path == op.target) return {};
    if (strictly_beneath(op.target, op.path))
        return fail(sys_error(fmt::format("rename '{}' into itself as", op.path), op.target, EINVAL));
    auto ends = open_ends(*dirs_, op);
    if (!ends) {
        auto e = ends.error();
        bool replayed = op.lsn <= std::max(recover_through_, applied_through_);
        if (replayed && (e.sys_errno == ENOENT || e.sys_errno == ENOTDIR)) {
            auto to = dirs_->parent_of(op.target);
            if (!to && (to.error().sys_errno == ENOENT || to.error().sys_errno == ENOTDIR)) {
                if (auto ok = drop_remade_source(op); !ok) return ok;
            }
        }
        return fail(std::move(e));
    }
    auto& [from, to, src, dst] = *ends;
    auto done = done_before(op, from.dir.get(), from.name);
    if (!done) return fail(done.error());
    if (*done) {
        // As for an exchange: killed between the rename and its entry in
        // the file memory, the memory has the old names, and would call
        // what is there now a change behind our back.
        memory_->forget(op.path);
        memory_->forget(op.target);
        return set_both_dir_mtimes(from, to, op);
    }
    if (!src) {
        if (dst) return set_both_dir_mtimes(from, to, op);  // done before (a replay)
        return fail(sys_error(fmt::format("rename to '{}' of", op.target), op.path, ENOENT));
    }
    if (dst) {
        // The target holds what the note says the source held when this
        // rename first ran: it ran, and the entry at the source's name is
        // one a replayed create or mkdir made again. Moved over the target,
        // it would replace the object later records went on changing (a
        // directory with entries kept aside as a conflict copy, a file cut
        // from its other links); applied once, the journal left nothing at
        // the source's name, so it goes. The same when the target holds an
        // entry born before the sender resumed (and not named by this
        // replay): a later operation the first run applied (an exchange, a
        // rename onto it) put it there after this rename, as for a link.
        if (auto note = remade_by_replay(op, from.dir.get(), from.name)) {
            auto at_target = object_identity(to.dir.get(), to.name, op.target);
            bool later = !named_in_replay_.count(op.target) &&
                         born_before_resume(to.dir.get(), to.name).value_or(false);
            if (at_target && (*at_target == note->at_path || later)) {
                auto removed = remove_remade(from, op.path);
                if (!removed) return fail(removed.error());
                if (*removed) {
                    if (auto ok = set_dir_mtime(from, op.parent_mtime_ns, op.path); !ok) return ok;
                    return set_dir_mtime(to, op.target_parent_mtime_ns, op.target);
                }
                // Not removable: the rename runs, as before notes were kept.
            }
        }
    }
    if (dst) {
        bool same_inode = dst->st_ino == src->st_ino && dst->st_dev == src->st_dev;
        if (same_inode) {
            // rename(2) of two links to one file does nothing and reports
            // nothing, so a source that sent this rename had two files
            // there: this replica grouped links differently. After the
            // source's rename the old name is gone; so it goes here, and the
            // content the new name should have follows in later records.
            if (::unlinkat(from.dir.get(), from.name.c_str(), 0) != 0 && errno != ENOENT)
                return fail(sys_error(fmt::format("rename to '{}' (one file already) of", op.target), op.path, errno));
            memory_->forget(op.path);
            if (auto ok = set_dir_mtime(from, op.parent_mtime_ns, op.path); !ok) return ok;
            return set_dir_mtime(to, op.target_parent_mtime_ns, op.target);
        }
        bool src_dir = S_ISDIR(src->st_mode), dst_dir = S_ISDIR(dst->st_mode);
        bool conflict = !dst_dir && S_ISREG(dst->st_mode) && changed_behind(op.target, *dst);
        if (src_dir != dst_dir || conflict) {
            if (auto ok = make_room(to, op.target, *dst); !ok) return ok;
        }
    }
    if (::renameat(from.dir.get(), from.name.c_str(), to.dir.get(), to.name.c_str()) != 0) {
        if ((errno == ENOTEMPTY || errno == EEXIST) && dst) {
            // The replaced directory has entries only the server has.
            if (auto ok = make_room(to, op.target, *dst); !ok) return ok;
            if (::renameat(from.dir.get(), from.name.c_str(), to.dir.get(), to.name.c_str()) != 0)
                return fail(sys_error(fmt::format("rename '{}' to", op.path), op.target, errno));
        } else {
            return fail(sys_error(fmt::format("rename '{}' to", op.path), op.target, errno));
        }
    }
    memory_->move(op.path, op.target);
    named(op.target);
    if (auto ok = set_dir_mtime(from, op.parent_mtime_ns, op.path); !ok) return ok;
    return set_dir_mtime(to, op.target_parent_mtime_ns, op.target);
}

// The two entries swap names, each with what is beneath it. An exchange is
// its own inverse, and both names exist before and after it, so what the
// tree holds cannot say whether a replayed exchange already ran. Before
// exchanging, the applier notes durably which objects the two names hold
// here, under the record's LSN (exchange_notes.hpp says why a note rather
// than anything in the record or the tree). A replay that finds its note
// treats the exchange as done if either name no longer holds what it held
// then: the exchange ran, and later operations may have replaced one side
// since. Only when both still hold exactly what they held (the machine
// crashed before the exchange reached the disk, or the process died right
// after the note) does it run.
Status ApplierImpl::do_exchange(const OpMsg& op) {
    if (op.path == op.target) return {};
    if (strictly_beneath(op.target, op.path) || strictly_beneath(op.path, op.target))
        return fail(sys_error(fmt::format("exchange '{}' with an entry beneath it or above it,", op.path), op.target,
                              EINVAL));
    auto ends = open_ends(*dirs_, op);
    if (!ends) return fail(ends.error());
    auto& [from, to, src, dst] = *ends;
    auto at_path = object_identity(from.dir.get(), from.name, op.path);
    if (!at_path) return fail(at_path.error());
    auto at_target = object_identity(to.dir.get(), to.name, op.target);
    if (!at_target) return fail(at_target.error());
    if (auto note = exchanges_->find(op.lsn, op.path, op.target)) {
        if (*at_path != note->at_path || *at_target != note->at_target) {
            // Done before. Killed between the exchange and its entry in
            // the file memory, the memory still has both sides where they
            // were, and would call each a change behind our back: what it
            // knows of both is dropped (adopted when next seen).
            memory_->forget(op.path);
            memory_->forget(op.target);
            return set_both_dir_mtimes(from, to, op);
        }
    } else if (auto ok = exchanges_->add({op.lsn, op.path, op.target, *at_path, *at_target}, state_->durable_lsn());
               !ok) {
        return ok;
    }
    if (!src && !dst) return fail(sys_error(fmt::format("exchange with '{}' of", op.target), op.path, ENOENT));
    if (src && dst) {
        if (::renameat2(from.dir.get(), from.name.c_str(), to.dir.get(), to.name.c_str(), RENAME_EXCHANGE) != 0)
            return fail(sys_error(fmt::format("exchange with '{}' of", op.target), op.path, errno));
        memory_->exchange(op.path, op.target);
        named(op.path);
        named(op.target);
    } else {
        // One side is missing here (this replica diverged): the other goes
        // where the source now has it. The note made above keeps a replay
        // from moving it back.
        Parent& a = src ? from : to;
        Parent& b = src ? to : from;
        const std::string& a_path = src ? op.path : op.target;
        const std::string& b_path = src ? op.target : op.path;
        if (::renameat(a.dir.get(), a.name.c_str(), b.dir.get(), b.name.c_str()) != 0)
            return fail(sys_error(fmt::format("rename (one side of an exchange) to '{}' of", b_path), a_path, errno));
        memory_->move(a_path, b_path);
        named(b_path);
    }
    if (auto ok = set_dir_mtime(from, op.parent_mtime_ns, op.path); !ok) return ok;
    return set_dir_mtime(to, op.target_parent_mtime_ns, op.target);
}

}  // namespace iz::replicator
