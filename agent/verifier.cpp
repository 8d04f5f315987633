#include "agent/verifier.hpp"

#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <algorithm>
#include <future>
#include <map>

#include "agent/repair_records.hpp"
#include "common/path_tree.hpp"
#include "journal/reader.hpp"

namespace iz::agent {

namespace fs = std::filesystem;
using replicator::AskReplica;
using replicator::Difference;
namespace tree = replicator::tree;

namespace {

nlohmann::json diffs_json(const std::vector<Difference>& diffs) {
    nlohmann::json out = nlohmann::json::array();
    for (auto& d : diffs) out.push_back({{"path", d.path.empty() ? "." : d.path}, {"what", d.what}});
    return out;
}

// The paths (and second paths) of the journal's records after `after`.
std::vector<std::string> touched_since(const fs::path& dir, uint64_t after) {
    std::vector<std::string> out;
    auto r = journal::Reader::open(dir);
    if (!r || !(*r)->refresh() || !(*r)->seek_lsn(after + 1)) return out;
    for (;;) {
        auto rec = (*r)->next();
        if (!rec || !*rec) break;
        if ((*rec)->lsn <= after) continue;
        out.push_back((*rec)->path);
        if (!(*rec)->target.empty() && (*rec)->op != journal::Op::symlink) out.push_back((*rec)->target);
    }
    return out;
}

// What to walk again to check `diffs` once more: their paths, or the whole
// tree when one is of a file with several links (a path walked alone knows
// no other names of its file, so a difference in grouping would vanish).
std::vector<std::string> paths_of(const std::vector<Difference>& diffs) {
    std::vector<std::string> out;
    for (auto& d : diffs) {
        if ((d.source && d.source->nlink > 1) || (d.replica && d.replica->nlink > 1)) return {""};
        out.push_back(d.path);
    }
    return replicator::covering_paths(std::move(out));
}

class Run {
public:
    Run(int root_fd, const fs::path& journal_dir, replicator::Shipper& shipper, size_t server, VerifyHost& host,
        const VerifyOptions& o, ServerVerdict& v)
        : root_fd_(root_fd), journal_dir_(journal_dir), shipper_(shipper), server_(server), host_(host), o_(o), v_(v) {
        walk_.excludes = o.excludes;
        walk_.max_bytes_per_s = o.max_bytes_per_s;
        walk_.cache = o.cache;
        walk_.cancel = o.cancel;
        ask_ = [this](const replicator::proto::TreeRequest& req) {
            return shipper_.ask_tree(server_, req, o_.timeout, &v_.wire_bytes);
        };
    }

    Status run() {
        auto ok = compare_and_repair();
        if (ok && (v_.differences.empty() || v_.repaired)) forget_rejected();
        return ok;
    }

private:
    Status compare_and_repair() {
        auto lsn = synced();
        if (!lsn) return fail(lsn.error());
        compared_through_ = *lsn;
        // Both sides walk at once: the server's walk begins with the first
        // question, the source's here meanwhile.
        tree::WalkStats stats;
        auto local = std::async(std::launch::async, [&] { return tree::hash_path(root_fd_, "", walk_, &stats); });
        replicator::proto::TreeRequest first;
        first.path = "";
        first.fresh = true;
        first.excludes = o_.excludes;
        auto theirs = ask_(first);
        auto mine = local.get();
        v_.entries = stats.entries;
        v_.bytes_hashed = stats.bytes_hashed;
        if (!mine) return fail(make_error("walking the source: " + mine.error().message));
        if (!theirs) return fail(theirs.error());
        auto diffs = replicator::compare_path(*mine, "", ask_, false, o_.excludes);
        if (!diffs) return fail(diffs.error());
        if (diffs->empty()) return {};
        // A path walked alone knows no other names of its file: the hard-link
        // groups the repair needs are those of this walk of the whole tree.
        for (auto& d : *diffs)
            if (d.source && !d.source->link_group.empty()) groups_[d.path] = d.source->link_group;
        // Once more after another sync: a change made during the walk that
        // has reached the server since is not a divergence.
        lsn = synced();
        if (!lsn) return fail(lsn.error());
        auto again = recheck(paths_of(*diffs));
        if (!again) return fail(again.error());
        // What changed during the recheck is journaled now (writes wait a
        // moment to be coalesced), so that the journal names it below.
        if (auto settled = host_.settle(); !settled) return fail(settled.error());
        auto touched = touched_since(journal_dir_, *lsn);
        for (auto& d : *again) {
            bool changing = std::any_of(touched.begin(), touched.end(), [&](const std::string& t) {
                return at_or_beneath(d.path, t) || at_or_beneath(t, d.path);
            });
            if (changing) v_.changing.push_back(d.path.empty() ? "." : d.path);
            else v_.differences.push_back(std::move(d));
        }
        if (o_.repair && !v_.differences.empty()) return repair();
        return {};
    }

    // The replica was equal, or repaired, after everything through
    // compared_through_ was applied: what the server reported it could not
    // apply through there is on it now. Told so, status lists it no more
    // and sync stops failing for it; until then both did until the agent
    // restarted, whatever was repaired.
    void forget_rejected() {
        std::vector<std::string> changing;
        for (auto& c : v_.changing) changing.push_back(c == "." ? std::string() : c);
        if (size_t n = shipper_.forget_rejected(server_, compared_through_, changing))
            spdlog::info("verify: the replica on {} is equal to the source: {} operation(s) it reported it could not "
                         "apply through LSN {} are no longer missing",
                         v_.server, n, compared_through_);
    }

    // Synced: everything journaled so far is durable on the server.
    Result<uint64_t> synced() {
        auto lsn = host_.settle();
        if (!lsn) return fail(lsn.error());
        if (auto ok = shipper_.wait_acked_by(server_, *lsn, o_.timeout); !ok) return fail(ok.error());
        return *lsn;
    }

    Result<std::vector<Difference>> recheck(const std::vector<std::string>& paths) {
        std::vector<Difference> out;
        for (auto& p : paths) {
            auto mine = tree::hash_path(root_fd_, p, walk_);
            if (!mine) return fail(make_error("walking the source: " + mine.error().message));
            auto diffs = replicator::compare_path(*mine, p, ask_, true, o_.excludes);
            if (!diffs) return fail(diffs.error());
            for (auto& d : *diffs) out.push_back(std::move(d));
        }
        return out;
    }

    Status repair() {
        // In walk order: the first name of a hard-link group is made before
        // the others are linked to it.
        std::sort(v_.differences.begin(), v_.differences.end(),
                  [](const Difference& a, const Difference& b) { return tree::walk_order_less(a.path, b.path); });
        std::vector<journal::Record> records;
        for (auto& d : v_.differences) {
            auto source = tree::hash_path(root_fd_, d.path, walk_);
            if (!source) return fail(make_error("walking the source: " + source.error().message));
            if (*source && (**source).meta.nlink > 1) {
                auto g = groups_.find(d.path);
                if (g != groups_.end()) (**source).meta.link_group = g->second;
            }
            std::vector<std::pair<std::string, tree::EntryMeta>> replica;
            bool goes = d.replica && (!*source || (**source).meta.type != d.replica->type);
            if (goes && d.replica->type == 'd') {
                auto sub = replicator::replica_subtree(d.path, ask_, o_.excludes);
                if (!sub) return fail(sub.error());
                replica = std::move(*sub);
            } else if (d.replica) {
                replica.emplace_back(d.path, *d.replica);
            }
            auto recs = repair_records(d, *source, replica);
            for (auto& r : recs) records.push_back(std::move(r));
        }
        // The server may apply them in several batches: a directory's time
        // set before an entry beneath it is made would not survive it.
        directory_times_last(records);
        v_.repair_records = records.size();
        auto last = host_.journal(std::move(records));
        if (!last) return fail(make_error("journaling the repair: " + last.error().message));
        if (auto ok = shipper_.wait_acked_by(server_, *last, o_.timeout); !ok)
            return fail(make_error("waiting for the repair to be applied: " + ok.error().message));
        auto after = recheck(paths_of(v_.differences));
        if (!after) return fail(after.error());
        v_.remaining = std::move(*after);
        v_.repaired = v_.remaining.empty();
        return {};
    }

    int root_fd_;
    const fs::path& journal_dir_;
    replicator::Shipper& shipper_;
    size_t server_;
    VerifyHost& host_;
    const VerifyOptions& o_;
    ServerVerdict& v_;
    tree::WalkOptions walk_;
    AskReplica ask_;
    std::map<std::string, std::string> groups_;  // path -> its hard-link group, from the whole walk
    uint64_t compared_through_ = 0;  // the LSN the server had applied when the replica was first compared
};

}  // namespace

nlohmann::json ServerVerdict::to_json() const {
    nlohmann::json j = {{"server", server},
                        {"equal", equal()},
                        {"differences", diffs_json(differences)},
                        {"changing", changing},
                        {"repair_records", repair_records},
                        {"repaired", repaired},
                        {"remaining", diffs_json(remaining)},
                        {"wire_bytes", wire_bytes},
                        {"entries", entries},
                        {"bytes_hashed", bytes_hashed},
                        {"seconds", seconds}};
    if (!error.empty()) j["error"] = error;
    return j;
}

ServerVerdict verify_server(int root_fd, const fs::path& journal_dir, replicator::Shipper& shipper, size_t server,
                            const std::string& endpoint, VerifyHost& host, const VerifyOptions& options) {
    auto started = std::chrono::steady_clock::now();
    ServerVerdict v;
    v.server = endpoint;
    try {
        Run run(root_fd, journal_dir, shipper, server, host, options, v);
        if (auto ok = run.run(); !ok) v.error = ok.error().message;
    } catch (const std::exception& e) {
        v.error = std::string("internal error: ") + e.what();
    }
    v.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return v;
}

}  // namespace iz::agent
