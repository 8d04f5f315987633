#include "agent/repair_records.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "replicator/apply/tree_records.hpp"

namespace iz::agent {

using journal::Op;
using journal::Record;
using replicator::tree::EntryMeta;
using replicator::tree::Node;

namespace {

class Builder {
public:
    explicit Builder(std::vector<Record>& out) : out_(out) {}

    Record& add(Op op, const std::string& path) {
        Record r;
        r.op = op;
        r.path = path;
        return stamp(std::move(r));
    }

    // `r` with this repair's time and process, appended.
    Record& stamp(Record&& r) {
        r.time_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        r.pid = static_cast<int32_t>(::getpid());
        r.comm = "izwatch";
        out_.push_back(std::move(r));
        return out_.back();
    }

    void setattr(const std::string& path, const EntryMeta& m) { replicator::set_meta(add(Op::setattr, path), m); }

    // The file's whole content, atomically, with its attributes (a write of
    // unknown ranges closed: the shipper sends the blocks that differ).
    void content(const std::string& path) {
        add(Op::write, path);
        add(Op::close_write, path);
    }

    void xattrs(const std::string& path, const EntryMeta& want, const std::map<std::string, std::string>& have) {
        std::vector<Record> made;
        replicator::xattr_records(path, want, have, made);
        for (auto& r : made) stamp(std::move(r));
    }

    // `n` and everything beneath it, made anew on the replica; a file's
    // content is shipped as the file is when its close_write is read.
    void create(const Node& n, const std::string& path) {
        std::vector<Record> made;
        replicator::records_to_make(n, path, made);
        for (auto& r : made) {
            bool write = r.op == Op::write;
            std::string at = r.path;
            stamp(std::move(r));
            if (write) add(Op::close_write, at);
        }
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
