#include "journal/retention.hpp"

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <sstream>

#include "common/durable_file.hpp"

namespace iz::journal {

namespace {
bool valid_consumer_name(const std::string& name) {
    if (name.empty() || name.size() > 200 || name[0] == '.') return false;
    for (char c : name)
        if (c == '/' || c == '\0') return false;
    return true;
}
}  // namespace

Status save_consumer_lsn(const std::filesystem::path& dir, const std::string& consumer, uint64_t lsn) {
    if (!valid_consumer_name(consumer)) return fail(make_error(fmt::format("invalid consumer name '{}'", consumer)));
    auto cdir = dir / "consumers";
    std::error_code ec;
    std::filesystem::create_directories(cdir, ec);
    if (ec) return fail(Error{fmt::format("create '{}': {}", cdir.string(), ec.message()), ec.value()});
    // The temporary's name begins with '.', which load_consumer_lsns skips.
    return write_file_durably(cdir / consumer, fmt::format("{}\n", lsn), 0640, cdir / ("." + consumer + ".tmp"));
}

Result<std::map<std::string, uint64_t>> load_consumer_lsns(const std::filesystem::path& dir) {
    std::map<std::string, uint64_t> out;
    auto cdir = dir / "consumers";
    std::error_code ec;
    if (!std::filesystem::exists(cdir, ec)) return out;
    for (auto& entry : std::filesystem::directory_iterator(cdir, ec)) {
        auto name = entry.path().filename().string();
        if (!valid_consumer_name(name)) continue;
        std::ifstream in(entry.path());
        std::string text;
        std::getline(in, text);
        uint64_t v = 0;
        auto [p, perr] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (perr != std::errc() || text.empty())
            return fail(make_error(fmt::format("consumer cursor '{}' is unreadable", entry.path().string())));
        out[name] = v;
    }
    if (ec) return fail(Error{fmt::format("read '{}': {}", cdir.string(), ec.message()), ec.value()});
    return out;
}

Result<std::optional<uint64_t>> retention_horizon(const std::filesystem::path& dir) {
    auto cursors = load_consumer_lsns(dir);
    if (!cursors) return fail(cursors.error());
    if (cursors->empty()) return std::optional<uint64_t>{};
    uint64_t horizon = UINT64_MAX;
    // A consumer done through LSN n still needs nothing below n + 1.
    for (auto& [name, lsn] : *cursors) horizon = std::min(horizon, lsn + 1);
    return std::optional<uint64_t>(horizon);
}

}  // namespace iz::journal
