#include "agent/tree_state.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "agent/fanotify_source.hpp"

#include "common/at_path.hpp"
#include "common/binary_archive.hpp"
#include "common/durable_file.hpp"
#include "common/file_handle.hpp"
#include "common/path_tree.hpp"
#include "common/unique_fd.hpp"

namespace iz::agent {

// The handle is saved in its key form, a string: the form tree state files
// have always held it in.
template <class Archive>
void save(Archive& ar, const Entry& e) {
    ar(e.mode, e.uid, e.gid, e.size, e.mtime_ns, e.ctime_ns, e.atime_ns, e.ino, e.nlink, e.rdev, e.version,
       e.handle.key(), e.link_target, e.xattrs);
}

template <class Archive>
void load(Archive& ar, Entry& e) {
    std::string handle;
    ar(e.mode, e.uid, e.gid, e.size, e.mtime_ns, e.ctime_ns, e.atime_ns, e.ino, e.nlink, e.rdev, e.version, handle,
       e.link_target, e.xattrs);
    e.handle = FileHandle::from_key(handle);
}

namespace {

int64_t ns(const timespec& ts) { return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec; }

std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

// xattrs are read through an O_PATH descriptor's /proc path, so a symlink's
// own attributes are read (l*xattr) without following it out of the tree.
std::map<std::string, std::string> read_xattrs(int root_fd, const std::string& rel) {
    std::map<std::string, std::string> out;
    // "" names the descriptor's object itself (an O_PATH descriptor). Then
    // the path's last component is the /proc link, which l*xattr would read
    // as a link of its own: the following calls jump through it to the
    // object (and a symlink object opened with O_NOFOLLOW is not followed
    // further).
    bool self = rel.empty();
    auto path = self ? fmt::format("/proc/self/fd/{}", root_fd) : fmt::format("/proc/self/fd/{}/{}", root_fd, rel);
    auto list = self ? ::listxattr : ::llistxattr;
    auto get = self ? ::getxattr : ::lgetxattr;
    char names[4096];
    ssize_t n = list(path.c_str(), names, sizeof names);
    for (ssize_t i = 0; i < n;) {
        std::string name(names + i);
        i += static_cast<ssize_t>(name.size()) + 1;
        if (name.starts_with("security.")) continue;  // labels follow the server's policy
        // XFS lists its on-disk form of POSIX ACLs to root as well: the same
        // ACL as system.posix_acl_*, in a form only XFS understands.
        if (name == "trusted.SGI_ACL_FILE" || name == "trusted.SGI_ACL_DEFAULT") continue;
        char value[65536];
        ssize_t v = get(path.c_str(), name.c_str(), value, sizeof value);
        if (v >= 0) out[name] = std::string(value, static_cast<size_t>(v));
    }
    return out;
}

// The entries directly beneath `rel`, each read after the listing.
Status scan_dir_listing(int root_fd, const std::string& rel, const ExcludeFn& excluded, Tree& tree) {
    AtPath at(root_fd, rel);  // deeper than PATH_MAX too
    UniqueFd fd(at.ok() ? ::openat(at.dir(), rel.empty() ? "." : at.name(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                        : -1);
    if (!at.ok()) errno = at.error();
    if (!fd.valid()) {
        // Vanished, or replaced by a non-directory, while we walked: the
        // listing of its parent says what is there.
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) return {};
        return fail(sys_error("open directory", rel.empty() ? "." : rel, errno));
    }
    DIR* d = ::fdopendir(fd.get());
    if (!d) return fail(sys_error("read directory", rel, errno));
    fd.release();  // the DIR owns it now
    std::vector<std::string> names;
    while (dirent* de = ::readdir(d)) {
        if (!std::strcmp(de->d_name, ".") || !std::strcmp(de->d_name, "..")) continue;
        names.emplace_back(de->d_name);
    }
    ::closedir(d);
    for (auto& name : names) {
        auto child = join(rel, name);
        if (excluded && excluded(child)) continue;
        auto e = read_entry(root_fd, child);
        if (!e) {
            // Gone, or a directory on its path replaced by a file since
            // the listing: as above.
            if (e.error().sys_errno == ENOENT || e.error().sys_errno == ENOTDIR) continue;
            return fail(e.error());
        }
        tree[child] = std::move(*e);
    }
    return {};
}

// Everything beneath `rel`.
Status scan_dir(int root_fd, const std::string& rel, const ExcludeFn& excluded, Tree& tree) {
    Tree listed;
    if (auto ok = scan_dir_listing(root_fd, rel, excluded, listed); !ok) return ok;
    for (auto& [child, e] : listed) {
        bool dir = e.is_dir();
        tree[child] = std::move(e);
        if (dir)
            if (auto ok = scan_dir(root_fd, child, excluded, tree); !ok) return ok;
    }
    return {};
}

Entry entry_from_stat(const struct stat& st) {
    Entry e;
    e.mode = st.st_mode;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.size = static_cast<uint64_t>(st.st_size);
    e.mtime_ns = ns(st.st_mtim);
    e.ctime_ns = ns(st.st_ctim);
    e.atime_ns = ns(st.st_atim);
    e.ino = st.st_ino;
    e.nlink = static_cast<uint32_t>(st.st_nlink);
    e.rdev = st.st_rdev;
    return e;
}

}  // namespace

void share_reading(Entry& to, const Entry& from, bool with_xattrs) {
    to.mode = from.mode;
    to.uid = from.uid;
    to.gid = from.gid;
    to.size = from.size;
    to.mtime_ns = from.mtime_ns;
    to.ctime_ns = from.ctime_ns;
    to.nlink = from.nlink;
    if (with_xattrs) to.xattrs = from.xattrs;
}

Result<Entry> read_entry(int root_fd, const std::string& rel, unsigned parts) {
    AtPath deep(root_fd, rel);  // deeper than PATH_MAX too
    if (!deep.ok()) return fail(sys_error("stat", rel, deep.error()));
    root_fd = deep.dir();
    const char* p = rel.empty() ? "." : deep.name();
    // With xattrs, everything is read through one descriptor: a rename
    // between the stat and the xattr reads would otherwise read nothing
    // (or another object) and report the xattrs removed.
    UniqueFd fd;
    if (parts & kReadXattrs) {
        fd.reset(::openat(root_fd, p, O_PATH | O_NOFOLLOW | O_CLOEXEC));
        if (!fd.valid()) return fail(sys_error("open", rel, errno));
    }
    int at = fd.valid() ? fd.get() : root_fd;
    const char* name = fd.valid() ? "" : p;
    int empty = fd.valid() ? AT_EMPTY_PATH : 0;
    struct stat st{};
    if (::fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW | empty) != 0) return fail(sys_error("stat", rel, errno));
    Entry e = entry_from_stat(st);
    if (parts & kReadHandle)
        if (auto h = handle_of(at, name)) e.handle = *h;
    if (S_ISLNK(st.st_mode)) {
        char buf[PATH_MAX];
        ssize_t n = ::readlinkat(at, name, buf, sizeof buf);
        // Gone or replaced by a non-link since the stat: as vanished as a
        // failed stat, never a symlink without a target.
        if (n < 0) return fail(sys_error("read symlink", rel, errno == EINVAL ? ENOENT : errno));
        e.link_target.assign(buf, static_cast<size_t>(n));
    }
    if (fd.valid()) e.xattrs = read_xattrs(fd.get(), "");
    return e;
}

Result<Entry> read_entry_by_handle(int root_fd, const FileHandle& handle, const std::string& rel) {
    UniqueFd fd(open_by_handle(root_fd, handle, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid() && errno == EBADF) {
        // open_by_handle_at refuses an O_PATH descriptor as its mount
        // reference: reopen the root readable.
        UniqueFd mount_fd(::openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!mount_fd.valid()) return fail(sys_error("open watched root for", rel, errno));
        fd.reset(open_by_handle(mount_fd.get(), handle, O_PATH | O_NOFOLLOW | O_CLOEXEC));
        int err = errno;
        mount_fd.reset();
        errno = err;
    }
    if (!fd.valid()) return fail(sys_error("open by handle", rel, errno == ESTALE ? ENOENT : errno));
    struct stat st{};
    if (::fstatat(fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
        return fail(sys_error("stat by handle", rel, errno));
    Entry e = entry_from_stat(st);
    e.handle = handle;
    if (S_ISLNK(st.st_mode)) {
        char buf[PATH_MAX];
        ssize_t n = ::readlinkat(fd.get(), "", buf, sizeof buf);
        if (n >= 0) e.link_target.assign(buf, static_cast<size_t>(n));
    }
    e.xattrs = read_xattrs(fd.get(), "");
    fd.reset();
    if (st.st_nlink == 0) return fail(sys_error("stat by handle", rel, ENOENT));
    return e;
}

namespace {

void erase_beneath(Tree& tree, const std::string& rel) {
    auto [first, last] = subtree_range(tree, rel);
    tree.erase(first, last);
}

// Brings the entries directly beneath the directory `rel` up to date with
// its listing now: a name gone loses what was beneath it; a name new, or
// holding another object than before, is read afresh with everything
// beneath it. A subdirectory still there keeps its entry as the walk read
// it, so that its own check still sees whether it changed since.
Status relist_dir(int root_fd, const std::string& rel, const ExcludeFn& excluded, Tree& tree) {
    auto self = read_entry(root_fd, rel);
    if (!self || !self->is_dir()) {
        // ENOTDIR: a directory on its path was replaced by a file.
        if (!self && self.error().sys_errno != ENOENT && self.error().sys_errno != ENOTDIR) return fail(self.error());
        // Gone (its parent's listing says what is there now) or replaced.
        erase_beneath(tree, rel);
        if (self) tree[rel] = *self;
        else tree.erase(rel);
        return {};
    }
    tree[rel] = *self;
    Tree fresh;
    if (auto ok = scan_dir_listing(root_fd, rel, excluded, fresh); !ok) return ok;
    // Children that are no longer listed.
    std::vector<std::string> gone;
    auto [first, last] = subtree_range(tree, rel);
    for (auto it = first; it != last; ++it) {
        auto name = it->first.substr(rel.empty() ? 0 : rel.size() + 1);
        if (name.find('/') == std::string::npos && !fresh.count(it->first)) gone.push_back(it->first);
    }
    for (auto& child : gone) {
        erase_beneath(tree, child);
        tree.erase(child);
    }
    for (auto& [child, e] : fresh) {
        auto old = tree.find(child);
        bool same_dir = old != tree.end() && old->second.is_dir() && e.is_dir() && old->second.ino == e.ino;
        if (same_dir) continue;
        if (old != tree.end()) erase_beneath(tree, child);
        bool dir = e.is_dir();
        tree[child] = e;
        if (dir)
            if (auto ok = scan_dir(root_fd, child, excluded, tree); !ok) return ok;
    }
    return {};
}

// Directories whose stat no longer matches what the walk read: an entry
// renamed, made or removed in them after they were listed.
std::vector<std::string> changed_dirs(int root_fd, const Tree& tree) {
    std::vector<std::string> changed;
    for (auto& [path, e] : tree) {
        if (!e.is_dir()) continue;
        auto now = read_entry(root_fd, path, kReadStat);
        if (!now || !now->is_dir() || now->ino != e.ino || now->mtime_ns != e.mtime_ns || now->ctime_ns != e.ctime_ns)
            changed.push_back(path);
    }
    return changed;
}

// The names of one object are read one by one, and the object may change
// in between (a chmod, an xattr, a write while a restart scans): each name
// then holds another reading of it. A rescan compares an object by one of
// its names, and the events of the change are compared with the entry of
// the name they report: with the two readings apart, the older one was
// compared, found no change, and the events then found it made already.
// The whole link group kept its old mode or lacked the xattr on the
// replicas. Every name now carries the newest reading (the greatest ctime:
// every change of the inode moves it). Any one reading would do, the
// events of what changed after it being compared with it; the newest
// leaves them least to journal.
void agree_on_link_groups(Tree& tree) {
    // Groups are found by the readings that saw several links; a name read
    // before the link that made the group saw one, and belongs to it all
    // the same.
    std::unordered_map<FileHandle, const Entry*> newest;
    for (auto& [path, e] : tree)
        if (!e.is_dir() && !e.handle.empty() && e.nlink > 1) newest.emplace(e.handle, &e);
    if (newest.empty()) return;
    for (auto& [path, e] : tree) {
        if (e.is_dir() || e.handle.empty()) continue;
        auto it = newest.find(e.handle);
        if (it != newest.end() && e.ctime_ns > it->second->ctime_ns) it->second = &e;
    }
    std::unordered_map<FileHandle, Entry> readings;
    for (auto& [handle, e] : newest) readings.emplace(handle, *e);
    for (auto& [path, e] : tree) {
        if (e.is_dir() || e.handle.empty()) continue;
        auto it = readings.find(e.handle);
        if (it == readings.end()) continue;
        share_reading(e, it->second, true);
        e.atime_ns = it->second.atime_ns;
    }
}

}  // namespace

// The walk is not one moment: a directory renamed from a part not yet
// walked into one walked already is seen in neither place, and with it
// everything beneath it, so a rescan would journal it removed; one renamed
// the other way is seen twice. Every directory's stat is read before its
// listing, so one that changes after it was listed no longer matches:
// those are listed again, parents first, until a pass finds none changed
// (a few passes bound the work while the tree keeps changing; what
// changes after that is journaled by the capture that runs meanwhile).
Result<Tree> scan_tree(int root_fd, const ExcludeFn& excluded) {
    Tree tree;
    auto root = read_entry(root_fd, "");
    if (!root) return fail(root.error());
    tree[""] = *root;
    if (auto ok = scan_dir(root_fd, "", excluded, tree); !ok) return fail(ok.error());
    for (int pass = 0; pass < 8; ++pass) {
        auto changed = changed_dirs(root_fd, tree);
        if (changed.empty()) break;
        for (auto& path : changed)
            if (tree.count(path))
                if (auto ok = relist_dir(root_fd, path, excluded, tree); !ok) return fail(ok.error());
    }
    agree_on_link_groups(tree);
    return tree;
}

journal::Record creation_record(const std::string& path, const Entry& e) {
    journal::Record r;
    r.path = path;
    r.handle = e.handle;
    r.mode = e.mode;
    r.owner_uid = e.uid;
    r.owner_gid = e.gid;
    r.mtime_ns = e.mtime_ns;
    if (e.is_dir()) r.op = journal::Op::mkdir;
    else if (e.is_symlink()) {
        r.op = journal::Op::symlink;
        r.target = e.link_target;
    } else if (e.is_reg()) {
        r.op = journal::Op::create;
        r.size = e.size;
    } else {
        r.op = journal::Op::mknod;
        r.rdev = e.rdev;
    }
    return r;
}

std::vector<journal::Record> attribute_records(const std::string& path, const Entry& before, const Entry& after) {
    std::vector<journal::Record> out;
    auto base = [&](journal::Op op) {
        journal::Record r;
        r.op = op;
        r.path = path;
        r.handle = after.handle;
        return r;
    };
    if ((before.mode & 07777) != (after.mode & 07777) || before.uid != after.uid || before.gid != after.gid ||
        (before.mtime_ns != after.mtime_ns && !after.is_dir())) {
        auto r = base(journal::Op::setattr);
        r.mode = after.mode;
        r.owner_uid = after.uid;
        r.owner_gid = after.gid;
        r.atime_ns = after.atime_ns;
        r.mtime_ns = after.mtime_ns;
        out.push_back(std::move(r));
    }
    for (auto& [name, value] : after.xattrs) {
        auto it = before.xattrs.find(name);
        if (it != before.xattrs.end() && it->second == value) continue;
        auto r = base(journal::Op::setxattr);
        r.xattr_name = name;
        r.xattr_value = value;
        out.push_back(std::move(r));
    }
    for (auto& [name, value] : before.xattrs) {
        if (after.xattrs.count(name)) continue;
        auto r = base(journal::Op::removexattr);
        r.xattr_name = name;
        out.push_back(std::move(r));
    }
    return out;
}

namespace {

// Marks a state file that begins with the journal position it describes
// (files written before had the tree alone, which begins with its size).
constexpr char kStateMagic[8] = {'I', 'Z', 'T', 'R', 'E', 'E', 0, 2};

}  // namespace

Status save_tree(const Tree& tree, uint64_t lsn, const std::filesystem::path& file) {
    std::string bytes(kStateMagic, sizeof kStateMagic);
    {
        StringOutputArchive ar(bytes);
        ar(lsn, tree);
    }
    return write_file_durably(file, bytes, 0644);
}

Result<SavedTree> load_tree(const std::filesystem::path& file) {
    std::ifstream is(file, std::ios::binary);
    if (!is) return SavedTree{};
    std::string bytes{std::istreambuf_iterator<char>(is), std::istreambuf_iterator<char>()};
    if (is.bad()) return fail(sys_error("read agent state", file.string(), errno ? errno : EIO));
    SavedTree saved;
    try {
        std::string_view rest = bytes;
        bool positioned = rest.starts_with(std::string_view(kStateMagic, sizeof kStateMagic));
        if (positioned) rest.remove_prefix(sizeof kStateMagic);
        ViewInputArchive ar(rest);
        if (positioned) {
            uint64_t lsn = 0;
            ar(lsn);
            saved.lsn = lsn;
        }
        ar(saved.tree);
    } catch (const std::exception& e) {
        return fail(make_error(fmt::format("agent state '{}' is unreadable ({}); remove it to rescan from scratch",
                                           file.string(), e.what())));
    }
    return saved;
}

}  // namespace iz::agent
