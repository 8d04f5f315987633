#include "forwarded_dir_times.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include "replicator/fs/beneath.hpp"

namespace iz::replicator {

using journal::Op;

namespace {

std::string parent_of(const std::string& path) { return std::string(split_parent(path).first); }

// The directories whose times `r` changes: the parents of the names it
// makes, removes or moves, and the entry itself when it sets times.
std::vector<std::string> dirs_changed(const journal::Record& r) {
    std::vector<std::string> out;
    switch (r.op) {
        case Op::setattr:
            if (!r.mode || S_ISDIR(*r.mode)) out.push_back(r.path);
            return out;
        case Op::create:
        case Op::mkdir:
        case Op::mknod:
        case Op::symlink:
        case Op::unlink:
        case Op::rmdir:
        case Op::write:  // may be what made the file (a creation shipped with its content)
            if (!r.path.empty()) out.push_back(parent_of(r.path));
            return out;
        case Op::link:
        case Op::rename:
        case Op::exchange:
            if (!r.path.empty()) out.push_back(parent_of(r.path));
            if (!r.target.empty()) out.push_back(parent_of(r.target));
            return out;
        default:
            return out;
    }
}

}  // namespace

void ForwardedDirTimes::forwarded(const journal::Record& r) {
    for (auto& d : dirs_changed(r)) told_.insert(std::move(d));
}

void ForwardedDirTimes::passed_over(const journal::Record& r) {
    for (auto& d : dirs_changed(r))
        if (told_.count(d)) due_.insert(std::move(d));
}

std::vector<std::string> ForwardedDirTimes::take_due() {
    std::vector<std::string> out(due_.begin(), due_.end());
    due_.clear();
    return out;
}

Result<std::optional<proto::Forward>> times_forward(int root_fd, const std::string& dir, uint64_t lsn,
                                                    const std::string& origin) {
    auto fd = open_beneath(root_fd, dir, O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (!fd) return std::optional<proto::Forward>{};  // moved or removed since: a later record says so
    struct stat st{};
    if (::fstat(fd->get(), &st) != 0) return fail(sys_error("stat replica directory", dir, errno));
    if (!S_ISDIR(st.st_mode)) return std::optional<proto::Forward>{};
    proto::Forward f;
    f.origin = origin;
    f.op.lsn = lsn;
    f.op.kind = proto::OpKind::setattr;
    f.op.path = dir;
    f.op.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    return std::optional<proto::Forward>{std::move(f)};
}

}  // namespace iz::replicator
