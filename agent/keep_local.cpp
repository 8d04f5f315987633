#include "keep_local.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include <fmt/format.h>

#include "common/unique_fd.hpp"

namespace iz::agent {

namespace {

std::pair<std::string, std::string> split(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return {".", path};
    return {path.substr(0, slash), path.substr(slash + 1)};
}

Status copy_bytes(int in, int out, const std::string& path) {
    for (;;) {
        ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, 1 << 30, 0);
        if (n == 0) return {};
        if (n > 0) continue;
        if (errno == EINTR) continue;
        if (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS)
            return fail(sys_error("copy the local version of", path, errno));
        break;  // not offered here: plain reads and writes
    }
    std::vector<char> buf(1 << 16);
    for (;;) {
        ssize_t n = ::read(in, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(sys_error("read the local version of", path, errno));
        if (n == 0) return {};
        for (ssize_t done = 0; done < n;) {
            ssize_t w = ::write(out, buf.data() + done, static_cast<size_t>(n - done));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return fail(sys_error("write the conflict copy of", path, errno));
            done += w;
        }
    }
}

}  // namespace

Result<Kept> keep_local_copy(const std::filesystem::path& root, const std::string& path, const std::string& base) {
    auto [parent, leaf] = split(path);
    std::string copy = base;
    std::string copy_leaf = split(copy).second;
    // The next name when `copy` is taken; false when none is left.
    int tried = 1;
    auto next_name = [&]() {
        if (++tried > kMaxCopyNames) return false;
        copy = fmt::format("{}-{}", base, tried);
        copy_leaf = split(copy).second;
        return true;
    };
    open_how how{};
    how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;  // read: fsync takes no O_PATH descriptor
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    UniqueFd rootfd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!rootfd.valid()) return fail(sys_error("open the watched directory", root.string(), errno));
    UniqueFd dir(static_cast<int>(::syscall(SYS_openat2, rootfd.get(), parent.c_str(), &how, sizeof how)));
    if (!dir.valid()) {
        if (errno == ENOENT || errno == ENOTDIR) return Kept{};
        return fail(sys_error("open the directory of", path, errno));
    }
    struct stat st {};
    if (::fstatat(dir.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return Kept{};
        return fail(sys_error("stat the local version of", path, errno));
    }
    if (S_ISLNK(st.st_mode)) {
        std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
        ssize_t n = ::readlinkat(dir.get(), leaf.c_str(), target.data(), target.size());
        if (n < 0) return fail(sys_error("read the local symlink", path, errno));
        target.resize(static_cast<size_t>(n));
        while (::symlinkat(target.c_str(), dir.get(), copy_leaf.c_str()) != 0)
            if (errno != EEXIST || !next_name()) return fail(sys_error("make the conflict copy", copy, errno));
    } else if (S_ISREG(st.st_mode)) {
        UniqueFd in(::openat(dir.get(), leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!in.valid()) return fail(sys_error("open the local version of", path, errno));
        UniqueFd out;
        for (;;) {
            out = UniqueFd(::openat(dir.get(), copy_leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                    st.st_mode & 07777));
            if (out.valid()) break;
            if (errno != EEXIST || !next_name()) return fail(sys_error("create the conflict copy", copy, errno));
        }
        auto done = copy_bytes(in.get(), out.get(), path);
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        if (done && ::futimens(out.get(), times) != 0) done = fail(sys_error("set the times of", copy, errno));
        if (done && ::fsync(out.get()) != 0) done = fail(sys_error("sync the conflict copy", copy, errno));
        if (!done) {
            ::unlinkat(dir.get(), copy_leaf.c_str(), 0);  // no half copy left behind
            return fail(done.error());
        }
    } else {
        return Kept{};  // a directory keeps its entries; a special file has no content
    }
    if (::fsync(dir.get()) != 0)
        return fail(sys_error("sync the directory of", copy, errno));
    return Kept{true, copy};
}

}  // namespace iz::agent
