#include "replicator/fs/replica_trees.hpp"

#include <fcntl.h>

#include <fmt/format.h>

#include "common/path_tree.hpp"
#include "replicator/fs/beneath.hpp"

namespace iz::replicator {

namespace {
proto::TreeEntry entry_of(const tree::Node& n) { return proto::TreeEntry{n.name, tree::encode(n.meta), n.hash}; }
}  // namespace

ReplicaTrees::ReplicaTrees(std::filesystem::path root, std::string reserved_top, std::string cache_file)
    : root_(std::move(root)), reserved_top_(std::move(reserved_top)), cache_(std::move(cache_file)) {}

proto::TreeReply ReplicaTrees::answer(const proto::TreeRequest& req) {
    proto::TreeReply reply;
    reply.id = req.id;
    if (auto ok = check_wire_path(req.path, true, reserved_top_); !ok) {
        reply.error = ok.error().message;
        return reply;
    }
    std::lock_guard lock(mu_);
    if (!root_fd_.valid()) {
        int fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            reply.error = sys_error("open replica root", root_.string(), errno).message;
            return reply;
        }
        root_fd_.reset(fd);
    }
    bool walk = req.fresh || !last_ || last_->excludes != req.excludes || !at_or_beneath(req.path, last_->path);
    if (walk) {
        last_.reset();
        tree::WalkOptions o;
        o.excludes = req.excludes;
        o.reserved_top = reserved_top_;
        o.cache = &cache_;
        auto node = tree::hash_path(root_fd_.get(), req.path, o);
        if (!node) {
            reply.error = node.error().message;
            return reply;
        }
        // Saved after walks of the whole replica only (a recheck walks many
        // single paths; what it hashed is saved with the next whole walk),
        // and pruned when nothing was excluded: every file there is was met.
        // A cache: failing to save it costs only time.
        if (req.path.empty()) (void)cache_.save(req.excludes.empty());
        last_ = Walk{req.path, req.excludes, std::move(*node)};
    }
    const tree::Node* n = last_->node ? tree::find_node(*last_->node, last_->path, req.path) : nullptr;
    if (!n) return reply;
    reply.found = true;
    reply.self = entry_of(*n);
    if (req.list) {
        size_t bytes = 0;
        for (size_t i = static_cast<size_t>(std::min<uint64_t>(req.start, n->children.size())); i < n->children.size(); ++i) {
            if (bytes > kTreeReplyBudget) {
                reply.more = true;
                break;
            }
            reply.children.push_back(entry_of(n->children[i]));
            auto& e = reply.children.back();
            bytes += e.name.size() + e.meta.size() + e.hash.size() + 32;
        }
    }
    return reply;
}

}  // namespace iz::replicator
