#pragma once
// Who did it: command name and user of a pid, read from /proc and cached
// briefly (a burst of events from one process costs one read).
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace iz::agent {

struct ProcessInfo {
    std::string comm;
    std::optional<uint32_t> uid;
    std::optional<uint32_t> gid;
};

class ProcessInfoCache {
public:
    const ProcessInfo& lookup(int32_t pid);
    // A process ended (learned from eBPF): kept for a few seconds, long
    // enough for its queued fanotify events to be attributed.
    void remember_exit(int32_t pid, ProcessInfo info);

private:
    struct Exited {
        ProcessInfo info;
        std::chrono::steady_clock::time_point at;
    };
    std::unordered_map<int32_t, ProcessInfo> cache_;
    std::unordered_map<int32_t, Exited> exited_;
    std::chrono::steady_clock::time_point cleared_ = std::chrono::steady_clock::now();
};

}  // namespace iz::agent
