#pragma once
// Resolving paths that came from the wire, strictly beneath a root.
//
// Promises:
//  - A path is first checked lexically: relative, no empty, "." or ".."
//    components, no NUL, at most kMaxWirePath bytes and 255 per component,
//    and not under a reserved top-level name.
//  - Paths longer than PATH_MAX are resolved too (a source may hold them),
//    a run of components at a time, each beneath the last.
//  - Every lookup then goes through openat2 with RESOLVE_BENEATH,
//    RESOLVE_NO_MAGICLINKS and RESOLVE_NO_SYMLINKS: a path that would leave
//    the root, or traverse any symlink, fails. Final components are never
//    followed either (O_NOFOLLOW, *at calls with AT_SYMLINK_NOFOLLOW).
//  - A path that is malformed or leaves the root is a "refusal"
//    (is_refusal()): the input is hostile or broken, as opposed to a
//    filesystem state such as a missing parent. A path that meets a symlink
//    where it needs a directory (or a final symlink where it must not be
//    one), or lies under the reserved top-level name, is a "rejection"
//    (is_rejection()) instead, as is one longer than kMaxWirePath: nothing
//    is reached through it, but an honest source can send it (the replica
//    holds a symlink there, the source a name the server keeps or a tree
//    that deep), and refusing it would stop the stream.
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace iz::replicator {

// sys_errno of a refusal: not a real errno, so it cannot be confused with one.
inline constexpr int kRefusedErrno = 100001;
// Longest path taken from the wire: far deeper than any tree a program
// could still walk by name, far less than a frame.
inline constexpr size_t kMaxWirePath = 256u << 10;
bool is_refusal(const Error& e);
Error refusal(std::string message);
// An operation this server can never apply as it stands, although nothing
// about it is hostile (a name reserved for the server's own state): it is
// left out and the stream goes on (Outcome::rejected).
inline constexpr int kRejectedErrno = 100002;
bool is_rejection(const Error& e);
Error rejection(std::string message);
// A rejection because the path meets a symlink on the replica (never
// followed). Told apart from other rejections because a replayed operation
// meets the tree as later operations left it: there it is no fault.
inline constexpr int kThroughSymlinkErrno = 100003;
bool is_through_symlink(const Error& e);
Error through_symlink(std::string message);

// Lexical check. `reserved_top` (may be empty) is a first component that is
// refused (the server's state directory when it lives inside the root).
Status check_wire_path(std::string_view path, bool allow_root, std::string_view reserved_top = {});

// openat2(dirfd, rel, flags | O_CLOEXEC, BENEATH | NO_MAGICLINKS | NO_SYMLINKS).
// rel "" opens dirfd itself. A symlink as the final component is returned
// only with O_PATH | O_NOFOLLOW; otherwise it is a rejection, as is one on
// the way. A path that escapes is a refusal.
Result<UniqueFd> open_beneath(int dirfd, std::string_view rel, int flags, mode_t mode = 0);

// The parent directory of `rel` (opened O_RDONLY | O_DIRECTORY) and the
// final component. For "" (the root), the parent is the root and name ".".
struct Parent {
    SharedFd dir;
    std::string name;
};
Result<Parent> open_parent(int root_fd, std::string_view rel);

// "/proc/self/fd/N": reopening an O_PATH descriptor with other flags.
std::string fd_path(int fd);

// Splits "a/b/c" into "a/b" and "c" ("" parent for a top-level name).
std::pair<std::string_view, std::string_view> split_parent(std::string_view rel);

}  // namespace iz::replicator
