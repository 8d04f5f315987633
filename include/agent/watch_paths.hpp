#pragma once
// Where a watch keeps things: its state directory (default
// /var/lib/intermezzo/<escaped DIR>), its journal (default <state>/journal)
// and its control socket (/run/intermezzo/<escaped DIR>.sock, so that
// `izwatch stop DIR` finds the daemon from DIR alone).
#include <filesystem>
#include <string>

namespace iz::agent {

// systemd-escape --path style: "/srv/data" -> "srv-data".
std::string escape_path(const std::string& absolute);

std::filesystem::path default_state_dir(const std::string& absolute_dir);
std::filesystem::path control_socket_path(const std::string& absolute_dir);
std::filesystem::path run_dir();

}  // namespace iz::agent
