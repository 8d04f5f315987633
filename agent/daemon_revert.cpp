// `izwatch revert DIR` (receive-only): the directory is made equal to the
// fileset on the first server again. On a thread of its own, answered on
// its control connection.
//
// How: what the directory has that the server's hash tree has not, or has
// as another entry (another type, other content or attributes), is removed
// first (directories of the same type stay: what differs beneath them is
// removed on its own); then the receiver subscribes again from cursor 0, so
// that the server forwards every record of its fileset (each write with the
// replica's current content) and every path the fileset has is set as the
// server holds it, removals included; then the trees are compared again,
// what the replay left beyond the server's tree is removed and directory
// attributes are set as the server has them. Removing the differing
// entries before the replay matters: a replayed operation meets the tree
// as the fileset left it, not as a user changed it (a create over a local
// directory, a removal of a directory a user filled, an xattr only this
// side has). Only once a last comparison finds the two equal are the local
// changes and the forwards passed over forgotten.
//
// Every removal and attribute set here is journaled with the origin
// kRevertOrigin: the capture journals nothing this process does, and a
// restart's rescan must find in the journal what the revert changed, or it
// takes it for a local change.

#include "daemon_impl.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <dirent.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "agent/control.hpp"
#include "common/path_tree.hpp"
#include "replicator/fs/verify_compare.hpp"

namespace iz::agent {

namespace tree = replicator::tree;

namespace {

constexpr const char* kRevertOrigin = "izwatch-revert";

std::pair<std::string, std::string> split_path(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return {".", path};
    return {path.substr(0, slash), path.substr(slash + 1)};
}

Result<UniqueFd> open_dir_beneath(int root_fd, const std::string& rel) {
    open_how how{};
    how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(::syscall(SYS_openat2, root_fd, rel.empty() ? "." : rel.c_str(), &how, sizeof how));
    if (fd < 0) return fail(sys_error("open the directory", rel.empty() ? "." : rel, errno));
    return UniqueFd(fd);
}

// Removes `name` in `dirfd` (at `path`), a directory with everything in
// it; each removed path is appended to `removed` (children first) with the
// record that journals it.
Status remove_entry(int dirfd, const std::string& name, const std::string& path, int depth,
                    std::vector<std::pair<std::string, bool>>& removed) {
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return {};
        return fail(sys_error("stat", path, errno));
    }
    if (!S_ISDIR(st.st_mode)) {
        if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) return fail(sys_error("remove", path, errno));
        removed.emplace_back(path, false);
        return {};
    }
    if (depth > 4096) return fail(make_error(fmt::format("remove '{}': too deep", path)));
    int raw = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (raw < 0) return fail(sys_error("open the directory", path, errno));
    UniqueFd sub(raw);
    std::vector<std::string> names;
    {
        int listed = ::dup(sub.get());
        if (listed < 0) return fail(sys_error("dup", path, errno));
        DIR* d = ::fdopendir(listed);
        if (!d) {
            ::close(listed);
            return fail(sys_error("list the directory", path, errno));
        }
        while (auto* e = ::readdir(d)) {
            std::string n = e->d_name;
            if (n != "." && n != "..") names.push_back(std::move(n));
        }
        ::closedir(d);
    }
    for (auto& n : names)
        if (auto ok = remove_entry(sub.get(), n, path + "/" + n, depth + 1, removed); !ok) return ok;
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
        return fail(sys_error("remove the directory", path, errno));
    removed.emplace_back(path, true);
    return {};
}

Status remove_path(int root_fd, const std::string& path, std::vector<std::pair<std::string, bool>>& removed) {
    auto [parent, leaf] = split_path(path);
    auto dir = open_dir_beneath(root_fd, parent == "." ? "" : parent);
    if (!dir) {
        if (dir.error().sys_errno == ENOENT) return {};
        return fail(dir.error());
    }
    return remove_entry(dir->get(), leaf, path, 0, removed);
}

// Sets the attributes of the directory at `path` as `server` has them.
Status set_dir_attrs(int root_fd, const std::string& path, const tree::EntryMeta& mine, const tree::EntryMeta& server) {
    auto dir = open_dir_beneath(root_fd, path);
    if (!dir) return fail(dir.error());
    int fd = dir->get();
    const std::string shown = path.empty() ? "." : path;
    if ((mine.uid != server.uid || mine.gid != server.gid) && ::fchown(fd, server.uid, server.gid) != 0)
        return fail(sys_error("set the owner of", shown, errno));
    if (::fchmod(fd, server.mode & 07777) != 0) return fail(sys_error("set the mode of", shown, errno));
    for (auto& [name, value] : mine.xattrs)
        if (!server.xattrs.count(name) && ::fremovexattr(fd, name.c_str()) != 0 && errno != ENODATA)
            return fail(sys_error("remove the xattr " + name + " of", shown, errno));
    for (auto& [name, value] : server.xattrs) {
        auto it = mine.xattrs.find(name);
        if (it != mine.xattrs.end() && it->second == value) continue;
        if (::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0) != 0)
            return fail(sys_error("set the xattr " + name + " of", shown, errno));
    }
    struct timespec times[2];
    times[0].tv_sec = 0;
    times[0].tv_nsec = UTIME_OMIT;
    times[1].tv_sec = server.mtime_ns / 1'000'000'000;
    times[1].tv_nsec = server.mtime_ns % 1'000'000'000;
    if (::futimens(fd, times) != 0) return fail(sys_error("set the times of", shown, errno));
    return {};
}

// Whether `name` is a copy this agent kept of a local version a forward
// replaced (NAME.conflict-<agent>-<stamp>[-N], receiver.hpp). The hash
// trees leave every conflict copy out (the server keeps its own on
// purpose), so these are found by name; a receive-only agent's changes
// never reach the server, so no copy of the fileset carries its name.
bool kept_by(const std::string& name, const std::string& agent) {
    auto at = name.rfind(".conflict-" + agent + "-");
    return at != std::string::npos && at > 0 && tree::is_conflict_copy(name.substr(at));
}

// The paths of the copies this agent kept, beneath the directory open as `dirfd`.
Status find_kept_copies(int dirfd, const std::string& path, const std::string& agent,
                        const std::vector<std::string>& excludes, int depth, std::vector<std::string>& out) {
    if (depth > 4096) return {};
    int listed = ::dup(dirfd);
    if (listed < 0) return fail(sys_error("dup", path.empty() ? "." : path, errno));
    DIR* d = ::fdopendir(listed);
    if (!d) {
        ::close(listed);
        return fail(sys_error("list the directory", path.empty() ? "." : path, errno));
    }
    std::vector<std::string> dirs;
    while (auto* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        std::string rel = path.empty() ? n : path + "/" + n;
        if (tree::path_excluded(excludes, rel)) continue;
        if (kept_by(n, agent)) out.push_back(rel);
        else if (e->d_type == DT_DIR) dirs.push_back(n);
    }
    ::closedir(d);
    for (auto& n : dirs) {
        int raw = ::openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (raw < 0) continue;  // gone or replaced meanwhile
        UniqueFd sub(raw);
        std::string rel = path.empty() ? n : path + "/" + n;
        if (auto ok = find_kept_copies(sub.get(), rel, agent, excludes, depth + 1, out); !ok) return ok;
    }
    return {};
}

nlohmann::json listed(const std::vector<replicator::Difference>& diffs) {
    nlohmann::json out = nlohmann::json::array();
    for (auto& d : diffs) out.push_back({{"path", d.path.empty() ? "." : d.path}, {"what", d.what}});
    return out;
}

}  // namespace

void DaemonImpl::serve_revert(UniqueFd conn, const nlohmann::json& request) {
    std::lock_guard lock(revert_mu_);
    if (revert_thread_.joinable()) {
        if (!revert_done_) {
            send_reply(conn.get(), {{"ok", false}, {"error", "a revert of this directory is under way already"}});
            return;
        }
        revert_thread_.join();
    }
    revert_done_ = false;
    double secs = request.value("timeout_s", 300.0);
    auto timeout = std::chrono::milliseconds(static_cast<int64_t>(secs * 1000));
    revert_thread_ = std::thread([this, c = std::move(conn), timeout]() mutable {
        nlohmann::json reply;
        try {
            auto done = revert(timeout);
            if (done) reply = *done;
            else reply = {{"ok", false}, {"error", done.error().message}};
        } catch (const std::exception& e) {
            reply = {{"ok", false}, {"error", std::string("internal error: ") + e.what()}};
        }
        if (receiver_) receiver_->end_revert();
        send_reply(c.get(), reply);
        c.reset();
        std::lock_guard lock(revert_mu_);
        revert_done_ = true;
    });
}

void DaemonImpl::stop_revert() {
    revert_cancel_ = true;
    std::thread running;
    {
        // Joined outside the lock: the thread takes it last thing.
        std::lock_guard lock(revert_mu_);
        running = std::move(revert_thread_);
    }
    if (running.joinable()) running.join();
}

Result<nlohmann::json> DaemonImpl::revert(std::chrono::milliseconds timeout) {
    if (opts_.mode != "receive-only")
        return fail(make_error(fmt::format(
            "{} is watched in --mode {}: revert is only for a receive-only directory (there it would destroy local "
            "work that is sent to the servers)",
            opts_.dir, opts_.mode)));
    if (!shipper_ || !receiver_ || !local_changes_)
        return fail(make_error(fmt::format("{} has no server to revert to", opts_.dir)));
    const std::string server = opts_.shipping.servers.front().to_string();
    auto deadline = Clock::now() + timeout;
    auto left = [&] {
        return std::max(std::chrono::milliseconds(1),
                        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    };
    auto unreachable = [&](const Error& e) {
        return make_error(fmt::format("the server {} is unreachable: {}; nothing was reverted", server, e.message));
    };
    auto head = shipper_->ask_head(std::min(left(), std::chrono::milliseconds(10000)));
    if (!head) return fail(unreachable(head.error()));

    tree::WalkOptions walk;
    walk.excludes = opts_.excludes;
    replicator::AskReplica ask = [&](const replicator::proto::TreeRequest& req) {
        return shipper_->ask_tree(0, req, std::min(left(), std::chrono::milliseconds(60000)));
    };
    auto compare = [&]() -> Result<std::vector<replicator::Difference>> {
        if (auto settled = settle_from_thread(); !settled) return fail(settled.error());
        auto mine = tree::hash_path(root_fd_, "", walk);
        if (!mine) return fail(make_error("walking the directory: " + mine.error().message));
        auto diffs = replicator::compare_path(*mine, "", ask, true, opts_.excludes);
        if (!diffs) return fail(diffs.error());
        std::sort(diffs->begin(), diffs->end(), [](const replicator::Difference& a, const replicator::Difference& b) {
            return tree::walk_order_less(a.path, b.path);
        });
        return diffs;
    };
    std::vector<std::string> removed_shown;   // the fileset has nothing there
    std::vector<std::string> replaced_shown;  // the fileset has another version
    size_t attrs_set = 0;
    // Removes what differs; with `dirs`, sets the attributes of the
    // directories both sides have. Returns the differences left.
    auto remove_differing = [&](const std::vector<replicator::Difference>& diffs,
                                bool dirs) -> Result<std::vector<replicator::Difference>> {
        std::vector<std::pair<std::string, bool>> removed;
        std::vector<replicator::Difference> left_over;
        std::vector<journal::Record> records;
        std::vector<std::string> gone;  // removed from the top, to skip what is beneath
        for (auto& d : diffs) {
            if (std::any_of(gone.begin(), gone.end(), [&](const std::string& g) { return at_or_beneath(d.path, g); }))
                continue;
            if (!d.source) {
                left_over.push_back(d);  // missing here: the replay brings it
                continue;
            }
            if (d.replica && d.replica->type == 'd' && d.source->type == 'd') {
                if (!dirs) continue;
                if (auto ok = set_dir_attrs(root_fd_, d.path, *d.source, *d.replica); !ok) return fail(ok.error());
                ++attrs_set;
                journal::Record r;
                r.op = journal::Op::setattr;
                r.path = d.path;
                r.mode = S_IFDIR | (d.replica->mode & 07777);
                r.owner_uid = d.replica->uid;
                r.owner_gid = d.replica->gid;
                r.mtime_ns = d.replica->mtime_ns;
                records.push_back(std::move(r));
                continue;
            }
            if (d.path.empty()) {
                left_over.push_back(d);  // the root itself is never removed
                continue;
            }
            size_t before = removed.size();
            if (auto ok = remove_path(root_fd_, d.path, removed); !ok) return fail(ok.error());
            if (removed.size() > before) {
                gone.push_back(d.path);
                (d.replica ? replaced_shown : removed_shown).push_back(d.path);
            }
        }
        for (auto& [path, dir] : removed) {
            journal::Record r;
            r.op = dir ? journal::Op::rmdir : journal::Op::unlink;
            r.path = path;
            records.push_back(std::move(r));
        }
        // Removals first: setting a directory's time after an entry in it
        // went keeps it.
        std::stable_partition(records.begin(), records.end(),
                              [](const journal::Record& r) { return r.op != journal::Op::setattr; });
        if (!records.empty()) {
            std::lock_guard lock(writer_mu_);
            if (revert_cancel_) return fail(make_error("the agent is stopping"));
            for (auto& r : records) {
                r.origin = kRevertOrigin;
                r.comm = "izwatch";
                r.message = fmt::format("izwatch revert to the fileset on {}", server);
                if (auto ok = writer_->append(std::move(r)); !ok) return fail(ok.error());
            }
        }
        return left_over;
    };

    // The copies this agent kept are local additions too.
    auto kept_copies = [&]() -> Result<std::vector<replicator::Difference>> {
        std::vector<std::string> paths;
        if (auto ok = find_kept_copies(root_fd_, "", opts_.shipping.agent_id, opts_.excludes, 0, paths); !ok)
            return fail(ok.error());
        std::vector<replicator::Difference> out;
        for (auto& p : paths) {
            replicator::Difference d;
            d.path = p;
            d.source = tree::EntryMeta{};
            d.source->type = 'f';
            out.push_back(std::move(d));
        }
        return out;
    };

    // 1. Local additions and local versions go first.
    auto first = compare();
    if (!first) return fail(unreachable(first.error()));
    auto copies = kept_copies();
    if (!copies) return fail(copies.error());
    size_t found = first->size() + copies->size();
    if (auto ok = remove_differing(*first, false); !ok) return fail(ok.error());
    if (auto ok = remove_differing(*copies, false); !ok) return fail(ok.error());

    // 2. Every record of the fileset again, from cursor 0.
    uint64_t rewound = receiver_->rewound();
    receiver_->rewind();
    shipper_->resubscribe("izwatch revert: subscribing again from the start of the fileset");
    for (;;) {
        if (revert_cancel_) return fail(make_error("the agent is stopping"));
        if (receiver_->rewound() > rewound) break;
        if (Clock::now() >= deadline)
            return fail(make_error(fmt::format("timed out: the server {} was not reached again to forward the fileset "
                                               "from its start",
                                               server)));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // Asked on the new connection (it may drop and be made again meanwhile).
    for (;;) {
        head = shipper_->ask_head(std::min(left(), std::chrono::milliseconds(5000)));
        if (head) break;
        if (revert_cancel_) return fail(make_error("the agent is stopping"));
        if (Clock::now() >= deadline)
            return fail(make_error(fmt::format("timed out asking the server {} for its fileset's head: {}", server,
                                               head.error().message)));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    while (receiver_->applied() < *head) {
        if (revert_cancel_) return fail(make_error("the agent is stopping"));
        if (Clock::now() >= deadline) {
            std::string why = receiver_->last_error();
            return fail(make_error(fmt::format("timed out: received server LSN {} of {} again{}", receiver_->applied(),
                                               *head, why.empty() ? "" : "; last error: " + why)));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }

    // 3. What the replay left beyond the server's tree, and directory
    // attributes; then the last comparison decides.
    auto second = compare();
    if (!second) return fail(second.error());
    if (auto ok = remove_differing(*second, true); !ok) return fail(ok.error());
    auto last = compare();
    if (!last) return fail(last.error());
    auto left_copies = kept_copies();
    if (!left_copies) return fail(left_copies.error());
    for (auto& c : *left_copies) last->push_back(std::move(c));
    receiver_->end_revert();
    nlohmann::json reply = {{"server", server},
                            {"differences_found", found},
                            {"removed", removed_shown},
                            {"replaced", replaced_shown},
                            {"directory_attributes_set", attrs_set},
                            {"replayed_through", *head}};
    if (!last->empty()) {
        reply["ok"] = false;
        reply["remaining"] = listed(*last);
        reply["error"] = fmt::format("{} still differs from the fileset on {} at {} path(s)", opts_.dir, server,
                                     last->size());
        return reply;
    }
    // Equal: nothing local is left, and nothing passed over differs.
    if (auto ok = local_changes_->clear(); !ok) spdlog::warn("revert: {}", ok.error().message);
    size_t forgotten = receiver_->forget_failures();
    reply["ok"] = true;
    reply["failures_forgotten"] = forgotten;
    spdlog::info("revert: {} equals the fileset on {} again: {} path(s) removed, {} forward(s) passed over forgotten",
                 opts_.dir, server, removed_shown.size(), forgotten);
    return reply;
}

}  // namespace iz::agent
