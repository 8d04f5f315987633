#include "agents_file.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "allowed_agents.hpp"
#include "replicator/wire/identity.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

Result<AgentsFile> AgentsFile::read(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) return fail(sys_error("open agents file", path.string(), errno));
    AgentsFile out;
    out.keys_listed = true;
    std::vector<AccessRule> rules;
    // Name -> the line that named it first, for an access line naming none.
    std::map<std::string, int> names;
    // Identity -> the name it was given, so that it is given only one.
    std::map<std::string, std::string> owners;
    std::vector<std::pair<int, std::string>> wanted;  // names access lines use
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
        std::istringstream words(line);
        std::string kind;
        if (!(words >> kind)) continue;
        auto where = fmt::format("{}:{}", path.string(), number);
        if (kind == "agent") {
            std::string name, identity;
            if (!(words >> name >> identity))
                return fail(make_error(fmt::format("{}: expected agent NAME IDENTITY...", where)));
            if (!proto::valid_identity(name))
                return fail(make_error(fmt::format("{}: invalid agent name '{}'", where, name)));
            names.emplace(name, number);
            do {
                std::string key;
                if (identity.starts_with("key:")) {
                    key = identity;
                    if (identity.size() == 4)
                        return fail(make_error(fmt::format("{}: key: names no PSK identity", where)));
                } else {
                    auto fp = parse_node_id(identity);
                    if (!fp)
                        return fail(make_error(fmt::format("{}: {} (an IDENTITY is a node ID or key:PSK-IDENTITY)",
                                                           where, fp.error().message)));
                    key = *fp;
                }
                if (auto [it, fresh] = owners.emplace(key, name); !fresh && it->second != name)
                    return fail(make_error(fmt::format("{}: {} is already agent '{}'", where, identity, it->second)));
                if (identity.starts_with("key:")) out.keys[identity.substr(4)] = name;
                else out.certificates[key] = name;
            } while (words >> identity);
        } else if (kind == "access") {
            std::string who, fileset, access, extra;
            if (!(words >> who >> fileset >> access) || (words >> extra))
                return fail(make_error(fmt::format("{}: expected access WHO FILESET ACCESS", where)));
            AccessRule rule;
            rule.line = number;
            rule.who = who;
            rule.by_name = who != "*";
            if (rule.by_name && !proto::valid_identity(who))
                return fail(make_error(fmt::format("{}: invalid agent name '{}' (WHO is a name or *)", where, who)));
            if (rule.by_name) wanted.emplace_back(number, who);
            if (fileset != "*" && !proto::valid_identity(fileset))
                return fail(make_error(fmt::format("{}: invalid fileset name '{}'", where, fileset)));
            rule.fileset = fileset;
            auto known = parse_access(access);
            if (!known)
                return fail(make_error(fmt::format(
                    "{}: access '{}' is not one of read-write, send-only, receive-only, none", where, access)));
            rule.access = *known;
            rules.push_back(std::move(rule));
        } else {
            return fail(make_error(fmt::format("{}: '{}' is neither 'agent' nor 'access'", where, kind)));
        }
    }
    if (in.bad()) return fail(sys_error("read agents file", path.string(), errno));
    // A name no agent line gives is a typo that would silently refuse.
    for (auto& [number, who] : wanted)
        if (!names.contains(who))
            return fail(make_error(fmt::format("{}:{}: no agent line names '{}'", path.string(), number, who)));
    out.access = std::make_shared<const AccessList>(std::move(rules));
    return out;
}

Result<AgentsFile> AgentsFile::read_older(const std::filesystem::path& allowed_agents,
                                          const std::filesystem::path& access) {
    AgentsFile out;
    if (!allowed_agents.empty()) {
        auto allowed = read_allowed_agents(allowed_agents);
        if (!allowed) return fail(allowed.error());
        out.certificates = std::move(*allowed);
    }
    if (!access.empty()) {
        auto rules = AccessList::read(access);
        if (!rules) return fail(rules.error());
        out.access = std::make_shared<const AccessList>(std::move(*rules));
    }
    return out;
}

std::optional<std::string> AgentsFile::key_name(const std::string& psk_identity) const {
    if (!keys_listed) return std::string();
    auto it = keys.find(psk_identity);
    if (it == keys.end()) return std::nullopt;
    return it->second;
}

}  // namespace iz::replicator
