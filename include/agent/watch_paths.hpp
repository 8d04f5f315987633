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

// Names a server accepts (1-128 of A-Z a-z 0-9 . _ -, no leading '.'), made
// from something a person recognises: other characters become '_'.
std::string identity_from(const std::string& text, const std::string& fallback);
// The default fileset name: the watched directory's own name.
std::string default_fileset(const std::string& absolute_dir);
// The default agent id: this machine's host name.
std::string default_agent_id();

}  // namespace iz::agent
