#include "removed_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>

#include "replicator/fs/beneath.hpp"

namespace iz::replicator {

namespace {

std::string escape(const std::string& path) {
    std::string out;
    for (char c : path) {
        if (c == '%') out += "%25";
        else if (c == '/') out += "%2F";
        else out += c;
    }
    return out;
}

std::string unescape(const std::string& name) {
    std::string out;
    for (size_t i = 0; i < name.size(); ++i) {
        if (name[i] == '%' && name.compare(i, 3, "%2F") == 0) out += '/', i += 2;
        else if (name[i] == '%' && name.compare(i, 3, "%25") == 0) out += '%', i += 2;
        else out += name[i];
    }
    return out;
}

// Makes the directory `rel` beneath the root, with its parents (0755).
Status make_dirs(int root_fd, const std::string& rel) {
    for (size_t slash = 0; slash != std::string::npos;) {
        slash = rel.find('/', slash + 1);
        std::string part = rel.substr(0, slash);
        auto p = open_parent(root_fd, part);
        if (!p) return fail(p.error());
        if (::mkdirat(p->dir.get(), p->name.c_str(), 0755) != 0 && errno != EEXIST)
            return fail(sys_error("make directory", part, errno));
    }
    return {};
}

}  // namespace

Result<RemovedStore> RemovedStore::open(const std::filesystem::path& dir, int root_fd) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail(Error{fmt::format("create '{}': {}", dir.string(), ec.message()), ec.value()});
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail(sys_error("open", dir.string(), errno));
    RemovedStore s;
    s.dir_ = dir;
    s.dir_fd_.reset(fd);
    s.root_fd_ = root_fd;
    return s;
}

Status RemovedStore::keep(const std::string& path) {
    std::string name = escape(path);
    if (name.size() > 250) return fail(sys_error("keep what was removed at", path, ENAMETOOLONG));
    auto p = open_parent(root_fd_, path);
    if (!p) return {};  // its directory is gone: nothing there to keep
    struct stat st{};
    if (::fstatat(p->dir.get(), p->name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode)) return {};
    // Only an object this removal destroys: a link kept here to one that
    // has other names would count among that object's links on the replica.
    if (st.st_nlink != 1) return {};
    // Linked under a name of its own, then put in place: a crash leaves the
    // earlier object or this one, never none.
    std::string tmp = ".new-" + name.substr(0, 200);
    auto link = [&] { return ::linkat(p->dir.get(), p->name.c_str(), dir_fd_.get(), tmp.c_str(), 0) == 0; };
    // One left by a crash before its rename is in the way: removed first.
    if (!link() && (errno != EEXIST || ::unlinkat(dir_fd_.get(), tmp.c_str(), 0) != 0 || !link()))
        return fail(sys_error(fmt::format("keep in '{}' what is removed at", dir_.string()), path, errno));
    if (::renameat(dir_fd_.get(), tmp.c_str(), dir_fd_.get(), name.c_str()) != 0)
        return fail(sys_error(fmt::format("keep in '{}' what is removed at", dir_.string()), path, errno));
    return {};
}

std::vector<std::string> RemovedStore::at_or_beneath(const std::string& path) const {
    std::vector<std::string> out;
    int fd = ::openat(dir_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return out;
    DIR* d = ::fdopendir(fd);
    if (!d) {
        ::close(fd);
        return out;
    }
    std::string prefix = path + "/";
    while (auto* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == ".." || name.starts_with(".new-")) continue;
        std::string kept = unescape(name);
        if (kept == path || kept.starts_with(prefix)) out.push_back(std::move(kept));
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

Status RemovedStore::remake(const std::string& from, const std::string& to) {
    auto kept = at_or_beneath(from);
    if (kept.empty()) return fail(make_error(fmt::format("nothing removed at or beneath '{}' was kept", from)));
    // Moved out, not linked: the object has one name again, at `dest`.
    auto link_at = [&](const std::string& k, const std::string& dest) -> Status {
        auto p = open_parent(root_fd_, dest);
        if (!p) return fail(p.error());
        if (::renameat2(dir_fd_.get(), escape(k).c_str(), p->dir.get(), p->name.c_str(), RENAME_NOREPLACE) != 0 &&
            errno != EEXIST)
            return fail(sys_error(fmt::format("make '{}' again at", k), dest, errno));
        return {};
    };
    if (kept.front() == from) return link_at(from, to);
    if (auto ok = make_dirs(root_fd_, to); !ok) return ok;
    for (auto& k : kept) {
        std::string dest = to + k.substr(from.size());
        auto slash = dest.rfind('/');
        if (auto ok = make_dirs(root_fd_, dest.substr(0, slash)); !ok) return ok;
        if (auto ok = link_at(k, dest); !ok) return ok;
    }
    return {};
}

}  // namespace iz::replicator
