#include "izlog/filter.hpp"

#include <fnmatch.h>

#include <fmt/format.h>

#include <algorithm>

#include "common/path_tree.hpp"

namespace iz::izlog {

namespace {

bool path_matches(const std::string& pattern, const std::string& path) {
    std::string p = pattern;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    if (p.find_first_of("*?[") != std::string::npos) return fnmatch(p.c_str(), path.c_str(), 0) == 0;
    // A prefix matches whole components: "src" covers "src" and "src/x",
    // not "srcfoo".
    return iz::at_or_beneath(path, p);
}

}  // namespace

bool Filter::matches(const journal::Record& r) const {
    if (since_ns && r.time_ns < *since_ns) return false;
    if (until_ns && r.time_ns > *until_ns) return false;
    if (!ops.empty() && std::find(ops.begin(), ops.end(), r.op) == ops.end()) return false;
    if (!pids.empty() && (!r.pid || std::find(pids.begin(), pids.end(), *r.pid) == pids.end())) return false;
    if (!uids.empty() && (!r.uid || std::find(uids.begin(), uids.end(), *r.uid) == uids.end())) return false;
    if (!comms.empty() && std::find(comms.begin(), comms.end(), r.comm) == comms.end()) return false;
    if (!paths.empty()) {
        bool any = std::any_of(paths.begin(), paths.end(), [&](const std::string& p) {
            return path_matches(p, r.path) || (!r.target.empty() && r.op != journal::Op::symlink && path_matches(p, r.target));
        });
        if (!any) return false;
    }
    return true;
}

Result<std::vector<journal::Op>> parse_ops(const std::vector<std::string>& values) {
    std::vector<journal::Op> out;
    for (auto& v : values) {
        size_t start = 0;
        while (start <= v.size()) {
            size_t comma = v.find(',', start);
            auto name = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            if (!name.empty()) {
                auto op = journal::op_from_name(name);
                if (!op) {
                    std::string known;
                    for (uint8_t raw = 1; raw <= static_cast<uint8_t>(journal::kLastOp); ++raw)
                        if (journal::op_is_valid(raw)) known += fmt::format("{}{}", known.empty() ? "" : ", ", journal::op_name(static_cast<journal::Op>(raw)));
                    return fail(make_error(fmt::format("unknown op '{}' (known: {})", name, known)));
                }
                out.push_back(*op);
            }
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    }
    return out;
}

}  // namespace iz::izlog
