#include <fmt/format.h>

#include <charconv>

#include "replicator/wire/endpoint.hpp"
#include "replicator/wire/identity.hpp"

namespace iz::replicator {

// HOST:PORT or [v6]:PORT, without a node ID.
static Result<ServerEndpoint> parse_host_port(const std::string& text);

std::string ServerEndpoint::to_string() const {
    if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
    return fmt::format("{}:{}", host, port);
}

Result<ServerEndpoint> parse_endpoint(const std::string& given) {
    std::string text = given;
    std::string pinned;
    if (auto at = given.rfind('@'); at != std::string::npos) {
        auto fp = parse_node_id(std::string_view(given).substr(at + 1));
        if (!fp) return fail(make_error(fmt::format("invalid endpoint '{}': {}", given, fp.error().message)));
        pinned = *fp;
        text = given.substr(0, at);
    }
    auto parsed = parse_host_port(text);
    if (!parsed) return parsed;
    parsed->fingerprint = pinned;
    return parsed;
}

static Result<ServerEndpoint> parse_host_port(const std::string& text) {
    auto bad = [&](std::string_view why) {
        return fail(make_error(fmt::format("invalid endpoint '{}': {} (expected HOST:PORT or [IPv6]:PORT)", text, why)));
    };
    ServerEndpoint ep;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string::npos) return bad("missing ']'");
        ep.host = text.substr(1, close - 1);
        if (close + 1 >= text.size() || text[close + 1] != ':') return bad("missing ':PORT' after ']'");
        port_text = std::string_view(text).substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string::npos) return bad("missing ':PORT'");
        ep.host = text.substr(0, colon);
        if (ep.host.find(':') != std::string::npos) return bad("an IPv6 address needs brackets");
        port_text = std::string_view(text).substr(colon + 1);
    }
    if (ep.host.empty()) return bad("empty host");
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || port_text.empty() || value > 65535)
        return bad("port is not a number from 0 to 65535");
    ep.port = static_cast<uint16_t>(value);
    return ep;
}

}  // namespace iz::replicator
