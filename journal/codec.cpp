#include "journal/codec.hpp"

#include <cereal/types/optional.hpp>

#include <stdexcept>

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

template <class Archive>
void save_string(Archive& ar, const std::string& s) {
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(s.size())));
    ar(cereal::binary_data(s.data(), s.size()));
}

template <class Archive>
void load_string(Archive& ar, std::string& s) {
    cereal::size_type n = 0;
    ar(cereal::make_size_tag(n));
    check_length(n);
    s.resize(n);
    ar(cereal::binary_data(s.data(), n));
}

template <class Archive>
void save_ranges(Archive& ar, const std::vector<ByteRange>& v) {
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(v.size())));
    for (auto& r : v) ar(r.offset, r.length);
}

template <class Archive>
void load_ranges(Archive& ar, std::vector<ByteRange>& v) {
    cereal::size_type n = 0;
    ar(cereal::make_size_tag(n));
    check_length(n * 16);
    v.resize(n);
    for (auto& r : v) ar(r.offset, r.length);
}

// Booleans are one byte, 0 or 1 (as cereal writes a bool). Loaded straight
// into a bool, any other byte would make an invalid bool (undefined
// behaviour: `b` and `!b` may then disagree), so it is read as a byte. A
// byte above 1 is refused rather than read as true: the writer never writes
// one, so a record holding it (past the frame's checksum) is not a record
// this code wrote, and a guessed field is worse than an undecodable record.
template <class Archive>
void load_flag(Archive& ar, bool& b) {
    uint8_t raw = 0;
    ar(raw);
    if (raw > 1) throw std::domain_error("boolean field holds " + std::to_string(raw));
    b = raw == 1;
}

// cereal's std::optional encoding (a "nullopt" flag, then the value when
// present), with the flag loaded as above.
template <class Archive, class T>
void load_opt(Archive& ar, std::optional<T>& o) {
    bool none = true;
    load_flag(ar, none);
    if (none) {
        o.reset();
        return;
    }
    o.emplace();
    ar(*o);
}

// Field order is the on-disk format: append new fields at the end only.
template <class Archive>
void save_record(Archive& ar, const Record& r) {
    ar(r.lsn, r.time_ns, r.op);
    save_string(ar, r.path);
    save_string(ar, r.target);
    ar(r.handle.type);
    save_string(ar, r.handle.bytes);
    ar(r.version, r.pid, r.uid, r.gid);
    save_string(ar, r.comm);
    ar(r.mode, r.owner_uid, r.owner_gid, r.atime_ns, r.mtime_ns, r.size, r.rdev);
    save_ranges(ar, r.ranges);
    ar(r.replaced, r.replaced_handle.type);
    save_string(ar, r.replaced_handle.bytes);
    save_string(ar, r.xattr_name);
    save_string(ar, r.xattr_value);
    save_string(ar, r.message);
}

template <class Archive>
void load_record(Archive& ar, Record& r) {
    ar(r.lsn, r.time_ns, r.op);
    load_string(ar, r.path);
    load_string(ar, r.target);
    ar(r.handle.type);
    load_string(ar, r.handle.bytes);
    ar(r.version);
    load_opt(ar, r.pid);
    load_opt(ar, r.uid);
    load_opt(ar, r.gid);
    load_string(ar, r.comm);
    load_opt(ar, r.mode);
    load_opt(ar, r.owner_uid);
    load_opt(ar, r.owner_gid);
    load_opt(ar, r.atime_ns);
    load_opt(ar, r.mtime_ns);
    load_opt(ar, r.size);
    load_opt(ar, r.rdev);
    load_ranges(ar, r.ranges);
    load_flag(ar, r.replaced);
    ar(r.replaced_handle.type);
    load_string(ar, r.replaced_handle.bytes);
    load_string(ar, r.xattr_name);
    load_string(ar, r.xattr_value);
    load_string(ar, r.message);
}

}  // namespace

void encode_record(const Record& rec, std::string& out) {
    StringOutputArchive ar(out);
    save_record(ar, rec);
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
        load_record(ar, rec);
    } catch (const std::exception& e) {
        return fail(make_error(std::string("malformed record: ") + e.what()));
    }
    if (!op_is_valid(static_cast<uint8_t>(rec.op)))
        return fail(make_error("malformed record: unknown op " + std::to_string(static_cast<int>(rec.op))));
    return rec;
}

}  // namespace iz::journal
