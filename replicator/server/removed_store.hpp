#pragma once
// What send-receive agents removed from a fileset's replica, kept so that a
// concurrent rename of it can still take place (conflict_resolver.hpp: a
// rename whose source another agent removed concurrently wins for what it
// moves). Before the server applies such an unlink, the object at the path
// is linked here under its path, escaped into one name ('%' as "%25", '/'
// as "%2F"): only an object of one link, which the unlink destroys; a later removal of the same path replaces it. Directories are
// not kept (an rmdir removes an empty one; what they held is kept by path).
//
// Promises:
//  - keep() and remake() only link, rename and make directories: no byte
//    is copied. remake() moves a kept object out (it is kept no more).
//  - Lives in `<state>/.filesets/<fileset>/removed`, which must be on the
//    replica's filesystem (the default state directory, inside the root, is):
//    elsewhere keep() fails (EXDEV) and nothing is kept.
//  - Nothing is trimmed yet: the objects stay until the same path is removed
//    again (docs/SHARING.md, "Known limits").
//  - Not thread-safe: used under the fileset's order lock.
#include <filesystem>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace iz::replicator {

class RemovedStore {
public:
    // `dir` is created; `root_fd` is the replica root.
    static Result<RemovedStore> open(const std::filesystem::path& dir, int root_fd);

    // Links the object at `path` (beneath the root, not a directory) here.
    // Nothing to keep (gone, a directory) is no error.
    Status keep(const std::string& path);
    // The kept paths at or beneath `path`, sorted.
    std::vector<std::string> at_or_beneath(const std::string& path) const;
    // Makes `from` (a kept object, or a directory above kept objects) again
    // at `to` beneath the root: a kept object is moved there, a directory
    // made (0755, as a directory made again for an update) with every kept
    // object beneath it moved to its place in it. `to`'s parent must exist.
    // An error when nothing is kept at or beneath `from`.
    Status remake(const std::string& from, const std::string& to);

private:
    std::filesystem::path dir_;
    UniqueFd dir_fd_;
    int root_fd_ = -1;
};

}  // namespace iz::replicator
