#include "agent/crash_recovery.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <map>

#include "journal/reader.hpp"

namespace iz::agent {

using journal::Op;

Result<size_t> recover_unsaved_entries(const std::filesystem::path& journal_dir, int root_fd, Tree& persisted) {
    auto reader = journal::Reader::open(journal_dir);
    if (!reader) return fail(reader.error());
    auto& r = **reader;
    if (auto ok = r.seek_tail(); !ok) return fail(ok.error());
    // path -> made a directory; read backwards to the last start.
    std::map<std::string, bool> made;
    bool first = true;
    for (;;) {
        auto rec = r.prev();
        if (!rec) return fail(rec.error());
        if (!*rec) break;
        const auto& x = **rec;
        if (first && x.op == Op::stop) return size_t{0};  // stopped cleanly: the state is complete
        first = false;
        if (x.op == Op::start) break;
        switch (x.op) {
            case Op::create:
            case Op::mknod:
            case Op::symlink: made.try_emplace(x.path, false); break;
            case Op::mkdir: made[x.path] = true; break;
            case Op::link:
            case Op::rename: made.try_emplace(x.target, false); break;
            case Op::exchange:
                made.try_emplace(x.path, false);
                made.try_emplace(x.target, false);
                break;
            default: break;
        }
    }
    // Anything beneath a path makes it a directory.
    for (auto& [path, dir] : made)
        for (auto parent = path.rfind('/'); parent != std::string::npos; parent = path.rfind('/', parent - 1)) {
            if (auto it = made.find(path.substr(0, parent)); it != made.end()) it->second = true;
            if (parent == 0) break;
        }
    size_t added = 0;
    for (auto& [path, dir] : made) {
        if (persisted.count(path)) continue;
        struct stat st{};
        if (::fstatat(root_fd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) continue;
        Entry e;
        e.mode = dir ? (S_IFDIR | 0755) : (S_IFREG | 0644);
        persisted[path] = e;
        ++added;
    }
    return added;
}

}  // namespace iz::agent
