// The records of a directory kept against a removal (fileset_journal.hpp,
// note_subtree): the directory as the replica holds it, described by the
// hash-tree walk (tree_hash.hpp) and made by records_to_make(), the same
// records an agent's repair journals.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <utility>

#include "fileset_journal.hpp"
#include "replicator/apply/tree_records.hpp"
#include "replicator/fs/tree_hash.hpp"

namespace iz::replicator {

namespace {

using Inode = std::pair<uint64_t, uint64_t>;  // (dev, ino)

std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

// Every file of several links beneath `n` (at `path`): its names there.
void names_of_linked(const tree::Node& n, const std::string& path, std::map<Inode, std::vector<std::string>>& out) {
    if (n.ino != 0) out[{n.dev, n.ino}].push_back(path);
    for (auto& c : n.children) names_of_linked(c, join(path, c.name), out);
}

tree::Node* node_at(tree::Node& top, const std::string& top_path, const std::string& path) {
    return const_cast<tree::Node*>(tree::find_node(top, top_path, path));
}

}  // namespace

Status FilesetJournal::note_subtree(const std::string& server, const std::string& agent, const proto::OpMsg& op,
                                    const std::string& dir) {
    tree::WalkOptions walk;
    walk.reserved_top = reserved_top_;
    walk.content = false;          // described, not compared: the forwards read the content
    walk.conflict_copies = true;   // the server's copies are part of what the directory holds
    auto found = tree::hash_path(root_fd_.get(), dir, walk);
    if (!found) return fail(Error{fmt::format("describe '{}' to send it again: {}", dir, found.error().message),
                                  found.error().sys_errno});
    if (!*found) return {};  // gone meanwhile: nothing to send again
    tree::Node& top = **found;

    // A file whose other names are not all beneath `dir` keeps one outside
    // on the removing agent (it removed only what was in `dir`): the first
    // name met here is linked from that one, so the agent ends with one
    // object, not a copy beside it.
    std::map<Inode, std::vector<std::string>> inside;
    names_of_linked(top, dir, inside);
    std::map<Inode, std::string> outside;
    for (auto& [inode, names] : inside) {
        auto* first = node_at(top, dir, names.front());
        if (first && first->meta.nlink > names.size()) outside[inode];
    }
    if (!outside.empty()) {
        auto all = tree::hash_path(root_fd_.get(), "", walk);
        if (!all) return fail(Error{fmt::format("find the other names of the files in '{}': {}", dir,
                                                all.error().message),
                                    all.error().sys_errno});
        std::map<Inode, std::vector<std::string>> everywhere;
        if (*all) names_of_linked(**all, "", everywhere);
        std::string prefix = dir + "/";
        for (auto& [inode, name] : outside)
            for (auto& p : everywhere[inode])
                if (p != dir && !p.starts_with(prefix)) {
                    name = p;
                    break;
                }
        for (auto& [inode, name] : outside)
            if (!name.empty())
                if (auto* first = node_at(top, dir, inside[inode].front())) first->meta.link_group = name;
    }

    std::vector<journal::Record> records;
    records_to_make(top, dir, records);
    // Directory times last: the entries made in them changed them.
    std::stable_partition(records.begin(), records.end(),
                          [](const journal::Record& r) { return r.op != journal::Op::setattr; });
    for (auto& r : records) {
        r.origin = server;
        r.origin_lsn = op.lsn;
        r.time_ns = op.time_ns.value_or(0);
        std::string path = r.path, target = r.target;
        note_record(std::move(r), path, target, agent, nullptr);
    }
    return {};
}

}  // namespace iz::replicator
