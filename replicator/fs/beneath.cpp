#include "replicator/fs/beneath.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <climits>

namespace iz::replicator {

bool is_refusal(const Error& e) { return e.sys_errno == kRefusedErrno; }

Error refusal(std::string message) { return Error{std::move(message), kRefusedErrno}; }

bool is_rejection(const Error& e) { return e.sys_errno == kRejectedErrno || e.sys_errno == kThroughSymlinkErrno; }

bool is_through_symlink(const Error& e) { return e.sys_errno == kThroughSymlinkErrno; }

Error through_symlink(std::string message) { return Error{std::move(message), kThroughSymlinkErrno}; }

Error rejection(std::string message) { return Error{std::move(message), kRejectedErrno}; }

Status check_wire_path(std::string_view path, bool allow_root, std::string_view reserved_top) {
    if (path.empty()) {
        if (allow_root) return {};
        return fail(refusal("empty path where a name is required"));
    }
    if (path.find('\0') != std::string_view::npos) return fail(refusal("path contains a NUL byte"));
    if (path.front() == '/') return fail(refusal(fmt::format("absolute path '{}' refused", path)));
    size_t start = 0;
    bool first = true;
    while (start <= path.size()) {
        size_t end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        auto comp = path.substr(start, end - start);
        if (comp.empty()) return fail(refusal(fmt::format("path '{}' has an empty component", path)));
        if (comp == "." || comp == "..")
            return fail(refusal(fmt::format("path '{}' contains '{}' and could escape the root", path, comp)));
        if (comp.size() > 255) return fail(refusal(fmt::format("path '{}' has a component over 255 bytes", path)));
        if (first && !reserved_top.empty() && comp == reserved_top)
            return fail(rejection(fmt::format("path '{}' is inside '{}', where this server keeps its own state", path,
                                              reserved_top)));
        first = false;
        start = end + 1;
    }
    // A source may hold a path that deep (nothing stops a program from
    // nesting directories by name): nothing of it is applied, and the
    // stream goes on.
    if (path.size() > kMaxWirePath)
        return fail(rejection(fmt::format("path of {} bytes is longer than the {} this server takes", path.size(),
                                          kMaxWirePath)));
    return {};
}

namespace {

// One openat2 call: `rel` shorter than PATH_MAX. `whole` names the path in messages.
Result<UniqueFd> open_piece(int dirfd, std::string_view rel, int flags, mode_t mode, std::string_view whole) {
    std::string name(rel.empty() ? "." : rel);
    open_how how{};
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
    for (int attempt = 0;; ++attempt) {
        long fd = ::syscall(SYS_openat2, dirfd, name.c_str(), &how, sizeof how);
        if (fd >= 0) return UniqueFd(static_cast<int>(fd));
        int err = errno;
        // EAGAIN: a concurrent rename raced the lookup; it is safe to retry.
        if ((err == EAGAIN || err == EINTR) && attempt < 16) continue;
        std::string path(whole.empty() ? std::string_view(name) : whole);
        if (err == EXDEV) return fail(refusal(fmt::format("path '{}' escapes the root", path)));
        // A symlink where the path needs a directory is nothing a lexically
        // sound path can be blamed for: the tree beneath the root holds it
        // (made by an earlier record, by someone on the server, or by a
        // later record of the same stream that a late record meets). The
        // lookup stops at it all the same, so nothing is reached through it.
        if (err == ELOOP)
            return fail(through_symlink(fmt::format("path '{}' goes through a symlink, which is never followed", path)));
        return fail(sys_error("open", path, err));
    }
}

}  // namespace

Result<UniqueFd> open_beneath(int dirfd, std::string_view rel, int flags, mode_t mode) {
    // The kernel takes at most PATH_MAX - 1 bytes of path per call, and a
    // source may hold deeper paths than that. A longer one is walked a run
    // of whole components at a time, each run resolved by the same rules
    // beneath the directory the run before it opened: no step can leave
    // that directory, so none can leave the root.
    constexpr size_t kPiece = PATH_MAX - 1;
    if (rel.size() <= kPiece) return open_piece(dirfd, rel, flags, mode, {});
    UniqueFd dir;
    int at = dirfd;
    size_t start = 0;
    while (rel.size() - start > kPiece) {
        size_t cut = rel.rfind('/', start + kPiece);
        if (cut == std::string_view::npos || cut <= start) return fail(sys_error("open", rel, ENAMETOOLONG));
        auto next = open_piece(at, rel.substr(start, cut - start), O_PATH | O_DIRECTORY, 0, rel);
        if (!next) return fail(next.error());
        dir = std::move(*next);
        at = dir.get();
        start = cut + 1;
    }
    return open_piece(at, rel.substr(start), flags, mode, rel);
}

std::pair<std::string_view, std::string_view> split_parent(std::string_view rel) {
    auto slash = rel.rfind('/');
    if (slash == std::string_view::npos) return {std::string_view{}, rel};
    return {rel.substr(0, slash), rel.substr(slash + 1)};
}

Result<Parent> open_parent(int root_fd, std::string_view rel) {
    Parent p;
    if (rel.empty()) {
        auto dir = open_beneath(root_fd, "", O_RDONLY | O_DIRECTORY);
        if (!dir) return fail(dir.error());
        return Parent{SharedFd(std::move(*dir)), std::string(1, '.')};
    }
    auto [parent, name] = split_parent(rel);
    auto dir = open_beneath(root_fd, parent, O_RDONLY | O_DIRECTORY);
    if (!dir) {
        if (!is_refusal(dir.error()))
            return fail(Error{fmt::format("open parent directory of '{}': {}", rel, dir.error().message), dir.error().sys_errno});
        return fail(dir.error());
    }
    p.dir = SharedFd(std::move(*dir));
    p.name = std::string(name);
    return p;
}

std::string fd_path(int fd) { return fmt::format("/proc/self/fd/{}", fd); }

}  // namespace iz::replicator
