#pragma once
// One page of metrics in the Prometheus text exposition format (0.0.4), the
// answer to a scrape of /metrics.
//
// Promises:
//  - Each family is written once: its HELP and TYPE lines, then every sample
//    added to it, whatever order samples of different families were added
//    in. Families come in the order they were first named; a family without
//    samples is left out.
//  - Names follow Prometheus' rules and conventions, checked when a sample
//    is added (std::invalid_argument otherwise: a programming error): metric
//    names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* not
//    beginning with "__"; a counter's name ends in "_total" and a gauge's
//    does not.
//  - Label values and HELP texts are escaped as the format asks (\\, \" and
//    \n in values; \\ and \n in HELP); bytes that are not UTF-8 become
//    U+FFFD, since the format is UTF-8.
//  - A second sample with the same labels in one family is dropped (a
//    scrape with duplicates is refused whole by Prometheus).
//  - Integer counters are written exactly (all 64 bits), floating values
//    in the shortest form that reads back equal; NaN and infinities as
//    Prometheus spells them.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace iz::metrics {

enum class Kind { counter, gauge };

struct Label {
    std::string name;
    std::string value;
};
using Labels = std::vector<Label>;

class Exposition {
public:
    void counter(std::string_view name, std::string_view help, uint64_t value, const Labels& labels = {});
    void counter(std::string_view name, std::string_view help, double value, const Labels& labels = {});
    void gauge(std::string_view name, std::string_view help, uint64_t value, const Labels& labels = {});
    void gauge(std::string_view name, std::string_view help, double value, const Labels& labels = {});

    // The page, every line ending in "\n".
    std::string text() const;

private:
    struct Family {
        std::string name;
        Kind kind;
        std::string help;
        std::vector<std::string> samples;  // "name{labels} value"
        std::vector<std::string> label_sets;  // to drop duplicates
    };
    void add(std::string_view name, Kind kind, std::string_view help, std::string value, const Labels& labels);

    std::vector<Family> families_;
    std::map<std::string, size_t, std::less<>> index_;
};

// The pieces, for tests and for callers that write a line themselves.
std::string escape_label_value(std::string_view value);
std::string escape_help(std::string_view help);
std::string format_value(double value);
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

// The Content-Type of the page.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace iz::metrics
