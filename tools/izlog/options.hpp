#pragma once
// izlog's command line, parsed and checked into what the rest acts on.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "izlog/filter.hpp"
#include "izlog/render.hpp"

namespace iz::izlog {

struct Options {
    std::filesystem::path directory;  // resolved: -D, or the only journal there is
    bool follow = false;
    std::optional<uint64_t> lines;
    bool reverse = false;
    Format format = Format::short_;
    Filter filter;                      // including --since/--until
    std::optional<uint64_t> start_lsn;  // --cursor, or --after-cursor + 1
    bool show_cursor = false;
    bool verify = false;
    bool stats = false;
    bool no_pager = false;
    bool no_color = false;
};

// Options to run with, or the exit code to leave with at once (--help: 0;
// any mistake: 1, after one "izlog: ..." line on stderr).
std::variant<Options, int> parse_options(int argc, char** argv);

}  // namespace iz::izlog
