#include "izlog/render.hpp"

#include <fmt/format.h>

#include <ctime>
#include <nlohmann/json.hpp>

namespace iz::izlog {

using journal::Op;
using journal::Record;

namespace {

constexpr int64_t kSec = 1'000'000'000;

std::string strftime_local(int64_t ns, const char* fmt_str) {
    time_t secs = static_cast<time_t>(ns / kSec);
    if (ns < 0 && ns % kSec) --secs;
    struct tm tm{};
    localtime_r(&secs, &tm);
    char buf[64];
    strftime(buf, sizeof buf, fmt_str, &tm);
    return buf;
}

std::string octal_mode(uint32_t mode) { return fmt::format("{:07o}", mode); }

std::string permissions(uint32_t mode) { return fmt::format("{:04o}", mode & 07777); }

const char* color_of(Op op) {
    switch (op) {
        case Op::create: case Op::mkdir: case Op::mknod: case Op::symlink: case Op::link: return "\033[32m";
        case Op::unlink: case Op::rmdir: return "\033[31m";
        case Op::rename: case Op::exchange: return "\033[33m";
        case Op::setattr: case Op::setxattr: case Op::removexattr: return "\033[36m";
        case Op::write: case Op::truncate: case Op::close_write: return "\033[34m";
        case Op::overflow: case Op::conflict: case Op::repair: return "\033[1;31m";
        case Op::start: case Op::stop: case Op::rescan: return "\033[1;35m";
    }
    return "";
}

std::string ranges_text(const Record& r) {
    std::string out;
    for (auto& g : r.ranges) out += fmt::format("{}{}+{}", out.empty() ? "" : ",", g.offset, g.length);
    return out;
}

// The op-specific part of a one-line entry.
std::string details(const Record& r) {
    std::string d;
    if (r.op == Op::write) d += r.ranges.empty() ? " ranges=whole-file" : " ranges=" + ranges_text(r);
    if (r.mode) d += " mode=" + permissions(*r.mode);
    if (r.owner_uid || r.owner_gid)
        d += fmt::format(" owner={}:{}", r.owner_uid ? std::to_string(*r.owner_uid) : "-",
                         r.owner_gid ? std::to_string(*r.owner_gid) : "-");
    if (r.size) d += fmt::format(" size={}", *r.size);
    if (r.rdev) d += fmt::format(" rdev={}:{}", *r.rdev >> 8, *r.rdev & 0xff);
    if (r.op == Op::rename && r.replaced) d += " (replaced)";
    if (!r.xattr_name.empty()) d += " name=" + r.xattr_name;
    if (!r.message.empty()) d += " \"" + r.message + "\"";
    return d;
}

std::string who(const Record& r) {
    std::string w;
    if (!r.comm.empty() || r.pid) {
        w += " " + (r.comm.empty() ? std::string("?") : r.comm);
        if (r.pid) w += fmt::format("[{}]", *r.pid);
    }
    if (r.uid) w += fmt::format(" uid={}", *r.uid);
    // A change made on another node of a shared fileset: whose, and its
    // LSN in that agent's own journal.
    if (!r.origin.empty()) w += fmt::format(" origin={}@{}", r.origin, r.origin_lsn);
    return w;
}

std::string path_part(const Record& r) {
    std::string p = r.path.empty() ? std::string(".") : r.path;
    if (r.path.empty() && (r.op == Op::start || r.op == Op::stop || r.op == Op::overflow || r.op == Op::rescan)) p.clear();
    // An exchange moves both ways.
    if (!r.target.empty()) p += (r.op == Op::exchange ? " <-> " : " -> ") + r.target;
    return p;
}

nlohmann::ordered_json to_json(const Record& r) {
    nlohmann::ordered_json j;
    j["cursor"] = std::to_string(r.lsn);
    j["lsn"] = r.lsn;
    j["time"] = rfc3339_utc(r.time_ns);
    j["time_ns"] = r.time_ns;
    j["op"] = std::string(journal::op_name(r.op));
    j["path"] = r.path;
    if (!r.target.empty()) j["target"] = r.target;
    if (r.pid) j["pid"] = *r.pid;
    if (r.uid) j["uid"] = *r.uid;
    if (r.gid) j["gid"] = *r.gid;
    if (!r.comm.empty()) j["comm"] = r.comm;
    if (!r.origin.empty()) {
        j["origin"] = r.origin;
        j["origin_lsn"] = r.origin_lsn;
    }
    if (!r.seen.empty()) {
        // What the writer had applied of each server's fileset journal.
        auto seen = nlohmann::ordered_json::object();
        for (auto& s : r.seen) seen[s.server] = s.lsn;
        j["seen"] = seen;
    }
    if (!r.on_behalf.empty()) j["on_behalf"] = r.on_behalf;
    if (r.op == Op::write) {
        auto ranges = nlohmann::ordered_json::array();
        for (auto& g : r.ranges) ranges.push_back({g.offset, g.length});
        j["ranges"] = ranges;
    }
    if (r.mode) j["mode"] = octal_mode(*r.mode);
    if (r.owner_uid) j["owner_uid"] = *r.owner_uid;
    if (r.owner_gid) j["owner_gid"] = *r.owner_gid;
    if (r.size) j["size"] = *r.size;
    if (r.mtime_ns) j["mtime_ns"] = *r.mtime_ns;
    if (r.atime_ns) j["atime_ns"] = *r.atime_ns;
    if (r.rdev) j["rdev"] = *r.rdev;
    if (r.version) j["version"] = r.version;
    if (r.op == Op::rename) j["replaced"] = r.replaced;
    if (!r.xattr_name.empty()) j["xattr_name"] = r.xattr_name;
    if (!r.message.empty()) j["message"] = r.message;
    return j;
}

std::string verbose(const Record& r) {
    std::string out = fmt::format("{} [cursor={}]\n", strftime_local(r.time_ns, "%a %Y-%m-%d %H:%M:%S") +
                                                          fmt::format(".{:06}", (r.time_ns % kSec) / 1000) +
                                                          strftime_local(r.time_ns, " %Z"),
                                  r.lsn);
    auto line = [&](const char* k, const std::string& v) { out += fmt::format("    {}={}\n", k, v); };
    line("OP", std::string(journal::op_name(r.op)));
    line("PATH", r.path);
    if (!r.target.empty()) line("TARGET", r.target);
    if (!r.handle.empty()) {
        std::string hex;
        for (unsigned char c : r.handle.bytes) hex += fmt::format("{:02x}", c);
        line("HANDLE", fmt::format("{}:{}", r.handle.type, hex));
    }
    if (r.version) line("VERSION", std::to_string(r.version));
    if (r.pid) line("PID", std::to_string(*r.pid));
    if (r.uid) line("UID", std::to_string(*r.uid));
    if (r.gid) line("GID", std::to_string(*r.gid));
    if (!r.comm.empty()) line("COMM", r.comm);
    if (!r.origin.empty()) line("ORIGIN", fmt::format("{}@{}", r.origin, r.origin_lsn));
    for (auto& s : r.seen) line("SEEN", fmt::format("{}@{}", s.server, s.lsn));
    if (!r.on_behalf.empty()) line("ON_BEHALF", r.on_behalf);
    if (r.mode) line("MODE", octal_mode(*r.mode));
    if (r.owner_uid) line("OWNER_UID", std::to_string(*r.owner_uid));
    if (r.owner_gid) line("OWNER_GID", std::to_string(*r.owner_gid));
    if (r.size) line("SIZE", std::to_string(*r.size));
    if (r.atime_ns) line("ATIME", rfc3339_utc(*r.atime_ns));
    if (r.mtime_ns) line("MTIME", rfc3339_utc(*r.mtime_ns));
    if (r.rdev) line("RDEV", std::to_string(*r.rdev));
    if (r.op == Op::write) line("RANGES", r.ranges.empty() ? "whole-file" : ranges_text(r));
    if (r.op == Op::rename) line("REPLACED", r.replaced ? "yes" : "no");
    if (!r.xattr_name.empty()) line("XATTR_NAME", r.xattr_name);
    if (!r.xattr_value.empty()) line("XATTR_VALUE_BYTES", std::to_string(r.xattr_value.size()));
    if (!r.message.empty()) line("MESSAGE", r.message);
    return out;
}

}  // namespace

Result<Format> parse_format(const std::string& name) {
    if (name == "short") return Format::short_;
    if (name == "short-iso") return Format::short_iso;
    if (name == "json") return Format::json;
    if (name == "json-pretty") return Format::json_pretty;
    if (name == "verbose") return Format::verbose;
    if (name == "cat") return Format::cat;
    return fail(make_error(fmt::format("unknown output mode '{}' (short, short-iso, json, json-pretty, verbose, cat)", name)));
}

std::string rfc3339_utc(int64_t time_ns) {
    time_t secs = static_cast<time_t>(time_ns / kSec);
    int64_t frac = time_ns % kSec;
    if (frac < 0) {
        frac += kSec;
        --secs;
    }
    struct tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return fmt::format("{}.{:06}Z", buf, frac / 1000);
}

std::string render(const Record& r, Format format, bool color) {
    const char* on = color ? color_of(r.op) : "";
    const char* off = color ? "\033[0m" : "";
    std::string op = std::string(journal::op_name(r.op));
    switch (format) {
        case Format::short_:
        case Format::short_iso: {
            auto when = format == Format::short_ ? strftime_local(r.time_ns, "%b %d %H:%M:%S")
                                                 : strftime_local(r.time_ns, "%Y-%m-%dT%H:%M:%S%z");
            auto rest = path_part(r) + details(r) + who(r);
            // Pathless agent events ("start", "overflow") have no path column.
            if (rest.starts_with(' ')) rest.erase(0, 1);
            return fmt::format("{} {}{:<11}{} {}\n", when, on, op, off, rest);
        }
        case Format::cat: {
            auto path = path_part(r);
            return fmt::format("{}{}{}{}{}\n", on, op, off, path.empty() ? "" : " ", path);
        }
        case Format::json: return to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        case Format::json_pretty: return to_json(r).dump(4, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        case Format::verbose: return verbose(r);
    }
    return {};
}

}  // namespace iz::izlog
