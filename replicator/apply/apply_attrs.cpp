// Attributes: owner, mode, times and extended attributes, always on the
// entry itself (a final symlink is never followed).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "apply_impl.hpp"

namespace iz::replicator {

namespace {

bool wants_times(const OpMsg& op) { return op.atime_ns.has_value() || op.mtime_ns.has_value(); }

void fill_times(const OpMsg& op, struct timespec ts[2]) {
    ts[0] = op.atime_ns ? to_timespec(*op.atime_ns) : timespec{0, UTIME_OMIT};
    ts[1] = op.mtime_ns ? to_timespec(*op.mtime_ns) : timespec{0, UTIME_OMIT};
}

// Free room below which an ENOSPC is taken for a full filesystem (an
// attribute needs one block of it at most, 64 KiB where values live in
// inodes of their own).
constexpr uint64_t kFullBelow = 16u << 20;

// Why setting `op`'s attribute on `fd` failed with `err`. A filesystem
// holds a file's extended attributes in a space of its own (ext4: the
// inode and one block), which an XFS source's attributes (up to 64 KiB
// each) can exceed: ENOSPC then, with the disk far from full, and E2BIG or
// ERANGE for a value over what it takes at all. Sent again, the attribute
// meets the same limit for ever, so it is rejected (nothing of it applied,
// the agent told) rather than failed, which dropped the connection and had
// the agent send it again without end. An ENOSPC on a filesystem that is
// nearly full stays a failure: that one goes away once space returns.
Error xattr_set_error(int fd, const OpMsg& op, int err) {
    auto what = fmt::format("set extended attribute '{}' ({} bytes) on", op.xattr_name, op.xattr_value.size());
    bool beyond = err == E2BIG || err == ERANGE;
    if (err == ENOSPC) {
        struct statvfs vfs{};
        beyond = ::fstatvfs(fd, &vfs) == 0 && static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize >= kFullBelow;
    }
    if (!beyond) return sys_error(what, op.path, err);
    return rejection(fmt::format("{} '{}': {} (more than this server's filesystem holds for one file)", what, op.path,
                                 std::strerror(err)));
}

// NAMESPACE.NAME, both parts present, within the kernel's limits.
bool xattr_name_wellformed(std::string_view n) {
    auto dot = n.find('.');
    return n.size() <= 255 && n.find('\0') == std::string_view::npos && dot != std::string_view::npos && dot > 0 &&
           dot + 1 < n.size();
}

// Namespaces a source may set. "system." is limited to POSIX ACLs.
bool xattr_name_allowed(std::string_view n) {
    if (n.empty() || n.size() > 255 || n.find('\0') != std::string_view::npos) return false;
    for (std::string_view prefix : {"user.", "trusted.", "security."})
        if (n.starts_with(prefix)) return n.size() > prefix.size();
    return n == "system.posix_acl_access" || n == "system.posix_acl_default";
}

}  // namespace

// The owner of `path` could not be set (chown failed with `err`). EINVAL:
// the uid or gid has no mapping in the server's user namespace (or on an
// idmapped mount of the replica); EPERM: the server lacks CAP_CHOWN there.
// Both hold for as long as the server runs as it does, so sent again the
// record meets them for ever. It was skipped, and nobody was told that the
// replica's owner differs; stopping at it would hold up everything behind
// it. So the rest (mode, times, content) is applied, and the owner is
// reported as left out (a RejectionNote). Any other error fails the
// operation as before.
bool ApplierImpl::owner_left_out(const OpMsg& op, const std::string& path, int err) {
    if (err != EINVAL && err != EPERM) return false;
    auto id = [](const std::optional<uint32_t>& v) { return v ? fmt::format("{}", *v) : std::string("-"); };
    rejections_.push_back(RejectionNote{
        current_lsn_, path,
        fmt::format("chown '{}' to {}:{}: {}; the replica cannot take that owner, so the rest of it is applied "
                    "without it",
                    path, id(op.uid), id(op.gid), std::strerror(err))});
    return true;
}

// An entry made in a directory with a default ACL gets ACLs of its own
// from it. The source's entry may have none (made before its directory got
// that default, which the journal can carry first): the source's ACLs
// follow the creation as xattr records of their own whenever its parent
// has a default ACL, so what the replica's inherited is dropped.
// `proc_path` (for special files, which open only as O_PATH) names the
// entry instead of `fd`.
void drop_inherited_acls(int parent, int fd, const std::string& proc_path) {
    if (::fgetxattr(parent, "system.posix_acl_default", nullptr, 0) < 0) return;
    for (const char* name : {"system.posix_acl_access", "system.posix_acl_default"}) {
        if (proc_path.empty())
            ::fremovexattr(fd, name);
        else
            ::removexattr(proc_path.c_str(), name);
    }
}

Status ApplierImpl::set_attrs_fd(int fd, const OpMsg& op, const std::string& path, const struct stat* known) {
    bool owner_set = known && (!op.uid || *op.uid == known->st_uid) && (!op.gid || *op.gid == known->st_gid);
    bool mode_set = known && op.mode && (*op.mode & 07777) == (known->st_mode & 07777);
    // Owner first: chown clears set-id bits, which the mode then restores.
    if ((op.uid || op.gid) && !owner_set &&
        ::fchown(fd, op.uid ? *op.uid : static_cast<uid_t>(-1), op.gid ? *op.gid : static_cast<gid_t>(-1)) != 0 &&
        !owner_left_out(op, path, errno))
        return fail(sys_error("chown", path, errno));
    if (op.mode && !(mode_set && owner_set) && ::fchmod(fd, *op.mode & 07777) != 0)
        return fail(sys_error("chmod", path, errno));
    if (wants_times(op)) {
        struct timespec ts[2];
        fill_times(op, ts);
        if (::futimens(fd, ts) != 0) return fail(sys_error("set times of", path, errno));
    }
    return {};
}

Status ApplierImpl::set_attrs_at(int dirfd, const std::string& name, const OpMsg& op, const std::string& path) {
    auto node = open_beneath(dirfd, name, O_PATH | O_NOFOLLOW);
    if (!node) return fail(node.error());
    struct stat st{};
    if (::fstat(node->get(), &st) != 0) return fail(sys_error("stat", path, errno));
    // What already matches is left alone (a setattr carries the owner along
    // with a new mode or times). Owner first: chown clears set-id bits,
    // which the mode then restores.
    bool owner_set = (!op.uid || *op.uid == st.st_uid) && (!op.gid || *op.gid == st.st_gid);
    bool mode_set = !op.mode || (*op.mode & 07777) == (st.st_mode & 07777);
    if (!owner_set &&
        ::fchownat(node->get(), "", op.uid ? *op.uid : static_cast<uid_t>(-1), op.gid ? *op.gid : static_cast<gid_t>(-1),
                   AT_EMPTY_PATH) != 0 &&
        !owner_left_out(op, path, errno))
        return fail(sys_error("chown", path, errno));
    // A symlink's own mode means nothing on Linux; everything else is
    // changed through the descriptor, so the inode checked is the one changed.
    if (op.mode && !(mode_set && owner_set) && !S_ISLNK(st.st_mode) &&
        ::chmod(fd_path(node->get()).c_str(), *op.mode & 07777) != 0)
        return fail(sys_error("chmod", path, errno));
    if (wants_times(op)) {
        struct timespec ts[2];
        fill_times(op, ts);
        if (::utimensat(dirfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) return fail(sys_error("set times of", path, errno));
    }
    return {};
}

Status ApplierImpl::set_dir_mtime(const Parent& p, std::optional<int64_t> mtime_ns, const std::string& path) {
    auto ok = dirs_->set_mtime(p, mtime_ns, path, current_lsn_);
    // Shared: the server forwards this operation once its record is durable,
    // with the parent's mtime as the replica has it then, which may be before
    // the batch ends; deferred, the receivers would keep the mtime the entry's
    // creation left here.
    if (!ok || !shared_ || !mtime_ns) return ok;
    return dirs_->settle(split_parent(path).first);
}

namespace {

Error placed_later(const OpMsg& op) {
    return Error{fmt::format("{} of '{}' left out (replayed: a later rename, link or exchange put another object there)",
                             proto::op_kind_name(op.kind), op.path),
                 ENOENT};
}

}  // namespace

bool ApplierImpl::replayed_onto_placed(const OpMsg& op, int dirfd, const std::string& name) const {
    if (!recovering_ && op.lsn > applied_through_) return false;
    auto placed = exchanges_->placed_after(op.lsn, op.path);
    if (placed.empty()) return false;
    auto at = object_identity(dirfd, name, op.path);
    return at && std::find(placed.begin(), placed.end(), *at) != placed.end();
}

Status ApplierImpl::do_setattr(const OpMsg& op) {
    auto p = dirs_->parent_of(op.path);
    if (!p) return fail(p.error());
    auto st = stat_at(p->dir.get(), p->name, op.path);
    if (!st) return fail(st.error());
    if (!*st) return fail(sys_error("setattr", op.path, ENOENT));
    if (replayed_onto_placed(op, p->dir.get(), p->name)) return fail(placed_later(op));
    bool tracked = S_ISREG((*st)->st_mode) && !changed_behind(op.path, **st);
    if (tracked) memory_->doubt(static_cast<uint64_t>((*st)->st_ino));
    if (auto ok = set_attrs_at(p->dir.get(), p->name, op, op.path); !ok) return ok;
    if (tracked) {
        auto now = stat_at(p->dir.get(), p->name, op.path);
        if (now && *now) memory_->remember(op.path, **now);
    }
    return {};
}

Status ApplierImpl::do_xattr(const OpMsg& op) {
    // No Linux filesystem lists a malformed name or holds a larger value.
    if (!xattr_name_wellformed(op.xattr_name))
        return fail(refusal(fmt::format("extended attribute name '{}' on '{}' is malformed", op.xattr_name, op.path)));
    if (op.xattr_value.size() > 65536)
        return fail(refusal(fmt::format("extended attribute '{}' on '{}' is over 64 KiB", op.xattr_name, op.path)));
    // A namespace this server does not set: a source's filesystem may well
    // hold one, so it is left out without stopping the stream.
    if (!xattr_name_allowed(op.xattr_name))
        return fail(rejection(fmt::format("extended attribute name '{}' on '{}' is not allowed", op.xattr_name, op.path)));
    auto p = dirs_->parent_of(op.path);
    if (!p) return fail(p.error());
    if (replayed_onto_placed(op, p->dir.get(), p->name)) return fail(placed_later(op));
    auto node = open_beneath(p->dir.get(), p->name, O_PATH | O_NOFOLLOW);
    if (!node) return fail(node.error());
    struct stat st{};
    if (::fstat(node->get(), &st) != 0) return fail(sys_error("stat", op.path, errno));
    // Opening a device or FIFO has side effects; a symlink cannot carry
    // user attributes. Only files and directories are opened.
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return fail(sys_error(fmt::format("extended attribute '{}' on special file", op.xattr_name), op.path, ENOTSUP));
    int fd = ::open(fd_path(node->get()).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
    if (fd < 0) return fail(sys_error("open", op.path, errno));
    UniqueFd guard(fd);
    if (op.kind == proto::OpKind::setxattr) {
        if (::fsetxattr(fd, op.xattr_name.c_str(), op.xattr_value.data(), op.xattr_value.size(), 0) != 0)
            return fail(xattr_set_error(fd, op, errno));
    } else if (::fremovexattr(fd, op.xattr_name.c_str()) != 0 && errno != ENODATA) {
        return fail(sys_error(fmt::format("remove extended attribute '{}' from", op.xattr_name), op.path, errno));
    }
    return {};
}

}  // namespace iz::replicator
