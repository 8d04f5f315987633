#include "replicator/fs/file_extents.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace iz::replicator {

Result<std::vector<DataExtent>> data_extents(int fd, uint64_t from, uint64_t to, const std::string& what,
                                             uint64_t* end) {
    std::vector<DataExtent> out;
    if (end) *end = to;
    // No more data from `at` on: the rest is hole, or the file ends there.
    auto ends_after = [&](uint64_t at) {
        if (!end) return;
        off_t eof = ::lseek(fd, 0, SEEK_END);
        if (eof >= 0 && static_cast<uint64_t>(eof) < to) *end = std::max<uint64_t>(static_cast<uint64_t>(eof), at);
    };
    uint64_t at = from;
    while (at < to) {
        off_t data = ::lseek(fd, static_cast<off_t>(at), SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) {
                ends_after(at);
                break;
            }
            if (errno == EINVAL || errno == EOPNOTSUPP) {
                // No SEEK_DATA here: all of it counts as data.
                out.push_back({at, to - at});
                break;
            }
            return fail(sys_error(fmt::format("find data from offset {} of", at), what, errno));
        }
        if (static_cast<uint64_t>(data) >= to) break;
        off_t hole = ::lseek(fd, data, SEEK_HOLE);
        if (hole < 0) {
            // ENXIO: the file shrank below `data` under us.
            if (errno != ENXIO) return fail(sys_error(fmt::format("find a hole from offset {} of", data), what, errno));
            ends_after(at);
            break;
        }
        uint64_t stop = std::min<uint64_t>(static_cast<uint64_t>(hole), to);
        if (stop <= static_cast<uint64_t>(data)) break;
        out.push_back({static_cast<uint64_t>(data), stop - static_cast<uint64_t>(data)});
        at = stop;
    }
    // A file that shrank meanwhile may hold less than the extents found.
    if (end && *end < to) {
        while (!out.empty() && out.back().offset >= *end) out.pop_back();
        if (!out.empty() && out.back().end() > *end) out.back().length = *end - out.back().offset;
    }
    return out;
}

bool has_data(const std::vector<DataExtent>& extents, uint64_t from, uint64_t to) {
    auto it = std::upper_bound(extents.begin(), extents.end(), from,
                               [](uint64_t off, const DataExtent& e) { return off < e.end(); });
    return it != extents.end() && it->offset < to;
}

bool all_zero(const char* p, size_t len) {
    // Compared with itself one byte on: zero throughout iff the first byte
    // is zero and every byte equals the next (memcmp is vectorised).
    return len == 0 || (p[0] == 0 && std::memcmp(p, p + 1, len - 1) == 0);
}

}  // namespace iz::replicator
