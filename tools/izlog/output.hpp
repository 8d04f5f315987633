#pragma once
// Where izlog's output goes: straight to stdout, or through a pager when
// stdout is a terminal (as journalctl does), and whether to colour it.
#include <cstdio>
#include <string>

namespace iz::izlog {

class Output {
public:
    // `want_pager` is false for --no-pager and --follow.
    Output(bool want_pager, bool no_color);
    ~Output();
    Output(const Output&) = delete;
    Output& operator=(const Output&) = delete;

    bool color() const { return color_; }
    // False once the reader of our output (the pager) has gone away.
    bool write(const std::string& text);
    void flush();

private:
    FILE* out_ = stdout;
    bool paged_ = false;
    bool color_ = false;
};

}  // namespace iz::izlog
