#include "common/at_path.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace iz {

AtPath::AtPath(int dirfd, std::string_view rel) : dir_(dirfd) {
    constexpr size_t kPiece = PATH_MAX - 1;
    size_t start = 0;
    while (rel.size() - start > kPiece) {
        size_t cut = rel.rfind('/', start + kPiece);
        if (cut == std::string_view::npos || cut <= start) {
            error_ = ENAMETOOLONG;
            return;
        }
        std::string piece(rel.substr(start, cut - start));
        int next = ::openat(dir_, piece.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            error_ = errno;
            return;
        }
        if (owned_ >= 0) ::close(owned_);
        owned_ = dir_ = next;
        start = cut + 1;
    }
    name_.assign(rel.substr(start));
}

AtPath::~AtPath() {
    if (owned_ >= 0) ::close(owned_);
}

}  // namespace iz
