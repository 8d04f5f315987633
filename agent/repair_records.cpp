#include "agent/repair_records.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

namespace iz::agent {

using journal::Op;
using journal::Record;
using replicator::tree::EntryMeta;
using replicator::tree::Node;

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

class Builder {
public:
    explicit Builder(std::vector<Record>& out) : out_(out) {}

    Record& add(Op op, const std::string& path) {
        Record r;
        r.op = op;
        r.path = path;
        r.time_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        r.pid = static_cast<int32_t>(::getpid());
        r.comm = "izwatch";
        out_.push_back(std::move(r));
        return out_.back();
    }

    void attrs(Record& r, const EntryMeta& m) {
        r.mode = type_bits(m.type) | m.mode;
        r.owner_uid = m.uid;
        r.owner_gid = m.gid;
        r.mtime_ns = m.mtime_ns;
    }

    void setattr(const std::string& path, const EntryMeta& m) { attrs(add(Op::setattr, path), m); }

    // The file's whole content, atomically, with its attributes (a write of
    // unknown ranges closed: the shipper sends the blocks that differ).
    void content(const std::string& path) {
        add(Op::write, path);
        add(Op::close_write, path);
    }

    void xattrs(const std::string& path, const EntryMeta& want, const std::map<std::string, std::string>& have) {
        for (auto& [k, v] : want.xattrs) {
            auto it = have.find(k);
            if (it != have.end() && it->second == v) continue;
            auto& r = add(Op::setxattr, path);
            r.xattr_name = k;
            r.xattr_value = v;
        }
        for (auto& [k, v] : have) {
            if (want.xattrs.count(k)) continue;
            add(Op::removexattr, path).xattr_name = k;
        }
    }

    // `n` and everything beneath it, made anew on the replica.
    void create(const Node& n, const std::string& path) {
        auto& m = n.meta;
        switch (m.type) {
            case 'd': attrs(add(Op::mkdir, path), m); break;
            case 'f':
                // Another name of a file made before it (walk order): a link.
                if (!m.link_group.empty()) {
                    add(Op::link, m.link_group).target = path;
                    return;
                }
                content(path);
                break;
            case 'l': {
                auto& r = add(Op::symlink, path);
                attrs(r, m);
                r.target = m.target;
                break;
            }
            case 'p':
            case 'c':
            case 'b':
            case 's': {
                auto& r = add(Op::mknod, path);
                attrs(r, m);
                r.rdev = m.rdev;
                break;
            }
            default: return;  // unreadable on the source: nothing to send
        }
        if (m.type != 'l') xattrs(path, m, {});
        if (m.type != 'd') return;
        for (auto& c : n.children) create(c, join(path, c.name));
        // Its entries were made after it: its own times go last.
        setattr(path, m);
    }

    // The replica's entries (parents first) removed, children first.
    void remove(const std::vector<std::pair<std::string, EntryMeta>>& replica) {
        for (auto it = replica.rbegin(); it != replica.rend(); ++it)
            add(it->second.type == 'd' ? Op::rmdir : Op::unlink, it->first);
    }

private:
    std::vector<Record>& out_;
};

}  // namespace

std::vector<Record> repair_records(const replicator::Difference& d, const std::optional<Node>& source,
                                   const std::vector<std::pair<std::string, EntryMeta>>& replica) {
    std::vector<Record> out;
    Builder b(out);
    b.add(Op::repair, d.path).message = "the replica differs: " + d.summary();
    const EntryMeta* theirs = replica.empty() ? nullptr : &replica.front().second;
    if (!source) {
        b.remove(replica);
        return out;
    }
    auto& mine = source->meta;
    if (mine.type == '!') return out;  // the source could not be read: nothing to send
    if (!theirs || theirs->type != mine.type) {
        if (theirs) b.remove(replica);
        b.create(*source, d.path);
        return out;
    }
    bool recreate = (mine.type == 'l' && mine.target != theirs->target) ||
                    ((mine.type == 'c' || mine.type == 'b') && mine.rdev != theirs->rdev) ||
                    (mine.type == 'f' && mine.link_group != theirs->link_group);
    if (recreate) {
        b.add(Op::unlink, d.path);
        b.create(*source, d.path);
        return out;
    }
    if (mine.type == 'f' && (mine.size != theirs->size || mine.content != theirs->content)) {
        b.content(d.path);  // ends with the file's attributes
    } else if (mine.mode != theirs->mode || mine.uid != theirs->uid || mine.gid != theirs->gid ||
               mine.mtime_ns != theirs->mtime_ns) {
        b.setattr(d.path, mine);
    }
    if (mine.type != 'l') b.xattrs(d.path, mine, theirs->xattrs);
    return out;
}

void directory_times_last(std::vector<Record>& records) {
    std::stable_partition(records.begin(), records.end(),
                          [](const Record& r) { return !(r.op == Op::setattr && r.mode && S_ISDIR(*r.mode)); });
}

}  // namespace iz::agent
