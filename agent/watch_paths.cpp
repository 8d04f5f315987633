#include "agent/watch_paths.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <cctype>
#include <cstdlib>

namespace iz::agent {

std::string escape_path(const std::string& absolute) {
    std::string p = absolute;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    size_t start = p.find_first_not_of('/');
    if (start == std::string::npos) return "-";
    std::string out;
    for (size_t i = start; i < p.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(p[i]);
        if (c == '/') out += '-';
        else if (std::isalnum(c) || c == '_' || (c == '.' && i != start) || c == ':') out += static_cast<char>(c);
        else out += fmt::format("\\x{:02x}", c);
    }
    return out;
}

std::filesystem::path run_dir() {
    const char* over = std::getenv("IZ_RUN_DIR");
    return over && *over ? over : "/run/intermezzo";
}

std::filesystem::path default_state_dir(const std::string& absolute_dir) {
    return std::filesystem::path("/var/lib/intermezzo") / escape_path(absolute_dir);
}

std::filesystem::path control_socket_path(const std::string& absolute_dir) {
    return run_dir() / (escape_path(absolute_dir) + ".sock");
}

std::string identity_from(const std::string& text, const std::string& fallback) {
    std::string out;
    for (unsigned char c : text) {
        if (out.size() == 128) break;
        out += std::isalnum(c) || c == '.' || c == '_' || c == '-' ? static_cast<char>(c) : '_';
    }
    if (!out.empty() && out[0] == '.') out[0] = '_';
    return out.empty() ? fallback : out;
}

std::string default_fileset(const std::string& absolute_dir) {
    return identity_from(std::filesystem::path(absolute_dir).filename().string(), "root");
}

std::string default_agent_id() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) return "agent";
    return identity_from(host, "agent");
}

}  // namespace iz::agent
