#pragma once
// cereal archives over a std::string (saving) and a string_view (loading)
// that write and read exactly the bytes of cereal's PortableBinary archives
// on a little-endian machine: a first byte 1 (little-endian data), then
// every value in its native little-endian form, sizes as 64-bit numbers.
//
// Why not PortableBinary itself: it moves every field through a virtual
// std::streambuf call, which made a journal record cost ~400 ns to encode
// and ~480 ns to decode; the agent encodes and decodes each record more than
// once, and every protocol frame on both ends.
//
// What is written with these archives: journal records (journal/codec), the
// protocol's frames (replicator/wire/protocol) and the agent's saved tree
// state (agent/tree_state). All three were PortableBinary before and keep its
// bytes, so journals and tree states written then still load. Nothing uses
// PortableBinary itself any more except tests that check that equality.
//
// Loading checks every read against what is left and throws
// cereal::Exception past the end, as PortableBinary does; remaining() lets a
// caller check a length prefix before it allocates.
#include <cereal/cereal.hpp>

#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

namespace iz {

static_assert(std::endian::native == std::endian::little,
              "the binary archives write native byte order, which is the wire format only on little-endian machines");

class StringOutputArchive : public cereal::OutputArchive<StringOutputArchive, cereal::AllowEmptyClassElision> {
public:
    // Appends to `out`.
    explicit StringOutputArchive(std::string& out) : OutputArchive(this), out_(&out) { out_->push_back(1); }

    void saveBinary(const void* data, size_t size) { out_->append(static_cast<const char*>(data), size); }

private:
    std::string* out_;
};

class ViewInputArchive : public cereal::InputArchive<ViewInputArchive, cereal::AllowEmptyClassElision> {
public:
    // Reads from `in`, which must outlive the archive.
    explicit ViewInputArchive(std::string_view in) : InputArchive(this), at_(in.data()), end_(in.data() + in.size()) {
        uint8_t little = 0;
        loadBinary(&little, 1);
        if (little != 1) throw cereal::Exception("not little-endian data (first byte " + std::to_string(little) + ")");
    }

    void loadBinary(void* data, size_t size) {
        if (size > remaining())
            throw cereal::Exception("Failed to read " + std::to_string(size) + " bytes from input stream! Read " +
                                    std::to_string(remaining()));
        std::memcpy(data, at_, size);
        at_ += size;
    }
    size_t remaining() const { return static_cast<size_t>(end_ - at_); }

private:
    const char* at_;
    const char* end_;
};

template <class T>
    requires std::is_arithmetic_v<T>
void CEREAL_SAVE_FUNCTION_NAME(StringOutputArchive& ar, const T& t) {
    static_assert(!std::is_floating_point_v<T> || std::numeric_limits<T>::is_iec559);
    ar.saveBinary(&t, sizeof t);
}

template <class T>
    requires std::is_arithmetic_v<T>
void CEREAL_LOAD_FUNCTION_NAME(ViewInputArchive& ar, T& t) {
    static_assert(!std::is_floating_point_v<T> || std::numeric_limits<T>::is_iec559);
    ar.loadBinary(&t, sizeof t);
}

template <class Archive, class T>
CEREAL_ARCHIVE_RESTRICT(ViewInputArchive, StringOutputArchive)
CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, cereal::NameValuePair<T>& t) {
    ar(t.value);
}

template <class Archive, class T>
CEREAL_ARCHIVE_RESTRICT(ViewInputArchive, StringOutputArchive)
CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, cereal::SizeTag<T>& t) {
    ar(t.size);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(StringOutputArchive& ar, const cereal::BinaryData<T>& bd) {
    ar.saveBinary(bd.data, static_cast<size_t>(bd.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(ViewInputArchive& ar, cereal::BinaryData<T>& bd) {
    ar.loadBinary(bd.data, static_cast<size_t>(bd.size));
}

}  // namespace iz

CEREAL_REGISTER_ARCHIVE(iz::StringOutputArchive)
CEREAL_REGISTER_ARCHIVE(iz::ViewInputArchive)
CEREAL_SETUP_ARCHIVE_TRAITS(iz::ViewInputArchive, iz::StringOutputArchive)
