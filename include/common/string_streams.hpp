#pragma once
// Stream buffers over strings for cereal, which reads and writes
// std::streams: without copies, which std::stringstream would make.
#include <cstddef>
#include <streambuf>
#include <string>
#include <string_view>

namespace iz {

// Appends straight into the caller's string, so encoding allocates
// nothing beyond the output itself.
class StringSink : public std::streambuf {
public:
    explicit StringSink(std::string& out) : out_(out) {}

protected:
    std::streamsize xsputn(const char* s, std::streamsize n) override {
        out_.append(s, static_cast<size_t>(n));
        return n;
    }
    int_type overflow(int_type ch) override {
        if (ch != traits_type::eof()) out_.push_back(static_cast<char>(ch));
        return ch;
    }

private:
    std::string& out_;
};

// Reads from a view without copying it, and tells how much is left (so a
// length prefix can be checked against it before anything is allocated).
class ViewSource : public std::streambuf {
public:
    explicit ViewSource(std::string_view in) {
        char* p = const_cast<char*>(in.data());
        setg(p, p, p + in.size());
    }
    size_t remaining() const { return static_cast<size_t>(egptr() - gptr()); }
};

}  // namespace iz
