#include "sample_records.hpp"

#include <fmt/format.h>

namespace iz::test {

using journal::Op;
using journal::Record;

std::vector<Record> sample_records() {
    std::vector<Record> out;
    int64_t t = 1'764'064'800'000'000'000;  // 2025-11-25T10:00:00Z
    for (uint8_t raw = static_cast<uint8_t>(journal::kFirstOp); raw <= static_cast<uint8_t>(journal::kLastOp); ++raw) {
        if (!journal::op_is_valid(raw)) continue;
        Record r;
        r.op = static_cast<Op>(raw);
        r.time_ns = t + raw * 1'000'000;
        r.path = fmt::format("dir/{}-file", journal::op_name(r.op));
        r.handle = {1, std::string("\x01\x02\x03\x04\x00\xff\x10\x20", 8)};
        r.version = raw;
        r.pid = 1000 + raw;
        r.uid = 1000;
        r.gid = 100;
        r.comm = "editor";
        switch (r.op) {
            case Op::create: r.mode = 0100644; r.owner_uid = 1000; r.owner_gid = 100; r.mtime_ns = t; break;
            case Op::mkdir: r.mode = 040755; break;
            case Op::mknod: r.mode = 020600; r.rdev = 0x0501; break;
            case Op::symlink: r.target = "../elsewhere/target"; break;
            case Op::link: r.target = "dir/hardlink"; break;
            case Op::rename:
                r.target = "other/renamed";
                r.replaced = true;
                r.replaced_handle = {1, "\x09\x08\x07"};
                break;
            case Op::exchange:
                r.target = "other/swapped";
                r.replaced_handle = {1, "\x09\x08\x07"};
                break;
            case Op::setattr:
                r.mode = 0100600; r.owner_uid = 0; r.owner_gid = 0; r.atime_ns = t - 5; r.mtime_ns = t - 7;
                break;
            case Op::write: r.ranges = {{0, 4096}, {1 << 20, 12}}; r.size = (1 << 20) + 12; break;
            case Op::truncate: r.size = 12345; break;
            case Op::setxattr: r.xattr_name = "user.tag"; r.xattr_value = std::string("v\0al", 4); break;
            case Op::removexattr: r.xattr_name = "user.tag"; break;
            case Op::close_write: r.size = 42; r.mtime_ns = t; break;
            case Op::start: case Op::stop: case Op::overflow: case Op::rescan: case Op::conflict: case Op::repair:
                r.path.clear();
                r.pid.reset(); r.uid.reset(); r.gid.reset(); r.comm.clear();
                r.message = fmt::format("agent {}", journal::op_name(r.op));
                break;
            default: break;
        }
        out.push_back(r);
    }
    return out;
}

Record realistic_record(uint64_t n, uint32_t thread) {
    Record r;
    r.op = Op::write;
    r.path = fmt::format("projects/src/module-{}/file-{:06}.cpp", thread, n);
    r.handle = {1, std::string(12, static_cast<char>(n & 0x7f))};
    r.version = n;
    r.pid = static_cast<int32_t>(4000 + thread);
    r.uid = 1000;
    r.gid = 1000;
    r.comm = "cc1plus";
    r.ranges = {{n * 4096, 4096}};
    r.size = (n + 1) * 4096;
    return r;
}

}  // namespace iz::test
