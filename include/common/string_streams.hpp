#pragma once
// Stream buffers over strings for cereal, which reads and writes
// std::streams: without copies, which std::stringstream would make.
#include <cstddef>
#include <istream>
#include <ostream>
#include <streambuf>
#include <string>
#include <string_view>

namespace iz {

// Appends straight into the caller's string, so encoding allocates
// nothing beyond the output itself.
class StringSink : public std::streambuf {
public:
    void reset(std::string& out) { out_ = &out; }

protected:
    std::streamsize xsputn(const char* s, std::streamsize n) override {
        out_->append(s, static_cast<size_t>(n));
        return n;
    }
    int_type overflow(int_type ch) override {
        if (ch != traits_type::eof()) out_->push_back(static_cast<char>(ch));
        return ch;
    }

private:
    std::string* out_ = nullptr;
};

// Reads from a view without copying it, and tells how much is left (so a
// length prefix can be checked against it before anything is allocated).
class ViewSource : public std::streambuf {
public:
    void reset(std::string_view in) {
        char* p = const_cast<char*>(in.data());
        setg(p, p, p + in.size());
    }
    size_t remaining() const { return static_cast<size_t>(egptr() - gptr()); }
};

// A stream over a StringSink, made once per thread and pointed at each
// output in turn: constructing a std::ostream (its locale and ios state)
// for every record cost more than encoding the record.
class StringWriter {
public:
    StringWriter() : os_(&sink_) {}
    std::ostream& to(std::string& out) {
        sink_.reset(out);
        os_.clear();
        return os_;
    }

private:
    StringSink sink_;
    std::ostream os_;
};

// The same for reading views.
class ViewReader {
public:
    ViewReader() : is_(&source_) {}
    std::istream& from(std::string_view in) {
        source_.reset(in);
        is_.clear();
        return is_;
    }
    const ViewSource& source() const { return source_; }

private:
    ViewSource source_;
    std::istream is_;
};

}  // namespace iz
