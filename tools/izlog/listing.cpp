#include "izlog/listing.hpp"

#include <signal.h>

#include <fmt/format.h>

#include <chrono>
#include <deque>

#include "izlog/stats.hpp"

namespace iz::izlog {

using journal::Reader;
using journal::Record;

namespace {

volatile sig_atomic_t interrupted = 0;

int complain(const std::string& message) {
    fmt::print(stderr, "izlog: {}\n", message);
    return 1;
}

// The first record of the window: the cursor, else --since, else the head.
Status seek_window_start(Reader& reader, const Options& o) {
    if (o.start_lsn) return reader.seek_lsn(*o.start_lsn);
    if (o.filter.since_ns) return reader.seek_time(*o.filter.since_ns);
    return reader.seek_head();
}

class Listing {
public:
    Listing(Reader& reader, const Options& o, Output& out) : reader_(reader), o_(o), out_(out) {}

    int run() {
        uint64_t limit = o_.lines.value_or(UINT64_MAX);
        // journalctl -f starts with the last ten entries.
        if (o_.follow && !o_.lines && !o_.start_lsn && !o_.filter.since_ns) limit = 10;
        if (o_.reverse) return finish(newest_first(limit));
        if (int code = oldest_first(limit); code != 0 || stopped_ || !o_.follow) return finish(code);
        return finish(follow());
    }

private:
    bool before_start(const Record& r) const {
        if (o_.start_lsn && r.lsn < *o_.start_lsn) return true;
        return o_.filter.since_ns && r.time_ns < *o_.filter.since_ns;
    }

    bool after_end(const Record& r) const { return o_.filter.until_ns && r.time_ns > *o_.filter.until_ns; }

    // False once nobody reads our output any more (the pager quit).
    bool show(const Record& r) {
        last_shown_ = r.lsn;
        if (!out_.write(render(r, o_.format, out_.color()))) stopped_ = true;
        return !stopped_;
    }

    int finish(int code) {
        if (o_.show_cursor && last_shown_) out_.write(fmt::format("-- cursor: {}\n", *last_shown_));
        out_.flush();
        return code;
    }

    int failed(const Error& e) {
        out_.flush();
        return complain(e.message);
    }

    int newest_first(uint64_t limit) {
        // Start just after --until rather than walking back to it.
        auto ok = o_.filter.until_ns && *o_.filter.until_ns < INT64_MAX ? reader_.seek_time(*o_.filter.until_ns + 1)
                                                                        : reader_.seek_tail();
        if (!ok) return failed(ok.error());
        for (uint64_t shown = 0; shown < limit;) {
            auto rec = reader_.prev();
            if (!rec) return failed(rec.error());
            if (!*rec || before_start(**rec)) break;
            if (!o_.filter.matches(**rec)) continue;
            if (!show(**rec)) break;
            ++shown;
        }
        return 0;
    }

    int oldest_first(uint64_t limit) {
        bool bounded_start = o_.start_lsn || o_.filter.since_ns;
        if (limit != UINT64_MAX && !bounded_start) return last_n(limit);
        if (auto ok = seek_window_start(reader_, o_); !ok) return failed(ok.error());
        // With -n, the last `limit` matches of the window.
        std::deque<Record> window;
        for (;;) {
            auto rec = reader_.next();
            if (!rec) {
                for (auto& r : window)
                    if (!show(r)) break;
                return failed(rec.error());
            }
            if (!*rec || after_end(**rec)) break;
            if (!o_.filter.matches(**rec)) continue;
            if (limit == UINT64_MAX) {
                if (!show(**rec)) return 0;
                continue;
            }
            window.push_back(std::move(**rec));
            if (window.size() > limit) window.pop_front();
        }
        for (auto& r : window)
            if (!show(r)) return 0;
        return 0;
    }

    // Walks back from the end: cheap however long the journal is.
    int last_n(uint64_t limit) {
        if (auto ok = reader_.seek_tail(); !ok) return failed(ok.error());
        std::deque<Record> window;
        std::optional<uint64_t> tail_lsn;
        while (window.size() < limit) {
            auto rec = reader_.prev();
            if (!rec) return failed(rec.error());
            if (!*rec) break;
            if (!tail_lsn) tail_lsn = (*rec)->lsn;
            if (o_.filter.matches(**rec)) window.push_front(std::move(**rec));
        }
        for (auto& r : window)
            if (!show(r)) return 0;
        // Continue right after the tail we saw, so that -f misses nothing
        // appended while the window was being read.
        auto ok = tail_lsn ? reader_.seek_lsn(*tail_lsn + 1) : reader_.seek_tail();
        if (!ok) return failed(ok.error());
        return 0;
    }

    int follow() {
        out_.flush();
        signal(SIGINT, [](int) { interrupted = 1; });
        signal(SIGTERM, [](int) { interrupted = 1; });
        while (!interrupted) {
            // The timeout only bounds how late a signal is noticed.
            auto changed = reader_.wait(std::chrono::milliseconds(500));
            if (!changed) return failed(changed.error());
            for (;;) {
                auto rec = reader_.next();
                if (!rec) return failed(rec.error());
                if (!*rec) break;
                if (o_.filter.matches(**rec) && !show(**rec)) return 0;
            }
            out_.flush();
        }
        return 0;
    }

    Reader& reader_;
    const Options& o_;
    Output& out_;
    std::optional<uint64_t> last_shown_;
    bool stopped_ = false;
};

}  // namespace

int show_records(Reader& reader, const Options& options, Output& out) { return Listing(reader, options, out).run(); }

int show_stats(Reader& reader, const Options& o) {
    if (auto ok = seek_window_start(reader, o); !ok) return complain(ok.error().message);
    StatsCollector stats;
    for (;;) {
        auto rec = reader.next();
        if (!rec) return complain(rec.error().message);
        if (!*rec) break;
        if (o.filter.until_ns && (*rec)->time_ns > *o.filter.until_ns) break;
        if (o.filter.matches(**rec)) stats.add(**rec);
    }
    fmt::print("{}", stats.report(reader.segments()));
    return 0;
}

}  // namespace iz::izlog
