#include "access.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "replicator/wire/identity.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

std::string_view access_name(Access a) {
    switch (a) {
        case Access::none: return "none";
        case Access::receive_only: return "receive-only";
        case Access::send_only: return "send-only";
        case Access::read_write: return "read-write";
    }
    return "none";
}

std::optional<Access> parse_access(std::string_view word) {
    for (auto a : {Access::none, Access::receive_only, Access::send_only, Access::read_write})
        if (word == access_name(a)) return a;
    return std::nullopt;
}

Result<AccessList> AccessList::read(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) return fail(sys_error("open access file", path.string(), errno));
    AccessList out;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
        std::istringstream words(line);
        std::string who, fileset, access, extra;
        if (!(words >> who)) continue;
        auto where = fmt::format("{}:{}", path.string(), number);
        if (!(words >> fileset >> access) || (words >> extra))
            return fail(make_error(fmt::format("{}: expected WHO FILESET ACCESS", where)));
        AccessRule rule;
        rule.line = number;
        if (who == "*" || who.starts_with("key:")) {
            rule.who = who;
        } else {
            auto fp = parse_node_id(who);
            if (!fp) return fail(make_error(fmt::format("{}: {} (WHO is a node ID, key:IDENTITY or *)", where, fp.error().message)));
            rule.who = *fp;
        }
        if (fileset != "*" && !proto::valid_identity(fileset))
            return fail(make_error(fmt::format("{}: invalid fileset name '{}'", where, fileset)));
        rule.fileset = fileset;
        auto known = parse_access(access);
        if (known) rule.access = *known;
        if (!known)
            return fail(make_error(fmt::format("{}: access '{}' is not one of read-write, send-only, receive-only, none",
                                               where, access)));
        out.rules_.push_back(std::move(rule));
    }
    if (in.bad()) return fail(sys_error("read access file", path.string(), errno));
    return out;
}

Access AccessList::of(const std::string& fingerprint, const std::string& psk_identity, const std::string& fileset,
                      const std::string& name) const {
    for (auto& r : rules_) {
        bool who = r.who == "*" ||
                   (r.by_name ? !name.empty() && r.who == name
                              : (!fingerprint.empty() && r.who == fingerprint) ||
                                    (!psk_identity.empty() && r.who == "key:" + psk_identity));
        if (who && (r.fileset == "*" || r.fileset == fileset)) return r.access;
    }
    return Access::none;
}

}  // namespace iz::replicator
