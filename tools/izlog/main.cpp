// izlog: journalctl for file changes.
#include <fmt/format.h>

#include <variant>

#include "izlog/listing.hpp"
#include "izlog/options.hpp"
#include "izlog/output.hpp"
#include "journal/reader.hpp"

namespace {

int verify(const std::filesystem::path& dir) {
    auto report = iz::journal::verify_journal(dir);
    if (!report) {
        fmt::print(stderr, "izlog: {}\n", report.error().message);
        return 1;
    }
    if (report->first_error) {
        fmt::print("FAIL: first bad record at LSN {}: {}\n", report->first_bad_lsn.value_or(0),
                   report->first_error->message);
        fmt::print("{} records before it verified\n", report->records);
        return 1;
    }
    if (report->records == 0) fmt::print("PASS: journal is empty\n");
    else
        fmt::print("PASS: {} records, LSN {}..{}, every checksum good{}\n", report->records, report->first_lsn,
                   report->last_lsn, report->torn_tail ? " (a torn last batch from a crash ends the journal)" : "");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    auto parsed = iz::izlog::parse_options(argc, argv);
    if (auto* code = std::get_if<int>(&parsed)) return *code;
    const auto& o = std::get<iz::izlog::Options>(parsed);
    if (o.verify) return verify(o.directory);

    auto reader = iz::journal::Reader::open(o.directory);
    if (!reader) {
        fmt::print(stderr, "izlog: {}\n", reader.error().message);
        return 1;
    }
    if (o.stats) return iz::izlog::show_stats(**reader, o);
    // journalctl pages nothing it follows.
    iz::izlog::Output out(!o.no_pager && !o.follow, o.no_color);
    return iz::izlog::show_records(**reader, o, out);
}
