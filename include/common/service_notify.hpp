#pragma once
// Telling the service manager how a daemon is (systemd's Type=notify, see
// sd_notify(3)): each call sends one datagram to $NOTIFY_SOCKET and does
// nothing when that is not set, so a daemon calls them unconditionally.
// Failures to send are ignored: the manager, not the daemon, decides what
// a missing notification means.
#include <string_view>

namespace iz {

// True when a service manager listens ($NOTIFY_SOCKET is set).
bool service_manager_listens();

// READY=1 with STATUS=<status>: the daemon serves. Call once it does.
void notify_ready(std::string_view status);
// STATUS=<status>: the one line `systemctl status` shows.
void notify_status(std::string_view status);
// STOPPING=1 with STATUS=<status>: the daemon is shutting down.
void notify_stopping(std::string_view status);

}  // namespace iz
