#pragma once
// The control socket of a running izwatch: one JSON request line in, one
// JSON reply line out ({"cmd": "status" | "stop" | "sync", ...}).
#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace iz::agent {

// Binds and listens (removing a stale socket nobody answers on).
Result<int> listen_control(const std::filesystem::path& path);
// Reads one request from an accepted connection.
Result<nlohmann::json> read_request(int conn);
void send_reply(int conn, const nlohmann::json& reply);

// Client side. `timeout` bounds the whole exchange.
Result<nlohmann::json> control_request(const std::filesystem::path& path, const nlohmann::json& request,
                                       std::chrono::milliseconds timeout);

}  // namespace iz::agent
