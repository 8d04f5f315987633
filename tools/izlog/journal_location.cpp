#include "izlog/journal_location.hpp"

#include <fmt/format.h>

#include <vector>

namespace iz::izlog {

Result<std::filesystem::path> default_journal_dir(const std::filesystem::path& state_root) {
    std::vector<std::filesystem::path> found;
    std::error_code ec;
    for (auto& entry : std::filesystem::directory_iterator(state_root, ec)) {
        auto j = entry.path() / "journal";
        if (std::filesystem::is_directory(j, ec)) found.push_back(j);
    }
    if (found.size() == 1) return found.front();
    if (found.empty())
        return fail(make_error(fmt::format("no journal found under {}; give one with -D DIR", state_root.string())));
    std::string list;
    for (auto& f : found) list += "\n  " + f.string();
    return fail(make_error(fmt::format("{} journals under {}; choose one with -D DIR:{}", found.size(),
                                       state_root.string(), list)));
}

}  // namespace iz::izlog
