// Capture: one object, one identity. The handle indexes of the tree (directories and other names of a file) and the attributes all names of an inode share.
#include "agent/capture.hpp"

#include <optional>
#include <string>


namespace iz::agent {

void Capture::track(const std::string& path, Entry e) {
    bool dir = e.is_dir();
    FileHandle handle = e.handle;
    tree_[path] = std::move(e);
    if (dir) {
        index_dir(path, handle);
    } else if (!handle.empty()) {
        names_.emplace(handle, path);
        if (names_.size() > 2 * tree_.size() + 4096) {
            names_.clear();
            for (auto& [p, te] : tree_)
                if (!te.is_dir() && !te.handle.empty()) names_.emplace(te.handle, p);
        }
    }
}

bool Capture::parent_has_default_acl(const std::string& path) const {
    auto slash = path.rfind('/');
    auto parent = tree_.find(slash == std::string::npos ? std::string() : path.substr(0, slash));
    return parent != tree_.end() && parent->second.xattrs.count("system.posix_acl_default");
}

void Capture::repoint(const Entry& e, const std::string& old_path, const std::string& new_path) {
    if (e.is_dir()) {
        index_dir(new_path, e.handle);
        return;
    }
    if (e.handle.empty()) return;
    auto [lo, hi] = names_.equal_range(e.handle);
    for (auto it = lo; it != hi; ++it)
        if (it->second == old_path) {
            it->second = new_path;
            return;
        }
    names_.emplace(e.handle, new_path);
}

std::optional<std::string> Capture::tracked_elsewhere(const FileHandle& handle, const std::string& path, uint64_t ino) {
    if (handle.empty()) {
        // Without a handle, the inode number is all there is (0: do not
        // guess): a slow scan, but only for entries whose handle could not
        // be read.
        if (ino == 0) return std::nullopt;
        for (auto& [other, oe] : tree_)
            if (oe.ino == ino && other != path && !oe.is_dir()) return other;
        return std::nullopt;
    }
    if (auto d = dirs_.find(handle); d != dirs_.end()) {
        auto t = tree_.find(d->second);
        if (d->second != path && t != tree_.end() && t->second.handle == handle) return d->second;
        return std::nullopt;
    }
    auto [lo, hi] = names_.equal_range(handle);
    std::optional<std::string> found;
    for (auto it = lo; it != hi;) {
        auto t = tree_.find(it->second);
        if (t == tree_.end() || t->second.handle != handle || t->second.is_dir()) {
            it = names_.erase(it);
            continue;
        }
        // A name known only from its create event (ino 0) has nothing to
        // link to yet: it is read, and linked, where its rename says.
        if (it->second != path && t->second.ino != 0 && !found) found = it->second;
        ++it;
    }
    return found;
}

void Capture::share_attributes(const std::string& path, bool xattrs_read) {
    auto it = tree_.find(path);
    if (it == tree_.end() || it->second.is_dir() || it->second.handle.empty()) return;
    const Entry& e = it->second;
    auto [lo, hi] = names_.equal_range(e.handle);
    for (auto n = lo; n != hi; ++n) {
        if (n->second == path) continue;
        auto other = tree_.find(n->second);
        if (other == tree_.end() || other->second.handle != e.handle || other->second.ino == 0) continue;
        share_reading(other->second, e, xattrs_read);
    }
}

}  // namespace iz::agent
