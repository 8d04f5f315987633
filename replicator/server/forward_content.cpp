#include "forward_content.hpp"

#include <unistd.h>

#include <algorithm>

#include "replicator/fs/file_extents.hpp"

namespace iz::replicator {

using proto::OpKind;

namespace {

// The parts as they are made: data goes into a part of its own, holes are
// added to the current one until it holds kMaxHolesPerPart.
class Parts {
public:
    Parts(std::vector<proto::OpMsg>& out, proto::ContentBase base) : out_(out), base_(base) {}

    proto::OpMsg& next() {
        proto::OpMsg m;
        m.kind = out_.empty() ? OpKind::content_begin : OpKind::content_data;
        if (out_.empty()) m.base = base_;
        m.more = true;
        out_.push_back(std::move(m));
        return out_.back();
    }
    // The current part while it takes more holes, else a new one.
    proto::OpMsg& for_hole() {
        if (out_.empty() || out_.back().holes.size() >= kMaxHolesPerPart) return next();
        return out_.back();
    }
    // The current part while it has no extent, else a new one.
    proto::OpMsg& for_extent() {
        if (out_.empty() || !out_.back().extents.empty()) return next();
        return out_.back();
    }

private:
    std::vector<proto::OpMsg>& out_;
    proto::ContentBase base_;
};

// Reads [off, end) of `fd` into extents, one a part.
Status read_data(int fd, uint64_t off, uint64_t end, const std::string& path, Parts& parts) {
    std::string buf;
    while (off < end) {
        buf.resize(std::min<uint64_t>(proto::kMaxExtentBytes, end - off));
        ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
        if (n < 0) return fail(sys_error("read replica file", path, errno));
        if (n == 0) break;  // shorter than it was: content_end's size says so
        buf.resize(static_cast<size_t>(n));
        parts.for_extent().extents.push_back(proto::make_extent(off, buf));
        off += static_cast<uint64_t>(n);
    }
    return {};
}

}  // namespace

Result<std::vector<proto::OpMsg>> forward_content(int fd, uint64_t size, const std::vector<journal::ByteRange>& ranges,
                                                  const std::string& path) {
    std::vector<proto::OpMsg> out;
    if (ranges.empty()) {
        // Only the data: a new file is all hole but where it is written,
        // and content_end's size makes the holes at its end.
        Parts parts(out, proto::ContentBase::empty);
        parts.next();
        auto data = data_extents(fd, 0, size, path);
        if (!data) return fail(data.error());
        for (auto& d : *data)
            if (auto ok = read_data(fd, d.offset, d.end(), path, parts); !ok) return fail(ok.error());
        return out;
    }
    Parts parts(out, proto::ContentBase::existing);
    parts.next();
    for (auto& r : journal::coalesce(ranges)) {
        uint64_t from = std::min(r.offset, size);
        uint64_t to = std::min(r.offset + r.length, size);
        if (from >= to) continue;
        auto data = data_extents(fd, from, to, path);
        if (!data) return fail(data.error());
        uint64_t at = from;
        for (auto& d : *data) {
            if (d.offset > at) parts.for_hole().holes.push_back({at, d.offset - at});
            if (auto ok = read_data(fd, d.offset, d.end(), path, parts); !ok) return fail(ok.error());
            at = d.end();
        }
        if (at < to) parts.for_hole().holes.push_back({at, to - at});
    }
    return out;
}

}  // namespace iz::replicator
