#include "replicator/fs/verify_compare.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "common/path_tree.hpp"
#include "replicator/fs/beneath.hpp"
#include "replicator/fs/replica_trees.hpp"

namespace iz::replicator {

namespace {

std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

Result<proto::TreeReply> asked(const AskReplica& ask, const proto::TreeRequest& req) {
    auto r = ask(req);
    if (!r) return r;
    if (!r->error.empty())
        return fail(make_error(fmt::format("the server could not hash its replica at '{}': {}", req.path.empty() ? "." : req.path,
                                           r->error)));
    return r;
}

// The children of the replica's directory at `path`, in parts when long.
Result<std::vector<proto::TreeEntry>> children_of(const std::string& path, const AskReplica& ask,
                                                  const std::vector<std::string>& excludes) {
    std::vector<proto::TreeEntry> out;
    for (;;) {
        proto::TreeRequest req;
        req.path = path;
        req.list = true;
        req.start = out.size();
        req.excludes = excludes;
        auto r = asked(ask, req);
        if (!r) return fail(r.error());
        if (!r->found) return out;  // gone meanwhile
        for (auto& c : r->children) out.push_back(std::move(c));
        if (!r->more || r->children.empty()) return out;
    }
}

class Comparer {
public:
    Comparer(const AskReplica& ask, const std::vector<std::string>& excludes) : ask_(ask), excludes_(excludes) {}

    Status nodes(const tree::Node& local, const proto::TreeEntry& remote, const std::string& path) {
        auto rmeta = tree::decode(remote.meta);
        if (!rmeta) return fail(make_error(fmt::format("the server's entry '{}': {}", path, rmeta.error().message)));
        auto what = tree::describe_differences(local.meta, *rmeta);
        bool dirs = local.meta.type == 'd' && rmeta->type == 'd';
        if (!dirs) {
            if (what.empty()) what.push_back("hash differs");
            out.push_back(Difference{path, local.meta, *rmeta, std::move(what)});
            return {};
        }
        if (!what.empty()) out.push_back(Difference{path, local.meta, *rmeta, std::move(what)});
        auto theirs = children_of(path, ask_, excludes_);
        if (!theirs) return fail(theirs.error());
        auto l = local.children.begin();
        auto r = theirs->begin();
        while (l != local.children.end() || r != theirs->end()) {
            if (r == theirs->end() || (l != local.children.end() && l->name < r->name)) {
                out.push_back(Difference{join(path, l->name), l->meta, std::nullopt, {"missing on the replica"}});
                ++l;
            } else if (l == local.children.end() || r->name < l->name) {
                auto m = tree::decode(r->meta);
                if (!m) return fail(make_error(fmt::format("the server's entry '{}': {}", join(path, r->name), m.error().message)));
                out.push_back(Difference{join(path, r->name), std::nullopt, *m, {"extra on the replica (not on the source)"}});
                ++r;
            } else {
                if (l->hash != r->hash) {
                    if (auto ok = nodes(*l, *r, join(path, l->name)); !ok) return ok;
                }
                ++l;
                ++r;
            }
        }
        return {};
    }

    std::vector<Difference> out;

private:
    const AskReplica& ask_;
    const std::vector<std::string>& excludes_;
};

}  // namespace

std::string Difference::summary() const {
    std::string out = (path.empty() ? std::string(".") : path) + ": ";
    for (size_t i = 0; i < what.size(); ++i) out += (i ? "; " : "") + what[i];
    return out;
}

Result<std::vector<Difference>> compare_path(const std::optional<tree::Node>& local, const std::string& path,
                                             const AskReplica& ask, bool fresh,
                                             const std::vector<std::string>& excludes) {
    proto::TreeRequest req;
    req.path = path;
    req.fresh = fresh;
    req.excludes = excludes;
    auto r = asked(ask, req);
    if (!r) return fail(r.error());
    std::vector<Difference> out;
    if (!local && !r->found) return out;
    if (!r->found) {
        out.push_back(Difference{path, local->meta, std::nullopt, {"missing on the replica"}});
        return out;
    }
    auto rmeta = tree::decode(r->self.meta);
    if (!rmeta) return fail(make_error(fmt::format("the server's entry '{}': {}", path, rmeta.error().message)));
    if (!local) {
        out.push_back(Difference{path, std::nullopt, *rmeta, {"extra on the replica (not on the source)"}});
        return out;
    }
    if (local->hash == r->self.hash) return out;
    Comparer c(ask, excludes);
    if (auto ok = c.nodes(*local, r->self, path); !ok) return fail(ok.error());
    return std::move(c.out);
}

Result<std::vector<std::pair<std::string, tree::EntryMeta>>> replica_subtree(const std::string& path, const AskReplica& ask,
                                                                             const std::vector<std::string>& excludes) {
    std::vector<std::pair<std::string, tree::EntryMeta>> out;
    proto::TreeRequest req;
    req.path = path;
    req.excludes = excludes;
    auto r = asked(ask, req);
    if (!r) return fail(r.error());
    if (!r->found) return out;
    auto m = tree::decode(r->self.meta);
    if (!m) return fail(make_error(fmt::format("the server's entry '{}': {}", path, m.error().message)));
    out.emplace_back(path, *m);
    // Breadth by an explicit list of directories still to read: no
    // recursion, however deep the tree.
    std::vector<std::string> dirs;
    if (m->type == 'd') dirs.push_back(path);
    for (size_t i = 0; i < dirs.size(); ++i) {
        auto kids = children_of(dirs[i], ask, excludes);
        if (!kids) return fail(kids.error());
        for (auto& k : *kids) {
            auto km = tree::decode(k.meta);
            if (!km) return fail(make_error(fmt::format("the server's entry '{}': {}", join(dirs[i], k.name), km.error().message)));
            out.emplace_back(join(dirs[i], k.name), *km);
            if (km->type == 'd') dirs.push_back(join(dirs[i], k.name));
        }
    }
    return out;
}

std::vector<std::string> covering_paths(std::vector<std::string> paths) {
    std::sort(paths.begin(), paths.end());
    paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
    std::vector<std::string> out;
    for (auto& p : paths) {
        bool covered = std::any_of(out.begin(), out.end(), [&](const std::string& top) { return at_or_beneath(p, top); });
        if (!covered) out.push_back(p);
    }
    return out;
}

AskReplica ask_local(int root_fd, std::string reserved_top) {
    auto trees = std::make_shared<ReplicaTrees>(fd_path(root_fd), std::move(reserved_top));
    return [trees](const proto::TreeRequest& req) -> Result<proto::TreeReply> { return trees->answer(req); };
}

}  // namespace iz::replicator
