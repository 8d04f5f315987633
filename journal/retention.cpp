#include "journal/retention.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <sstream>

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
    auto final_path = cdir / consumer;
    auto tmp = cdir / ("." + consumer + ".tmp");
    int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0640);
    if (fd < 0) return fail(sys_error("write consumer cursor", tmp.string(), errno));
    auto text = fmt::format("{}\n", lsn);
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    int err = errno;
    ::close(fd);
    if (!ok) return fail(sys_error("write consumer cursor", tmp.string(), err));
    if (::rename(tmp.c_str(), final_path.c_str()) != 0)
        return fail(sys_error("replace consumer cursor", final_path.string(), errno));
    return {};
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
