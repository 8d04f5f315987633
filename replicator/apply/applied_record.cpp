#include "replicator/apply/applied_record.hpp"

namespace iz::replicator {

std::optional<journal::Record> journal_record_of(const proto::OpMsg& op, std::string origin, uint64_t origin_lsn) {
    using journal::Op;
    using proto::OpKind;
    journal::Record r;
    auto k = static_cast<uint8_t>(op.kind);
    if (op.kind == OpKind::content_end) r.op = Op::write;
    else if (op.kind == OpKind::exchange) r.op = Op::exchange;
    else if (op.kind == OpKind::conflict) {
        r.op = Op::conflict;
        r.message = op.note;
    }
    else if (k >= static_cast<uint8_t>(OpKind::create) && k <= static_cast<uint8_t>(OpKind::removexattr))
        r.op = static_cast<Op>(k);  // the shared numbers (common/mutation_ops.hpp)
    else return std::nullopt;
    r.path = op.path;
    r.target = op.target;
    r.mode = op.mode;
    r.owner_uid = op.uid;
    r.owner_gid = op.gid;
    r.atime_ns = op.atime_ns;
    r.mtime_ns = op.mtime_ns;
    r.size = op.size;
    r.rdev = op.rdev;
    r.replaced = op.replaced;
    r.xattr_name = op.xattr_name;
    r.xattr_value = op.xattr_value;
    r.origin = std::move(origin);
    r.origin_lsn = origin_lsn;
    return r;
}

}  // namespace iz::replicator
