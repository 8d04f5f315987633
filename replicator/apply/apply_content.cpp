// Bytes: range writes and truncation in place, and whole-file content that
// replaces a file atomically.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "apply_impl.hpp"

namespace iz::replicator {

namespace {

std::vector<std::string> xattr_names(int fd) {
    std::vector<std::string> out;
    ssize_t len = ::flistxattr(fd, nullptr, 0);
    if (len <= 0) return out;
    std::string names(static_cast<size_t>(len), '\0');
    len = ::flistxattr(fd, names.data(), names.size());
    if (len <= 0) return out;
    names.resize(static_cast<size_t>(len));
    for (size_t off = 0; off < names.size();) {
        out.emplace_back(names.c_str() + off);
        off += out.back().size() + 1;
    }
    return out;
}

// Gives the server file's replacement exactly the extended attributes the
// server file has, so a content update neither loses attributes set by
// earlier operations nor gains any: a new file inherits its directory's
// default ACL as its access ACL, which the file it replaces (made before
// that default was set, or with its ACL removed since) need not have.
void copy_xattrs(int from, int to) {
    auto have = xattr_names(from);
    for (auto& name : xattr_names(to))
        if (std::find(have.begin(), have.end(), name) == have.end()) ::fremovexattr(to, name.c_str());
    for (auto& name : have) {
        ssize_t vlen = ::fgetxattr(from, name.c_str(), nullptr, 0);
        if (vlen < 0) continue;
        std::string value(static_cast<size_t>(vlen), '\0');
        vlen = ::fgetxattr(from, name.c_str(), value.data(), value.size());
        if (vlen < 0) continue;
        ::fsetxattr(to, name.c_str(), value.data(), static_cast<size_t>(vlen), 0);
    }
}

// Makes [offset, offset+length) of `fd` read as zeros with no blocks behind
// it, keeping the size. Where the filesystem cannot punch, the part within
// the file is overwritten with zeros instead: the bytes still match.
// A hole that reaches the end of the file is punched to the end of its
// last block: punched to exactly the size, the filesystem zeroes the part
// of that block before the end and keeps it, where the source (a program
// punches "the rest" past the end) has none.
Status punch_hole(int fd, const proto::Hole& h, const std::string& path) {
    uint64_t length = h.length;
    if (struct stat st{}; ::fstat(fd, &st) == 0 && st.st_blksize > 0 &&
        h.offset + h.length >= static_cast<uint64_t>(st.st_size)) {
        uint64_t block = static_cast<uint64_t>(st.st_blksize);
        uint64_t end = std::max(h.offset + h.length, static_cast<uint64_t>(st.st_size));
        length = (end + block - 1) / block * block - h.offset;
    }
    if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(h.offset),
                    static_cast<off_t>(length)) == 0)
        return {};
    if (errno != EOPNOTSUPP)
        return fail(sys_error(fmt::format("punch a hole of {} bytes at offset {} in", h.length, h.offset), path, errno));
    struct stat st{};
    if (::fstat(fd, &st) != 0) return fail(sys_error("stat", path, errno));
    uint64_t end = std::min<uint64_t>(h.offset + h.length, static_cast<uint64_t>(st.st_size));
    std::string zeros(static_cast<size_t>(std::min<uint64_t>(1 << 20, end > h.offset ? end - h.offset : 0)), '\0');
    for (uint64_t off = h.offset; off < end;) {
        ssize_t n = ::pwrite(fd, zeros.data(), static_cast<size_t>(std::min<uint64_t>(zeros.size(), end - off)),
                             static_cast<off_t>(off));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(sys_error(fmt::format("write zeros at offset {} of", off), path, errno));
        off += static_cast<uint64_t>(n);
    }
    return {};
}

const char* kind_of_entry(mode_t mode) {
    switch (mode & S_IFMT) {
        case S_IFDIR: return "a directory";
        case S_IFLNK: return "a symlink";
        case S_IFCHR: return "a character device";
        case S_IFBLK: return "a block device";
        case S_IFIFO: return "a fifo";
        case S_IFSOCK: return "a socket";
    }
    return "an entry of an unknown type";
}

// Content (a write, a truncate, whole-file content) is only ever for a
// regular file, and never replaces an entry of another type with one.
// The source makes such an entry with a record of its own (mknod, mkdir,
// symlink) after removing or renaming what the name held, so content that
// finds one here is older than that record, or meets something made on
// the server: in both the entry stays. Replayed after an unclean stop,
// older is expected (the stopped run applied the later records), and the
// content is skipped; so it is when the sender resumed below what this run
// applied (no stop of this server: the agent was killed inside a span of its
// plan, which is no resume point). Otherwise it is rejected: the agent
// sent content under a name that no longer held its file, or the server's entry stands
// where the source has a file; either way the replica may lack what the
// source holds, and the agent is told (its status and sync name it)
// rather than the entry being replaced, which left a regular file where
// the source had a device.
Error not_for_content(const std::string& path, mode_t mode, bool replaying) {
    auto why = fmt::format("content for '{}' left out: the replica holds {} there, which content never replaces", path,
                           kind_of_entry(mode));
    if (!replaying) return rejection(std::move(why));
    return Error{why + " (replayed: a later record made it so)", S_ISDIR(mode) ? EISDIR : EINVAL};
}

}  // namespace

Status ApplierImpl::write_extents(int fd, const OpMsg& op, const std::string& path) {
    // The decoder checked these already; an Applier fed otherwise checks too.
    if (auto ok = proto::check_data(op); !ok) return fail(refusal(fmt::format("data for '{}': {}", path, ok.error().message)));
    for (auto& h : op.holes) {
        if (auto ok = punch_hole(fd, h, path); !ok) return ok;
    }
    std::string scratch;
    for (auto& e : op.extents) {
        auto bytes = proto::extent_bytes(e, scratch);
        if (!bytes) return fail(refusal(fmt::format("data for '{}' at offset {}: {}", path, e.offset, bytes.error().message)));
        std::string_view data = *bytes;
        size_t done = 0;
        while (done < data.size()) {
            ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(e.offset + done));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(sys_error(fmt::format("write {} bytes at offset {} of", data.size(), e.offset), path, errno));
            done += static_cast<size_t>(n);
        }
    }
    return {};
}

Result<UniqueFd> ApplierImpl::open_for_update(const std::string& path) {
    auto p = dirs_->parent_of(path);
    if (!p) return fail(p.error());
    auto node = open_beneath(p->dir.get(), p->name, O_PATH | O_NOFOLLOW);
    if (!node) {
        if (node.error().sys_errno != ENOENT) return fail(node.error());
        // Replayed after an unclean stop, a write finds its file gone when a
        // later operation, applied before the stop and replayed after this
        // one, renamed or removed it: made anew here it would hold only
        // these bytes, and that rename would then put it over the whole
        // file. Skipped; the replay of that operation finds its result. The
        // same replay comes with no stop of this server: a sender that
        // resumes below what this run applied (it was killed inside a span
        // of its plan, which is no resume point) sends it again.
        if (recovering_ || current_lsn_ <= applied_through_)
            return fail(sys_error("write (replayed) to", path, ENOENT));
        // Missing although the source has it: recreate, later records and
        // the final attributes bring it the rest of the way.
        return open_beneath(p->dir.get(), p->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    }
    struct stat st{};
    if (::fstat(node->get(), &st) != 0) return fail(sys_error("stat", path, errno));
    // Nothing is ever written through a final symlink either: it is the
    // entry, and not a regular file.
    if (!S_ISREG(st.st_mode))
        return fail(not_for_content(path, st.st_mode, recovering_ || current_lsn_ <= applied_through_));
    if (auto why = changed_behind(path, st)) {
        if (auto ok = keep_conflict(*p, path, *why, KeepHow::copy); !ok) return fail(ok.error());
    }
    memory_->doubt(static_cast<uint64_t>(st.st_ino));
    // Reopened through the O_PATH descriptor: the very inode checked above.
    int fd = ::open(fd_path(node->get()).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return fail(sys_error("open for writing", path, errno));
    return UniqueFd(fd);
}

Status ApplierImpl::do_write(const OpMsg& op) {
    auto fd = open_for_update(op.path);
    if (!fd && fd.error().sys_errno == ETXTBSY) return replace_running(op);
    if (!fd) return fail(fd.error());
    if (op.kind == proto::OpKind::write) {
        if (auto ok = write_extents(fd->get(), op, op.path); !ok) return ok;
    }
    if (op.size && ::ftruncate(fd->get(), static_cast<off_t>(*op.size)) != 0)
        return fail(sys_error(fmt::format("truncate to {} bytes", *op.size), op.path, errno));
    // A truncate sent for a close carries the file's owner and mode as the
    // source has them now: the last word on them, as a content_end's are.
    OpMsg attrs;
    attrs.uid = op.uid;
    attrs.gid = op.gid;
    attrs.mode = op.mode;
    attrs.atime_ns = op.atime_ns;
    attrs.mtime_ns = op.mtime_ns;
    struct stat now{};
    const struct stat* known = ::fstat(fd->get(), &now) == 0 ? &now : nullptr;
    if (auto ok = set_attrs_fd(fd->get(), attrs, op.path, known); !ok) return ok;
    struct stat st{};
    if (::fstat(fd->get(), &st) == 0) memory_->remember(op.path, st);
    if (opts_.written_handles && op.kind == proto::OpKind::write)
        written_ = handle_of(fd->get(), "", op.path).value_or(FileHandle{});
    return {};
}

// A program on the server runs the replica's file (ETXTBSY): its bytes
// cannot change in place, and the write was skipped, the replica left
// different. The file can be replaced all the same, as a package manager
// replaces a running program (which keeps running its own copy): the write
// becomes content based on the file's bytes, written into a new file and
// renamed over it, with the owner, mode and directory mtime it had. A file
// with several names stays in place (replacing one name would split them):
// that write is rejected (ETXTBSY is in is_permanent).
Status ApplierImpl::replace_running(const OpMsg& op) {
    auto p = dirs_->parent_of(op.path);
    if (!p) return fail(p.error());
    auto st = stat_at(p->dir.get(), p->name, op.path);
    if (!st) return fail(st.error());
    if (!*st || (*st)->st_nlink > 1) return fail(sys_error("open for writing", op.path, ETXTBSY));
    const struct stat was = **st;
    struct stat dir{};
    if (::fstat(p->dir.get(), &dir) != 0) return fail(sys_error("stat the directory of", op.path, errno));
    OpMsg begin = op;
    begin.kind = proto::OpKind::content_begin;
    begin.base = proto::ContentBase::existing;
    begin.mode = op.mode ? *op.mode : was.st_mode;
    begin.size.reset();
    if (op.kind != proto::OpKind::write) {
        begin.extents.clear();
        begin.holes.clear();
    }
    if (auto ok = do_content_begin(begin); !ok) return ok;
    OpMsg end;
    end.lsn = op.lsn;
    end.kind = proto::OpKind::content_end;
    end.path = op.path;
    end.size = op.size;
    end.uid = op.uid ? *op.uid : was.st_uid;
    end.gid = op.gid ? *op.gid : was.st_gid;
    end.mode = op.mode ? *op.mode : was.st_mode;
    end.atime_ns = op.atime_ns;
    end.mtime_ns = op.mtime_ns;
    end.parent_mtime_ns = int64_t{dir.st_mtim.tv_sec} * 1'000'000'000 + dir.st_mtim.tv_nsec;
    return do_content_end(end);
}

bool ApplierImpl::left_unchanged(const std::string& path) {
    auto p = dirs_->parent_of(path);
    if (!p) return false;
    auto st = stat_at(p->dir.get(), p->name, path);
    return st && *st && S_ISREG((*st)->st_mode) && memory_->ours(path, **st);
}

Status ApplierImpl::do_content_begin(const OpMsg& op) {
    abort_content();
    auto p = dirs_->parent_of(op.path);
    if (!p) return fail(p.error());
    auto st = stat_at(p->dir.get(), p->name, op.path);
    if (!st) return fail(st.error());
    PendingContent c;
    c.lsn = op.lsn;
    c.path = op.path;
    if (*st && !S_ISREG((*st)->st_mode))
        return fail(not_for_content(op.path, (*st)->st_mode, recovering_ || op.lsn <= applied_through_));
    if (*st) {
        c.before = **st;
        if (auto why = changed_behind(op.path, **st)) {
            if (auto ok = keep_conflict(*p, op.path, *why, KeepHow::copy); !ok) return ok;
        }
        memory_->doubt(static_cast<uint64_t>((*st)->st_ino));
    }
    // Several names share the inode: replacing one would split them, so
    // the content goes into the shared inode in place.
    c.in_place = c.before && c.before->st_nlink > 1;
    UniqueFd existing;
    if (c.before) {
        auto node = open_beneath(p->dir.get(), p->name, O_PATH | O_NOFOLLOW);
        if (!node) return fail(node.error());
        // Replaced, it is only read (its bytes and xattrs copied): opened
        // for writing, a file a program on the server runs (ETXTBSY) could
        // not be replaced, although a rename over it can, as a package
        // manager replaces a running program.
        int fd = ::open(fd_path(node->get()).c_str(), (c.in_place ? O_RDWR : O_RDONLY) | O_CLOEXEC);
        if (fd < 0) return fail(sys_error("open", op.path, errno));
        existing.reset(fd);
    }
    if (c.in_place) {
        if (op.base == proto::ContentBase::empty && ::ftruncate(existing.get(), 0) != 0)
            return fail(sys_error("truncate", op.path, errno));
        c.fd = std::move(existing);
    } else {
        // Made with the source's permission bits when the agent sent them,
        // so content_end need not change them (umask or a default ACL may
        // still mask some: content_end compares and sets what differs).
        // Set-id bits only ever come from the final chmod.
        mode_t create_mode = op.mode ? (*op.mode & 0777) : 0600;
        auto tmp = open_beneath(p->dir.get(), "", O_TMPFILE | O_RDWR, create_mode);
        if (tmp) {
            c.fd = std::move(*tmp);
            c.anonymous = true;
        } else {
            // No O_TMPFILE on this filesystem: a named temporary instead.
            c.temp_name = fmt::format(".iz-tmp-{}-{}", op.lsn, ::getpid());
            ::unlinkat(p->dir.get(), c.temp_name.c_str(), 0);
            auto named = open_beneath(p->dir.get(), c.temp_name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, create_mode);
            // Told for the path: the temporary's name changes with every
            // attempt, and a rejection reaches the agent's status.
            if (!named && !is_refusal(named.error()) && !is_rejection(named.error()) &&
                !is_through_symlink(named.error()))
                return fail(sys_error("make the new content (in a temporary file beside it) of", op.path,
                                      named.error().sys_errno));
            if (!named) return fail(named.error());
            c.fd = std::move(*named);
        }
        if (op.base == proto::ContentBase::existing && existing.valid()) {
            if (auto ok = copy_bytes(existing.get(), c.fd.get(), static_cast<uint64_t>(c.before->st_size), op.path); !ok)
                return ok;
        }
        if (existing.valid()) copy_xattrs(existing.get(), c.fd.get());
        else drop_inherited_acls(p->dir.get(), c.fd.get());
    }
    c.parent = std::move(*p);
    content_ = std::move(c);
    return write_extents(content_->fd.get(), op, op.path);
}

Status ApplierImpl::skip_with_beginning(const OpMsg& op) {
    // ENOENT: a state error, so the outcome is "skipped" like its beginning.
    Error e{fmt::format("{} of '{}' (LSN {}) skipped with its beginning: {}", proto::op_kind_name(op.kind), op.path,
                        op.lsn, skipped_content_->why),
            ENOENT};
    if (op.kind == proto::OpKind::content_end) skipped_content_.reset();
    return fail(std::move(e));
}

Status ApplierImpl::do_content_data(const OpMsg& op) {
    if (!content_ && skipped_content_ && skipped_content_->lsn == op.lsn && skipped_content_->path == op.path)
        return skip_with_beginning(op);
    if (!content_ || content_->lsn != op.lsn || content_->path != op.path)
        return fail(refusal(fmt::format("content data for '{}' (LSN {}) without its beginning", op.path, op.lsn)));
    return write_extents(content_->fd.get(), op, op.path);
}

// Gives an anonymous file the name `name` in `dir`, unless something has
// that name (linkat never replaces): false then, or on any failure, and the
// caller goes the temporary-name-and-rename way, which replaces atomically.
bool ApplierImpl::link_new_content(int fd, int dir, const std::string& name) {
    if (::linkat(fd, "", dir, name.c_str(), AT_EMPTY_PATH) == 0) return true;
    if (errno == EEXIST) return false;
    return ::linkat(AT_FDCWD, fd_path(fd).c_str(), dir, name.c_str(), AT_SYMLINK_FOLLOW) == 0;
}

Status ApplierImpl::do_content_end(const OpMsg& op) {
    if (!content_ && skipped_content_ && skipped_content_->lsn == op.lsn && skipped_content_->path == op.path)
        return skip_with_beginning(op);
    if (!content_ || content_->lsn != op.lsn || content_->path != op.path)
        return fail(refusal(fmt::format("content end for '{}' (LSN {}) without its beginning", op.path, op.lsn)));
    auto& c = *content_;
    int fd = c.fd.get();
    // What the new file already is: a file written from offset 0 has its
    // size, and an owner or mode it was made with need not be set again.
    struct stat now{};
    const struct stat* known = ::fstat(fd, &now) == 0 ? &now : nullptr;
    if (op.size && !(known && static_cast<uint64_t>(now.st_size) == *op.size) &&
        ::ftruncate(fd, static_cast<off_t>(*op.size)) != 0)
        return fail(sys_error(fmt::format("truncate to {} bytes", *op.size), op.path, errno));
    if (auto ok = set_attrs_fd(fd, op, op.path, known); !ok) return ok;
    int dir = c.parent.dir.get();
    if (!c.in_place && c.anonymous && !c.before && link_new_content(fd, dir, c.parent.name)) {
        // The name did not exist: linked in directly, whole, without a
        // temporary name and a rename over it.
    } else if (!c.in_place) {
        std::string temp = c.temp_name;
        if (c.anonymous) {
            temp = fmt::format(".iz-tmp-{}-{}", op.lsn, ::getpid());
            ::unlinkat(dir, temp.c_str(), 0);
            if (::linkat(fd, "", dir, temp.c_str(), AT_EMPTY_PATH) != 0 &&
                ::linkat(AT_FDCWD, fd_path(fd).c_str(), dir, temp.c_str(), AT_SYMLINK_FOLLOW) != 0)
                return fail(sys_error("link new content of", op.path, errno));
        }
        if (::renameat(dir, temp.c_str(), dir, c.parent.name.c_str()) != 0) {
            int err = errno;
            ::unlinkat(dir, temp.c_str(), 0);
            return fail(sys_error("replace with new content", op.path, err));
        }
        c.temp_name.clear();
    }
    struct stat st{};
    if (::fstat(fd, &st) == 0) memory_->remember(op.path, st);
    if (opts_.written_handles) written_ = handle_of(fd, "", op.path).value_or(FileHandle{});
    Status mt = set_dir_mtime(c.parent, op.parent_mtime_ns, op.path);
    content_.reset();
    return mt;
}

}  // namespace iz::replicator
