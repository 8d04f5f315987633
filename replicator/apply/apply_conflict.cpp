// Conflicts: a regular file the replicator finds changed behind its back is
// kept under a new name before the source's version takes its place.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <ctime>
#include <vector>

#include "apply_impl.hpp"
#include "remove_tree.hpp"

namespace iz::replicator {

namespace {

std::string utc_stamp() {
    std::time_t now = std::time(nullptr);
    struct tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    return buf;
}

std::string safe_host(const std::string& host) {
    std::string out;
    for (char c : host) out.push_back(c == '/' || c == '\0' ? '_' : c);
    return out.empty() ? "server" : out;
}

}  // namespace

std::optional<std::string> ApplierImpl::changed_behind(const std::string& path, const struct stat& st) const {
    // The agent resends what was not durable; a file it finds changed may
    // be this replicator's own unremembered work from before the stop. A
    // change made by someone else in that window is overwritten without a
    // conflict copy: the price of not raising false conflicts after every
    // crash.
    if (recovering_ || shared_) return std::nullopt;
    return memory_->changed(path, st);
}

// A directory the source replaced (rmdir, or a rename over it) was empty on
// the source: rename(2) and rmdir(2) refuse a non-empty one. When it is not
// empty here, its entries are either the server's own (a conflict, kept
// aside) or, when a batch is replayed over its own result, files the
// replicator itself put there later in that batch ("mkdir a; fill a; rename
// a b" replayed finds b already full). Those may go: nothing of the
// server's is lost and the replay recreates them. Only regular files the
// file memory recorded and that are unchanged since count as ours, with
// directories holding nothing else; a symlink, a special file, or an
// unknown or changed file keeps the whole directory aside.
bool ApplierImpl::remove_if_ours(int dirfd, const std::string& name, const std::string& path) {
    return remove_tree_if(dirfd, name, path, [&](int, const std::string&, const std::string& at, const struct stat& st) {
        return S_ISDIR(st.st_mode) || (S_ISREG(st.st_mode) && memory_->ours(at, st));
    });
}

Status ApplierImpl::keep_conflict(Parent& p, const std::string& path, const std::string& why, KeepHow how) {
    std::string suffix = fmt::format(".conflict-{}-{}", safe_host(opts_.host), utc_stamp());
    std::string base = p.name.substr(0, std::min<size_t>(p.name.size(), 255 - std::min<size_t>(suffix.size() + 4, 200)));
    auto [parent_path, leaf] = split_parent(path);
    for (int i = 0; i < 100; ++i) {
        std::string name = base + suffix + (i ? fmt::format("-{}", i) : "");
        if (how == KeepHow::move) {
            if (::renameat2(p.dir.get(), p.name.c_str(), p.dir.get(), name.c_str(), RENAME_NOREPLACE) != 0) {
                if (errno == EEXIST) continue;
                return fail(sys_error("keep the server's version of", path, errno));
            }
            memory_->forget(path);
        } else {
            auto node = open_beneath(p.dir.get(), p.name, O_PATH | O_NOFOLLOW);
            if (!node) return fail(node.error());
            int in = ::open(fd_path(node->get()).c_str(), O_RDONLY | O_CLOEXEC);
            if (in < 0) return fail(sys_error("open to keep the server's version of", path, errno));
            UniqueFd src(in);
            auto dst = open_beneath(p.dir.get(), name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
            if (!dst) {
                if (dst.error().sys_errno == EEXIST) continue;
                return fail(dst.error());
            }
            struct stat st{};
            ::fstat(src.get(), &st);
            if (auto ok = copy_bytes(src.get(), dst->get(), static_cast<uint64_t>(st.st_size), path); !ok) return ok;
            if (::fchown(dst->get(), st.st_uid, st.st_gid) != 0 || ::fchmod(dst->get(), st.st_mode & 07777) != 0)
                return fail(sys_error("copy attributes to the kept version of", path, errno));
            struct timespec ts[2] = {st.st_atim, st.st_mtim};
            ::futimens(dst->get(), ts);
        }
        ConflictNote note;
        note.lsn = current_lsn_;
        note.path = path;
        note.conflict_copy = parent_path.empty() ? name : std::string(parent_path) + "/" + name;
        note.message = why;
        conflicts_.push_back(std::move(note));
        return {};
    }
    // A hundred names of this second all taken: something makes these
    // names on purpose (nothing of this server's makes a hundred conflicts
    // of one file in a second). The server's version stays where it is,
    // untouched, so nothing is lost by leaving the source's out; failed, the
    // connection was dropped and the same record sent again for ever, as
    // long as the names stood in the way. So it is rejected: reported, and
    // the next change of the file, or a verify --repair, brings it.
    return fail(rejection(fmt::format(
        "no free name to keep the server's version of '{}' ({} to {}-99 are all taken); the server's version is kept "
        "as it is and the source's left out",
        path, base + suffix, base + suffix)));
}

}  // namespace iz::replicator
