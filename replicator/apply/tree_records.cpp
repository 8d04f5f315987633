#include "replicator/apply/tree_records.hpp"

#include <sys/stat.h>

#include "replicator/fs/tree_hash.hpp"

namespace iz::replicator {

using journal::Op;
using journal::Record;

namespace {

uint32_t type_bits(char t) {
    switch (t) {
        case 'd': return S_IFDIR;
        case 'f': return S_IFREG;
        case 'l': return S_IFLNK;
        case 'p': return S_IFIFO;
        case 'c': return S_IFCHR;
        case 'b': return S_IFBLK;
        case 's': return S_IFSOCK;
    }
    return 0;
}

std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

Record& add(std::vector<Record>& out, Op op, const std::string& path) {
    Record r;
    r.op = op;
    r.path = path;
    out.push_back(std::move(r));
    return out.back();
}

}  // namespace

void set_meta(Record& r, const tree::EntryMeta& m) {
    r.mode = type_bits(m.type) | m.mode;
    r.owner_uid = m.uid;
    r.owner_gid = m.gid;
    r.mtime_ns = m.mtime_ns;
}

void xattr_records(const std::string& path, const tree::EntryMeta& want, const std::map<std::string, std::string>& have,
                   std::vector<Record>& out) {
    for (auto& [k, v] : want.xattrs) {
        auto it = have.find(k);
        if (it != have.end() && it->second == v) continue;
        auto& r = add(out, Op::setxattr, path);
        r.xattr_name = k;
        r.xattr_value = v;
    }
    for (auto& [k, v] : have) {
        if (want.xattrs.count(k)) continue;
        add(out, Op::removexattr, path).xattr_name = k;
    }
}

void records_to_make(const tree::Node& n, const std::string& path, std::vector<Record>& out) {
    auto& m = n.meta;
    switch (m.type) {
        case 'd': set_meta(add(out, Op::mkdir, path), m); break;
        case 'f':
            // Another name of a file made before it: a link.
            if (!m.link_group.empty()) {
                add(out, Op::link, m.link_group).target = path;
                return;
            }
            add(out, Op::write, path);
            break;
        case 'l': {
            auto& r = add(out, Op::symlink, path);
            set_meta(r, m);
            r.target = m.target;
            break;
        }
        case 'p':
        case 'c':
        case 'b':
        case 's': {
            auto& r = add(out, Op::mknod, path);
            set_meta(r, m);
            r.rdev = m.rdev;
            break;
        }
        default: return;  // unreadable where it was walked: nothing to send
    }
    if (m.type != 'l') xattr_records(path, m, {}, out);
    if (m.type != 'd') return;
    for (auto& c : n.children) records_to_make(c, join(path, c.name), out);
    // Its entries were made after it: its own times go last.
    set_meta(add(out, Op::setattr, path), m);
}

}  // namespace iz::replicator
