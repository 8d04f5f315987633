#include "common/service_notify.hpp"

#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <string>

namespace iz {

namespace {

// A status is one line: a newline would end the STATUS= assignment early
// and make the rest an assignment of its own.
std::string one_line(std::string_view status) {
    std::string line(status);
    for (auto& c : line)
        if (c == '\n' || c == '\r') c = ' ';
    return line;
}

void send(std::string_view head, std::string_view status) {
    if (!service_manager_listens()) return;
    std::string message(head);
    message += "STATUS=";
    message += one_line(status);
    // unset_environment 0: a restarted exec of the same program (none
    // today) would still find the socket.
    (void)sd_notify(0, message.c_str());
}

}  // namespace

bool service_manager_listens() {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    return socket != nullptr && *socket != '\0';
}

void notify_ready(std::string_view status) { send("READY=1\n", status); }
void notify_status(std::string_view status) { send("", status); }
void notify_stopping(std::string_view status) { send("STOPPING=1\n", status); }

}  // namespace iz
