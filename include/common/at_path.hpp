#pragma once
// Reaching a path relative to a directory descriptor whatever its length.
// The kernel takes at most PATH_MAX - 1 bytes of path per call, and a
// directory tree may be deeper than that. AtPath opens the leading
// components of a longer path a run at a time (each run beneath the
// directory the last one opened, O_PATH | O_DIRECTORY | O_NOFOLLOW on the
// run's last component) and leaves a remainder short enough for any *at
// call: use dir() and name() where (dirfd, path) went before. A short path
// costs nothing: dir() is the given descriptor and name() the path itself.
#include <string>
#include <string_view>

namespace iz {

class AtPath {
public:
    AtPath(int dirfd, std::string_view rel);
    ~AtPath();
    AtPath(const AtPath&) = delete;
    AtPath& operator=(const AtPath&) = delete;

    // False when a leading run could not be opened; error() is its errno,
    // which the caller reports as the call on the whole path would have.
    bool ok() const { return error_ == 0; }
    int error() const { return error_; }
    int dir() const { return dir_; }
    // "" stays "" (for AT_EMPTY_PATH callers).
    const char* name() const { return name_.c_str(); }

private:
    int owned_ = -1;
    int dir_ = -1;
    int error_ = 0;
    std::string name_;
};

}  // namespace iz
