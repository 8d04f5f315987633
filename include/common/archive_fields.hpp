#pragma once
// Fields that saving and loading encode alike, each written once for both
// directions (the archive says which): a string, a boolean, an optional, a
// one-byte enum, a counted sequence. These are the encodings of journal
// records and protocol frames alike, on the archives of binary_archive.hpp.
//
// Loading may see bytes from the network or a damaged disk. A length
// prefix is checked before anything is allocated for it: `check(n, unit)`,
// the caller's, throws when the input cannot hold n elements of at least
// `unit` bytes each (what the input is, and the message, are the caller's).
#include <cereal/cereal.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace iz::archive_fields {

template <class Archive>
inline constexpr bool loading = Archive::is_loading::value;

// A count, then each element of `v` by `each(ar, element)`.
template <class Archive, class T, class Check, class Each>
void seq(Archive& ar, std::vector<T>& v, uint64_t unit, Check check, Each each) {
    if constexpr (loading<Archive>) {
        cereal::size_type n = 0;
        ar(cereal::make_size_tag(n));
        check(n, unit);
        v.resize(n);
    } else {
        ar(cereal::make_size_tag(static_cast<cereal::size_type>(v.size())));
    }
    for (auto& e : v) each(ar, e);
}

template <class Archive, class Check>
void str(Archive& ar, std::string& s, Check check) {
    if constexpr (loading<Archive>) {
        cereal::size_type n = 0;
        ar(cereal::make_size_tag(n));
        check(n, 1);
        s.resize(n);
        ar(cereal::binary_data(s.data(), n));
    } else {
        ar(cereal::make_size_tag(static_cast<cereal::size_type>(s.size())));
        ar(cereal::binary_data(s.data(), s.size()));
    }
}

// Booleans are one byte, 0 or 1 (as cereal writes a bool). Loaded straight
// into a bool, any other byte would make an invalid bool (undefined
// behaviour: `b` and `!b` may then disagree), so it is read as a byte and
// a byte above 1 is refused: no writer writes one, and a guessed field is
// worse than an undecodable one.
template <class Archive>
void flag(Archive& ar, bool& b) {
    uint8_t raw = b ? 1 : 0;
    ar(raw);
    if constexpr (loading<Archive>) {
        if (raw > 1) throw std::domain_error("boolean field holds " + std::to_string(raw));
        b = raw == 1;
    }
}

// cereal's std::optional encoding (a "nullopt" flag, then the value when
// present), with the flag checked like any boolean.
template <class Archive, class T>
void opt(Archive& ar, std::optional<T>& o) {
    bool none = !o.has_value();
    flag(ar, none);
    if constexpr (loading<Archive>) {
        if (none) {
            o.reset();
            return;
        }
        o.emplace();
    }
    if (o) ar(*o);
}

// An enum of one byte; whether the value is one it names is the caller's
// to check.
template <class Archive, class Enum>
void enum8(Archive& ar, Enum& e) {
    uint8_t raw = static_cast<uint8_t>(e);
    ar(raw);
    e = static_cast<Enum>(raw);
}

// One field, encoded by its type, and a list of them in order: a record's
// or a message's schema is then the list of its fields.
template <class Archive, class Check>
void field(Archive& ar, Check check, std::string& s) {
    str(ar, s, check);
}
template <class Archive, class Check>
void field(Archive& ar, Check, bool& b) {
    flag(ar, b);
}
template <class Archive, class Check, class T>
void field(Archive& ar, Check, std::optional<T>& o) {
    opt(ar, o);
}
template <class Archive, class Check, class T>
    requires std::is_enum_v<T>
void field(Archive& ar, Check, T& e) {
    static_assert(sizeof(T) == 1, "an enum field is one byte");
    enum8(ar, e);
}
template <class Archive, class Check, class T>
    requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
void field(Archive& ar, Check, T& n) {
    ar(n);
}
template <class Archive, class Check, class... F>
void all(Archive& ar, Check check, F&... f) {
    (field(ar, check, f), ...);
}

}  // namespace iz::archive_fields
