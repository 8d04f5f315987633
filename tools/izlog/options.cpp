#include "izlog/options.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common/version.hpp"
#include "izlog/journal_location.hpp"
#include "izlog/time_parse.hpp"

namespace iz::izlog {

namespace {

int complain(const std::string& message) {
    fmt::print(stderr, "izlog: {}\n", message);
    return 1;
}

// What CLI11 fills in, before it is checked and resolved.
struct RawOptions {
    std::string directory;
    std::string since, until;
    std::string output = "short";
    std::vector<std::string> ops;
    std::optional<uint64_t> cursor, after_cursor;
};

}  // namespace

std::variant<Options, int> parse_options(int argc, char** argv) {
    Options o;
    RawOptions raw;
    CLI::App app{"izlog: read an intermezzo journal the way journalctl reads logs"};
    app.set_version_flag("--version", iz::version_line("izlog"));
    app.add_option("-D,--directory", raw.directory, "journal directory (default: the only one under /var/lib/intermezzo)");
    auto* follow = app.add_flag("-f,--follow", o.follow, "show new records as they are journaled");
    app.add_option("-n,--lines", o.lines, "show the most recent N records");
    app.add_flag("-r,--reverse", o.reverse, "newest first")->excludes(follow);
    app.add_option("-S,--since", raw.since, "records at or after this time ('2026-11-25 10:00', '-1h', 'today', '@epoch')");
    app.add_option("-U,--until", raw.until, "records at or before this time");
    app.add_option("-o,--output", raw.output, "short, short-iso, json, json-pretty, verbose or cat");
    app.add_option("--path", o.filter.paths, "path prefix, or glob with * ? [ (relative to the watched root)");
    app.add_option("--op", raw.ops, "only these ops (repeat or comma-separate)");
    app.add_option("--pid", o.filter.pids, "only records made by this process");
    app.add_option("--uid", o.filter.uids, "only records made by this user id");
    app.add_option("--comm", o.filter.comms, "only records made by this command name");
    auto* cursor = app.add_option("-c,--cursor", raw.cursor, "start at this cursor (LSN)");
    app.add_option("--after-cursor", raw.after_cursor, "start after this cursor (LSN)")->excludes(cursor);
    app.add_flag("--show-cursor", o.show_cursor, "print the cursor of the last record shown");
    app.add_flag("--verify", o.verify, "check every record's checksum; exit non-zero on damage");
    app.add_flag("--stats", o.stats, "counts per op, bytes written, time span, disk usage");
    app.add_flag("--no-pager", o.no_pager, "do not pipe output into a pager");
    app.add_flag("--no-color", o.no_color, "no colours");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
        return complain(e.what());
    }

    auto ops = parse_ops(raw.ops);
    if (!ops) return complain(ops.error().message);
    o.filter.ops = *ops;
    int64_t now = wall_clock_ns();
    if (!raw.since.empty()) {
        auto t = parse_time(raw.since, now);
        if (!t) return complain(t.error().message);
        o.filter.since_ns = *t;
    }
    if (!raw.until.empty()) {
        auto t = parse_time(raw.until, now);
        if (!t) return complain(t.error().message);
        o.filter.until_ns = *t;
    }
    auto format = parse_format(raw.output);
    if (!format) return complain(format.error().message);
    o.format = *format;
    if (raw.cursor) o.start_lsn = *raw.cursor;
    if (raw.after_cursor) o.start_lsn = *raw.after_cursor + 1;

    if (raw.directory.empty()) {
        auto found = default_journal_dir();
        if (!found) return complain(found.error().message);
        o.directory = *found;
    } else {
        o.directory = raw.directory;
    }
    return o;
}

}  // namespace iz::izlog
