#include "agent/process_info.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace iz::agent {

const ProcessInfo& ProcessInfoCache::lookup(int32_t pid) {
    auto now = std::chrono::steady_clock::now();
    // Pids are reused: forget everything once a second.
    if (now - cleared_ > std::chrono::seconds(1) || cache_.size() > 4096) {
        cache_.clear();
        cleared_ = now;
    }
    auto [it, fresh] = cache_.try_emplace(pid);
    if (!fresh || pid <= 0) return it->second;
    std::ifstream comm(fmt::format("/proc/{}/comm", pid));
    if (!comm) {
        if (auto gone = exited_.find(pid); gone != exited_.end()) it->second = gone->second.info;
        return it->second;
    }
    std::getline(comm, it->second.comm);
    std::ifstream status(fmt::format("/proc/{}/status", pid));
    std::string line;
    while (std::getline(status, line)) {
        std::istringstream in(line.substr(line.find(':') + 1));
        uint32_t real = 0;
        if (line.starts_with("Uid:") && (in >> real)) it->second.uid = real;
        if (line.starts_with("Gid:") && (in >> real)) {
            it->second.gid = real;
            break;
        }
    }
    return it->second;
}

void ProcessInfoCache::remember_exit(int32_t pid, ProcessInfo info) {
    auto now = std::chrono::steady_clock::now();
    if (exited_.size() > 4096)
        std::erase_if(exited_, [&](const auto& kv) { return now - kv.second.at > std::chrono::seconds(5); });
    exited_[pid] = Exited{std::move(info), now};
}

}  // namespace iz::agent
