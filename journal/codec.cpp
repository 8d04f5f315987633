#include "journal/codec.hpp"

#include <stdexcept>

#include "common/archive_fields.hpp"
#include "common/binary_archive.hpp"

namespace iz::journal {

namespace {

// Decoding may see bytes from the network. cereal sizes a container from the
// length prefix before reading it, so a hostile prefix could ask for
// gigabytes: every length is checked against the input size first.
thread_local size_t decode_limit = 0;

void check_length(uint64_t n) {
    if (n > decode_limit) throw std::length_error("length prefix " + std::to_string(n) + " exceeds the input");
}

void check(uint64_t n, uint64_t unit) { check_length(n * unit); }

template <class Archive>
void ranges(Archive& ar, std::vector<ByteRange>& v) {
    archive_fields::seq(ar, v, 16, check, [](Archive& a, ByteRange& r) { a(r.offset, r.length); });
}

// Field order is the on-disk format: append new fields at the end only.
// Booleans and optionals are cereal's encodings, loaded with their flag
// byte checked (a byte above 1 is refused: the writer never writes one, so
// a record holding it, past the frame's checksum, is not one this code
// wrote).
template <class Archive>
void record(Archive& ar, Record& r) {
    using archive_fields::all;
    all(ar, check, r.lsn, r.time_ns, r.op, r.path, r.target, r.handle.type, r.handle.bytes, r.version, r.pid, r.uid,
        r.gid, r.comm, r.mode, r.owner_uid, r.owner_gid, r.atime_ns, r.mtime_ns, r.size, r.rdev);
    ranges(ar, r.ranges);
    all(ar, check, r.replaced, r.replaced_handle.type, r.replaced_handle.bytes, r.xattr_name, r.xattr_value,
        r.message);
    // Appended fields, written only for a change that came from elsewhere:
    // a local record keeps the bytes it had before they existed (so older
    // readers and the PortableBinary equality hold), and a record that ends
    // here reads as a change made where the journal was written.
    if constexpr (archive_fields::loading<Archive>) {
        if (ar.remaining() == 0) return;
    } else {
        if (r.origin.empty() && r.origin_lsn == 0 && r.seen.empty() && r.on_behalf.empty()) return;
    }
    all(ar, check, r.origin, r.origin_lsn);
    if constexpr (archive_fields::loading<Archive>) {
        if (ar.remaining() == 0) return;
    } else {
        if (r.seen.empty() && r.on_behalf.empty()) return;
    }
    archive_fields::seq(ar, r.seen, 16, check, [](Archive& a, SeenLsn& s) {
        archive_fields::str(a, s.server, check);
        a(s.lsn);
    });
    if constexpr (archive_fields::loading<Archive>) {
        if (ar.remaining() == 0) return;
    } else {
        if (r.on_behalf.empty()) return;
    }
    archive_fields::str(ar, r.on_behalf, check);
}

}  // namespace

void encode_record(const Record& rec, std::string& out) {
    StringOutputArchive ar(out);
    record(ar, const_cast<Record&>(rec));  // saving only reads it
}

std::string encode_record(const Record& rec) {
    std::string out;
    encode_record(rec, out);
    return out;
}

Result<Record> decode_record(std::string_view bytes) {
    Record rec;
    try {
        decode_limit = bytes.size();
        ViewInputArchive ar(bytes);
        record(ar, rec);
    } catch (const std::exception& e) {
        return fail(make_error(std::string("malformed record: ") + e.what()));
    }
    if (!op_is_valid(static_cast<uint8_t>(rec.op)))
        return fail(make_error("malformed record: unknown op " + std::to_string(static_cast<int>(rec.op))));
    return rec;
}

}  // namespace iz::journal
