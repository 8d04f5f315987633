// Joining a shared fileset with a non-empty directory: the comparison and
// the plan (join_merge.hpp says what is adopted and why).
#include "join_merge.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <thread>
#include <unordered_map>


namespace iz::agent {

namespace tree = replicator::tree;

namespace {

// Whether the fileset's `theirs` is `mine` but for attributes: the same
// kind of entry with the same content.
bool same_entry(const tree::EntryMeta& mine, const tree::EntryMeta& theirs) {
    if (mine.type != theirs.type || mine.type == '!') return false;
    switch (mine.type) {
        case 'f': return mine.size == theirs.size && mine.content == theirs.content;
        case 'l': return mine.target == theirs.target;
        case 'c':
        case 'b': return mine.rdev == theirs.rdev;
        default: return true;  // directories (decided beneath), fifos, sockets
    }
}

void adopt_beneath(const tree::Node& node, const std::string& path,
                   const std::unordered_map<std::string, const replicator::Difference*>& differing, JoinPlan& plan) {
    for (auto& child : node.children) {
        std::string rel = path.empty() ? child.name : path + "/" + child.name;
        auto it = differing.find(rel);
        if (it != differing.end()) {
            const auto& d = *it->second;
            if (!d.replica) {
                ++plan.only_here;  // and everything beneath it: sent
                continue;
            }
            if (!d.source || !same_entry(*d.source, *d.replica)) {
                ++plan.differing;  // another entry there: the server's conflict rules decide
                continue;
            }
        }
        plan.adopted.insert(rel);
        if (child.meta.type == 'd') adopt_beneath(child, rel, differing, plan);
    }
}

}  // namespace

JoinPlan plan_join(const tree::Node& local, const std::vector<replicator::Difference>& diffs) {
    std::unordered_map<std::string, const replicator::Difference*> differing;
    for (auto& d : diffs) differing.emplace(d.path, &d);
    JoinPlan plan;
    adopt_beneath(local, "", differing, plan);
    return plan;
}

Result<JoinPlan> compare_for_join(int root_fd, replicator::ShipperOptions shipping,
                                  const std::vector<std::string>& excludes, std::chrono::milliseconds timeout) {
    tree::WalkOptions walk;
    walk.excludes = excludes;
    auto mine = tree::hash_path(root_fd, "", walk);
    if (!mine) return fail(make_error("walking the directory: " + mine.error().message));
    if (!*mine || (*mine)->children.empty()) return JoinPlan{};

    // A connection that only asks: nothing of the journal is sent, no
    // forward is taken, and no server holds the journal back for it.
    const std::string server = shipping.servers.front().to_string();
    shipping.servers.resize(1);
    shipping.send = false;
    shipping.receiver = nullptr;
    shipping.register_consumers = false;
    shipping.state_dir.clear();
    shipping.on_conflict = nullptr;
    shipping.on_acked = nullptr;
    shipping.settle_capture = nullptr;
    auto probe = replicator::Shipper::start(std::move(shipping));
    if (!probe) return fail(probe.error());
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto left = [&] {
        return std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                          deadline - std::chrono::steady_clock::now()));
    };
    for (;;) {
        auto st = (*probe)->status();
        if (!st.empty() && st.front().connected) break;
        if (std::chrono::steady_clock::now() >= deadline) {
            std::string why = st.empty() ? "" : st.front().last_error;
            (*probe)->stop();
            return fail(make_error(fmt::format("the server {} was not reached within {} ms{}", server,
                                               timeout.count(), why.empty() ? "" : ": " + why)));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    uint64_t wire = 0;
    replicator::AskReplica ask = [&](const replicator::proto::TreeRequest& req) {
        return (*probe)->ask_tree(0, req, left(), &wire);
    };
    auto diffs = replicator::compare_path(*mine, "", ask, true, excludes);
    (*probe)->stop();
    if (!diffs) return fail(make_error(fmt::format("comparing with the fileset on {}: {}", server,
                                                   diffs.error().message)));
    auto plan = plan_join(**mine, *diffs);
    plan.compare_bytes = wire;
    return plan;
}

}  // namespace iz::agent
