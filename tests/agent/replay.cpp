#include "replay.hpp"

#include <sys/stat.h>

#include <fmt/format.h>

#include "common/path_tree.hpp"

namespace iz::test::agent {

namespace {

void erase_subtree(Listing& tree, const std::string& top) {
    auto [first, last] = subtree_range(tree, top);
    tree.erase(first, last);
    tree.erase(top);
}

std::optional<uint64_t> size_of(const json& r) {
    if (!r.contains("size")) return std::nullopt;
    return r["size"].get<uint64_t>();
}

const char* kind_name(Kind k) {
    switch (k) {
        case Kind::file: return "file";
        case Kind::dir: return "directory";
        case Kind::symlink: return "symlink";
        case Kind::other: return "special file";
    }
    return "?";
}

}  // namespace

Listing replay(const std::vector<json>& records, std::vector<std::string>& problems) {
    Listing tree;
    for (auto& r : records) {
        auto op = r.value("op", "");
        auto path = r.value("path", "");
        auto target = r.value("target", "");
        auto note = [&](const std::string& what) { problems.push_back(describe(r) + ": " + what); };
        auto node = tree.find(path);
        if (op == "create" || op == "mkdir" || op == "symlink" || op == "mknod") {
            if (node != tree.end()) note("already exists");
            Node n;
            n.kind = op == "create" ? Kind::file : op == "mkdir" ? Kind::dir : op == "symlink" ? Kind::symlink : Kind::other;
            if (n.kind == Kind::file) n.size = size_of(r).value_or(0);  // a new file is empty unless said otherwise
            if (n.kind == Kind::symlink) n.target = target;
            tree[path] = n;
        } else if (op == "link") {
            if (node == tree.end()) note("link source missing");
            if (tree.count(target)) note("link name already exists");
            tree[target] = node == tree.end() ? Node{} : node->second;
        } else if (op == "unlink" || op == "rmdir") {
            if (node == tree.end()) note("removes a missing path");
            erase_subtree(tree, path);
        } else if (op == "rename") {
            if (node == tree.end()) {
                note("renames a missing path");
                continue;
            }
            Listing moved;
            moved[target] = node->second;
            auto [first, last] = subtree_range(tree, path);
            for (auto it = first; it != last; ++it) moved[target + it->first.substr(path.size())] = it->second;
            erase_subtree(tree, path);
            erase_subtree(tree, target);
            tree.merge(moved);
        } else if (op == "exchange") {
            if (node == tree.end() || !tree.count(target)) {
                note("exchanges a missing path");
                continue;
            }
            Listing moved;
            for (auto [from, to] : {std::pair{path, target}, std::pair{target, path}}) {
                moved[to] = tree.at(from);
                auto [first, last] = subtree_range(tree, from);
                for (auto it = first; it != last; ++it) moved[to + it->first.substr(from.size())] = it->second;
            }
            erase_subtree(tree, path);
            erase_subtree(tree, target);
            tree.merge(moved);
        } else if (op == "write" || op == "truncate" || op == "close_write") {
            if (node == tree.end()) {
                note("about a missing path");
                continue;
            }
            if (node->second.kind != Kind::file) note("content of something that is not a file");
            node->second.size = size_of(r);
        } else if (op == "setattr" || op == "setxattr" || op == "removexattr") {
            if (!path.empty() && node == tree.end()) note("about a missing path");
        }
    }
    return tree;
}

Listing list_tree(const fs::path& root) {
    Listing out;
    for (auto& e : fs::recursive_directory_iterator(root)) {
        // Lexically: fs::relative would resolve a symlink to where it points.
        auto rel = e.path().lexically_relative(root).string();
        struct stat st{};
        if (::lstat(e.path().c_str(), &st) != 0) continue;
        Node n;
        if (S_ISREG(st.st_mode)) {
            n.kind = Kind::file;
            n.size = static_cast<uint64_t>(st.st_size);
        } else if (S_ISDIR(st.st_mode)) {
            n.kind = Kind::dir;
        } else if (S_ISLNK(st.st_mode)) {
            n.kind = Kind::symlink;
            n.target = fs::read_symlink(e.path()).string();
        } else {
            n.kind = Kind::other;
        }
        out[rel] = n;
    }
    return out;
}

std::vector<std::string> differences(const Listing& journaled, const Listing& on_disk, size_t limit) {
    std::vector<std::string> out;
    for (auto& [path, j] : journaled) {
        if (out.size() >= limit) return out;
        auto it = on_disk.find(path);
        if (it == on_disk.end()) {
            out.push_back(fmt::format("{}: journaled, not on disk", path));
            continue;
        }
        auto& d = it->second;
        if (j.kind != d.kind)
            out.push_back(fmt::format("{}: journaled as a {}, on disk a {}", path, kind_name(j.kind), kind_name(d.kind)));
        else if (j.kind == Kind::symlink && j.target != d.target)
            out.push_back(fmt::format("{}: journaled pointing to '{}', on disk to '{}'", path, j.target, d.target));
        else if (j.kind == Kind::file && j.size && j.size != d.size)
            out.push_back(fmt::format("{}: journaled with {} bytes, on disk {}", path, *j.size, *d.size));
    }
    for (auto& [path, d] : on_disk) {
        if (out.size() >= limit) return out;
        if (!journaled.count(path)) out.push_back(fmt::format("{}: on disk, not journaled", path));
    }
    return out;
}

}  // namespace iz::test::agent
