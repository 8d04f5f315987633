#pragma once
// Small record builders and path helpers shared by the capture's source
// files (capture*.cpp); not part of the agent's interface.
#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>

#include "agent/tree_state.hpp"
#include "journal/record.hpp"

namespace iz::agent::capture_detail {

// A path read failed because what it named is no longer there: removed or
// moved (ENOENT), or a directory on the way was replaced by a file
// (ENOTDIR: an exchange of a directory with a file, its move still queued).
inline bool gone_from_path(int err) { return err == ENOENT || err == ENOTDIR; }

inline std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

// `target` is a second name of the file known as `first`.
inline journal::Record link_record(const std::string& first, const std::string& target, const FileHandle& handle) {
    journal::Record r;
    r.op = journal::Op::link;
    r.path = first;
    r.target = target;
    r.handle = handle;
    return r;
}

// The whole content of `e` (a write without ranges), for an entry that
// appears with content no write event describes.
inline journal::Record whole_content_record(const std::string& path, const Entry& e) {
    journal::Record w;
    w.op = journal::Op::write;
    w.path = path;
    w.handle = e.handle;
    w.size = e.size;
    w.mtime_ns = e.mtime_ns;
    return w;
}

}  // namespace iz::agent::capture_detail
