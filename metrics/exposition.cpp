#include "metrics/exposition.hpp"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace iz::metrics {

namespace {

bool name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }

// The length of the UTF-8 sequence at s[i], or 0 when it is not one
// (overlong forms, surrogates and values past U+10FFFF included).
size_t utf8_sequence(std::string_view s, size_t i) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = b(i);
    if (c < 0x80) return 1;
    size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    for (size_t k = 1; k < n; ++k)
        if ((b(i + k) & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && b(i + 1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(i + 1) >= 0xA0) return 0;  // surrogate
    if (c == 0xF0 && b(i + 1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(i + 1) >= 0x90) return 0;  // past U+10FFFF
    return n;
}

// A backslash and a newline are always written escaped, a double quote
// only in label values (`quotes`).
std::string escape(std::string_view s, bool quotes) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        char c = s[i];
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (c == '"' && quotes) out += "\\\"";
        else {
            size_t n = utf8_sequence(s, i);
            if (n == 0) {
                out += "\xEF\xBF\xBD";  // U+FFFD
                ++i;
                continue;
            }
            out.append(s.substr(i, n));
            i += n;
            continue;
        }
        ++i;
    }
    return out;
}

}  // namespace

bool valid_metric_name(std::string_view name) {
    if (name.empty() || !(name_start(name[0]) || name[0] == ':')) return false;
    for (char c : name)
        if (!name_char(c) && c != ':') return false;
    return true;
}

bool valid_label_name(std::string_view name) {
    if (name.empty() || !name_start(name[0]) || name.starts_with("__")) return false;
    for (char c : name)
        if (!name_char(c)) return false;
    return true;
}

std::string escape_label_value(std::string_view value) { return escape(value, true); }

std::string escape_help(std::string_view help) { return escape(help, false); }

std::string format_value(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    return fmt::format("{}", value);
}

void Exposition::counter(std::string_view name, std::string_view help, uint64_t value, const Labels& labels) {
    add(name, Kind::counter, help, std::to_string(value), labels);
}

void Exposition::counter(std::string_view name, std::string_view help, double value, const Labels& labels) {
    add(name, Kind::counter, help, format_value(value), labels);
}

void Exposition::gauge(std::string_view name, std::string_view help, uint64_t value, const Labels& labels) {
    add(name, Kind::gauge, help, std::to_string(value), labels);
}

void Exposition::gauge(std::string_view name, std::string_view help, double value, const Labels& labels) {
    add(name, Kind::gauge, help, format_value(value), labels);
}

void Exposition::add(std::string_view name, Kind kind, std::string_view help, std::string value, const Labels& labels) {
    if (!valid_metric_name(name)) throw std::invalid_argument(fmt::format("invalid metric name '{}'", name));
    bool total = name.ends_with("_total");
    if (kind == Kind::counter && !total)
        throw std::invalid_argument(fmt::format("counter '{}' does not end in _total", name));
    if (kind == Kind::gauge && total) throw std::invalid_argument(fmt::format("gauge '{}' ends in _total", name));
    auto it = index_.find(name);
    if (it == index_.end()) {
        it = index_.emplace(std::string(name), families_.size()).first;
        families_.push_back(Family{.name = std::string(name), .kind = kind, .help = std::string(help)});
    }
    auto& f = families_[it->second];
    if (f.kind != kind) throw std::invalid_argument(fmt::format("'{}' is both a counter and a gauge", name));
    std::string set;
    for (auto& l : labels) {
        if (!valid_label_name(l.name))
            throw std::invalid_argument(fmt::format("invalid label name '{}' on '{}'", l.name, name));
        set += fmt::format("{}{}=\"{}\"", set.empty() ? "" : ",", l.name, escape_label_value(l.value));
    }
    for (auto& seen : f.label_sets)
        if (seen == set) return;
    f.samples.push_back(set.empty() ? fmt::format("{} {}", name, value) : fmt::format("{}{{{}}} {}", name, set, value));
    f.label_sets.push_back(std::move(set));
}

std::string Exposition::text() const {
    std::string out;
    for (auto& f : families_) {
        if (f.samples.empty()) continue;
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, escape_help(f.help), f.name,
                           f.kind == Kind::counter ? "counter" : "gauge");
        for (auto& s : f.samples) {
            out += s;
            out += '\n';
        }
    }
    return out;
}

}  // namespace iz::metrics
