#include "remove_tree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <string_view>
#include <vector>

#include "common/unique_fd.hpp"

namespace iz::replicator {

namespace {

bool clear_tree(int dirfd, const std::string& path, int depth, bool remove, const MayRemove& may_remove) {
    if (depth > 64) return false;
    // A fresh open file description: a dup() would share the read position.
    int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    DIR* d = ::fdopendir(fd);
    if (!d) {
        ::close(fd);
        return false;
    }
    std::vector<std::string> names;
    while (auto* e = ::readdir(d)) {
        std::string_view n(e->d_name);
        if (n != "." && n != "..") names.emplace_back(n);
    }
    ::closedir(d);
    for (auto& name : names) {
        struct stat st{};
        if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
        std::string child = path + "/" + name;
        if (!may_remove(dirfd, name, child, st)) return false;
        if (S_ISDIR(st.st_mode)) {
            int sub = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) return false;
            UniqueFd guard(sub);
            if (!clear_tree(sub, child, depth + 1, remove, may_remove)) return false;
            if (remove && ::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) return false;
        } else if (remove && ::unlinkat(dirfd, name.c_str(), 0) != 0) {
            return false;
        }
    }
    return true;
}

}  // namespace

bool remove_tree_if(int dirfd, const std::string& name, const std::string& path, const MayRemove& may_remove) {
    int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return false;
    UniqueFd dir(fd);
    if (!clear_tree(dir.get(), path, 0, false, may_remove) || !clear_tree(dir.get(), path, 0, true, may_remove))
        return false;
    return ::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) == 0;
}

}  // namespace iz::replicator
