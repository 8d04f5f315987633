// izlog: journalctl for file changes.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <deque>

#include "izlog/filter.hpp"
#include "izlog/journal_location.hpp"
#include "izlog/output.hpp"
#include "izlog/render.hpp"
#include "izlog/stats.hpp"
#include "izlog/time_parse.hpp"
#include "journal/reader.hpp"

namespace {

using iz::journal::Record;
using iz::journal::Reader;

struct Options {
    std::string directory;
    bool follow = false;
    std::optional<uint64_t> lines;
    bool reverse = false;
    std::string since, until;
    std::string output = "short";
    std::vector<std::string> paths, ops, comms;
    std::vector<int32_t> pids;
    std::vector<uint32_t> uids;
    std::optional<uint64_t> cursor, after_cursor;
    bool show_cursor = false;
    bool verify = false;
    bool stats = false;
    bool no_pager = false;
    bool no_color = false;
};

int die(const std::string& message) {
    fmt::print(stderr, "izlog: {}\n", message);
    return 1;
}

volatile sig_atomic_t interrupted = 0;

int run_verify(const std::filesystem::path& dir) {
    auto report = iz::journal::verify_journal(dir);
    if (!report) return die(report.error().message);
    if (report->first_error) {
        fmt::print("FAIL: first bad record at LSN {}: {}\n", report->first_bad_lsn.value_or(0), report->first_error->message);
        fmt::print("{} records before it verified\n", report->records);
        return 1;
    }
    if (report->records == 0) fmt::print("PASS: journal is empty\n");
    else fmt::print("PASS: {} records, LSN {}..{}, every checksum good{}\n", report->records, report->first_lsn,
                    report->last_lsn, report->torn_tail ? " (a torn last batch from a crash ends the journal)" : "");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"izlog: read an intermezzo journal the way journalctl reads logs"};
    app.add_option("-D,--directory", o.directory, "journal directory (default: the only one under /var/lib/intermezzo)");
    app.add_flag("-f,--follow", o.follow, "show new records as they are journaled");
    app.add_option("-n,--lines", o.lines, "show the most recent N records");
    app.add_flag("-r,--reverse", o.reverse, "newest first");
    app.add_option("-S,--since", o.since, "records at or after this time ('2026-11-25 10:00', '-1h', 'today', '@epoch')");
    app.add_option("-U,--until", o.until, "records at or before this time");
    app.add_option("-o,--output", o.output, "short, short-iso, json, json-pretty, verbose or cat");
    app.add_option("--path", o.paths, "path prefix, or glob with * ? [ (relative to the watched root)");
    app.add_option("--op", o.ops, "only these ops (repeat or comma-separate)");
    app.add_option("--pid", o.pids, "only records made by this process");
    app.add_option("--uid", o.uids, "only records made by this user id");
    app.add_option("--comm", o.comms, "only records made by this command name");
    app.add_option("-c,--cursor", o.cursor, "start at this cursor (LSN)");
    app.add_option("--after-cursor", o.after_cursor, "start after this cursor (LSN)");
    app.add_flag("--show-cursor", o.show_cursor, "print the cursor of the last record shown");
    app.add_flag("--verify", o.verify, "check every record's checksum; exit non-zero on damage");
    app.add_flag("--stats", o.stats, "counts per op, bytes written, time span, disk usage");
    app.add_flag("--no-pager", o.no_pager, "do not pipe output into a pager");
    app.add_flag("--no-color", o.no_color, "no colours");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    std::filesystem::path dir = o.directory;
    if (dir.empty()) {
        auto found = iz::izlog::default_journal_dir();
        if (!found) return die(found.error().message);
        dir = *found;
    }
    if (o.verify) return run_verify(dir);

    iz::izlog::Filter filter;
    filter.paths = o.paths;
    filter.pids = o.pids;
    filter.uids = o.uids;
    filter.comms = o.comms;
    auto ops = iz::izlog::parse_ops(o.ops);
    if (!ops) return die(ops.error().message);
    filter.ops = *ops;
    int64_t now = iz::izlog::wall_clock_ns();
    if (!o.since.empty()) {
        auto t = iz::izlog::parse_time(o.since, now);
        if (!t) return die(t.error().message);
        filter.since_ns = *t;
    }
    if (!o.until.empty()) {
        auto t = iz::izlog::parse_time(o.until, now);
        if (!t) return die(t.error().message);
        filter.until_ns = *t;
    }
    auto format = iz::izlog::parse_format(o.output);
    if (!format) return die(format.error().message);

    auto opened = Reader::open(dir);
    if (!opened) return die(opened.error().message);
    auto& reader = *opened;

    std::optional<uint64_t> start_lsn;
    if (o.cursor) start_lsn = *o.cursor;
    if (o.after_cursor) start_lsn = *o.after_cursor + 1;
    auto position = [&]() -> iz::Status {
        if (start_lsn) return reader->seek_lsn(*start_lsn);
        if (filter.since_ns) return reader->seek_time(*filter.since_ns);
        return reader->seek_head();
    };

    if (o.stats) {
        if (auto ok = position(); !ok) return die(ok.error().message);
        iz::izlog::StatsCollector stats;
        for (;;) {
            auto rec = reader->next();
            if (!rec) return die(rec.error().message);
            if (!*rec) break;
            if (filter.until_ns && (*rec)->time_ns > *filter.until_ns) break;
            if (filter.matches(**rec)) stats.add(**rec);
        }
        fmt::print("{}", stats.report(reader->segments()));
        return 0;
    }

    iz::izlog::Output out(!o.no_pager && !o.follow, o.no_color);
    std::optional<uint64_t> last_shown;
    auto show = [&](const Record& r) {
        last_shown = r.lsn;
        return out.write(iz::izlog::render(r, *format, out.color()));
    };
    auto finish = [&](int code) {
        if (o.show_cursor && last_shown) out.write(fmt::format("-- cursor: {}\n", *last_shown));
        out.flush();
        return code;
    };
    auto fail_reading = [&](const iz::Error& e) {
        out.flush();
        return finish(die(e.message));
    };
    auto before_start = [&](const Record& r) {
        if (start_lsn && r.lsn < *start_lsn) return true;
        return filter.since_ns && r.time_ns < *filter.since_ns;
    };

    uint64_t limit = o.lines.value_or(UINT64_MAX);
    if (o.follow && !o.lines && !start_lsn && !filter.since_ns) limit = 10;

    if (o.reverse) {
        if (auto ok = reader->seek_tail(); !ok) return die(ok.error().message);
        uint64_t shown = 0;
        while (shown < limit) {
            auto rec = reader->prev();
            if (!rec) return fail_reading(rec.error());
            if (!*rec || before_start(**rec)) break;
            if (!filter.matches(**rec)) continue;
            if (!show(**rec)) break;
            ++shown;
        }
        return finish(0);
    }

    // Forward: the last `limit` matching records of the window, oldest first.
    std::deque<Record> window;
    bool bounded_start = start_lsn || filter.since_ns;
    if (limit != UINT64_MAX && !bounded_start) {
        // Walk back from the end: cheap however long the journal is.
        if (auto ok = reader->seek_tail(); !ok) return die(ok.error().message);
        while (window.size() < limit) {
            auto rec = reader->prev();
            if (!rec) return fail_reading(rec.error());
            if (!*rec) break;
            if (filter.matches(**rec)) window.push_front(std::move(**rec));
        }
        for (auto& r : window)
            if (!show(r)) return finish(0);
        if (auto ok = reader->seek_tail(); !ok) return die(ok.error().message);
    } else {
        if (auto ok = position(); !ok) return die(ok.error().message);
        for (;;) {
            auto rec = reader->next();
            if (!rec) {
                for (auto& r : window) show(r);
                return fail_reading(rec.error());
            }
            if (!*rec) break;
            if (filter.until_ns && (*rec)->time_ns > *filter.until_ns) break;
            if (!filter.matches(**rec)) continue;
            if (limit == UINT64_MAX) {
                if (!show(**rec)) return finish(0);
                continue;
            }
            window.push_back(std::move(**rec));
            if (window.size() > limit) window.pop_front();
        }
        for (auto& r : window)
            if (!show(r)) return finish(0);
    }

    if (!o.follow) return finish(0);
    out.flush();
    signal(SIGINT, [](int) { interrupted = 1; });
    signal(SIGTERM, [](int) { interrupted = 1; });
    while (!interrupted) {
        auto changed = reader->wait(std::chrono::milliseconds(500));
        if (!changed) return fail_reading(changed.error());
        for (;;) {
            auto rec = reader->next();
            if (!rec) return fail_reading(rec.error());
            if (!*rec) break;
            if (filter.matches(**rec) && !show(**rec)) return finish(0);
        }
        out.flush();
    }
    return finish(0);
}
