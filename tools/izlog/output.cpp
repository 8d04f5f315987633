#include "izlog/output.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

namespace iz::izlog {

Output::Output(bool want_pager, bool no_color) {
    bool tty = isatty(STDOUT_FILENO) == 1;
    color_ = tty && !no_color && std::getenv("NO_COLOR") == nullptr;
    if (tty && want_pager) {
        const char* pager = std::getenv("SYSTEMD_PAGER");
        if (!pager || !*pager) pager = std::getenv("PAGER");
        std::string cmd = pager && *pager ? pager : "less";
        if (cmd == "cat") return;
        // journalctl's defaults: quit if one screen, raw colours, chop lines.
        setenv("LESS", std::getenv("LESS") ? std::getenv("LESS") : "FRSXMK", 0);
        signal(SIGPIPE, SIG_IGN);
        FILE* p = popen(cmd.c_str(), "w");
        if (p) {
            out_ = p;
            paged_ = true;
        }
    }
}

Output::~Output() {
    flush();
    if (paged_) pclose(out_);
}

bool Output::write(const std::string& text) {
    return fwrite(text.data(), 1, text.size(), out_) == text.size();
}

void Output::flush() { fflush(out_); }

}  // namespace iz::izlog
