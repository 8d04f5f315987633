#include "allowed_agents.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "replicator/wire/identity.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

Result<std::map<std::string, std::string>> read_allowed_agents(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) return fail(sys_error("open allowed agents file", path.string(), errno));
    std::map<std::string, std::string> out;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        std::istringstream words(line);
        std::string id, name, extra;
        if (!(words >> id) || id.starts_with('#')) continue;
        words >> name >> extra;
        auto where = [&] { return fmt::format("{}:{}", path.string(), number); };
        if (!extra.empty() && !extra.starts_with('#'))
            return fail(make_error(fmt::format("{}: expected NODE-ID [AGENT-ID], found more", where())));
        if (name.starts_with('#')) name.clear();
        auto fp = parse_node_id(id);
        if (!fp) return fail(make_error(fmt::format("{}: {}", where(), fp.error().message)));
        if (!name.empty() && !proto::valid_identity(name))
            return fail(make_error(fmt::format("{}: invalid agent id '{}'", where(), name)));
        out[*fp] = name;
    }
    if (in.bad()) return fail(sys_error("read allowed agents file", path.string(), errno));
    return out;
}

}  // namespace iz::replicator
