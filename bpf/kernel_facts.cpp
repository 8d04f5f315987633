#include "kernel_facts.hpp"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace iz::agent::bpf {

Result<std::string> filesystem_type(dev_t dev) {
    std::ifstream in("/proc/self/mountinfo");
    if (!in) return fail(sys_error("open", "/proc/self/mountinfo", errno));
    const std::string wanted = fmt::format("{}:{}", major(dev), minor(dev));
    std::string line;
    while (std::getline(in, line)) {
        // id parent major:minor root mountpoint options [optional...] - fstype source super-options
        std::istringstream fields(line);
        std::string id, parent, devno;
        fields >> id >> parent >> devno;
        if (devno != wanted) continue;
        auto dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        std::istringstream tail(line.substr(dash + 3));
        std::string type;
        tail >> type;
        if (!type.empty()) return type;
    }
    return fail(make_error(fmt::format("no mounted filesystem has device {} (in /proc/self/mountinfo)", wanted)));
}

static bool is_dir(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<std::string> tracefs_events_dir() {
    for (const char* root : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
        std::string events = std::string(root) + "/events";
        if (is_dir(events)) return events;
    }
    if (::mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nullptr) != 0)
        return fail(sys_error("mount tracefs on", "/sys/kernel/tracing", errno));
    return std::string("/sys/kernel/tracing/events");
}

bool tracepoint_exists(const std::string& events_dir, const std::string& category_and_name) {
    return ::access((events_dir + "/" + category_and_name + "/id").c_str(), F_OK) == 0;
}

std::string backing_device_name(dev_t dev) {
    auto sysfs = fmt::format("/sys/dev/block/{}:{}", major(dev), minor(dev));
    if (::access(sysfs.c_str(), F_OK) != 0) return {};
    // A partition shares its disk's writeback (the disk's bdi).
    if (::access((sysfs + "/partition").c_str(), F_OK) == 0) {
        std::ifstream parent(sysfs + "/../dev");
        std::string name;
        if (parent >> name) return name;
        return {};
    }
    return fmt::format("{}:{}", major(dev), minor(dev));
}

unsigned int kernel_dev(dev_t dev) { return (major(dev) << 20) | minor(dev); }

}  // namespace iz::agent::bpf
