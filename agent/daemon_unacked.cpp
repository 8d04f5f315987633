// DaemonImpl::unacked_beneath (daemon_impl.hpp): a forwarded removal of a
// directory waits for the server to have this agent's changes beneath it.
#include "daemon_impl.hpp"

namespace iz::agent {

uint64_t DaemonImpl::unacked_beneath(const std::string& dir) {
    std::string prefix = dir + "/";
    uint64_t lsn = 0;
    {
        std::lock_guard lock(local_mu_);
        for (auto& [path, at] : local_lsns_)
            if (path.starts_with(prefix)) lsn = std::max(lsn, at);
    }
    if (lsn == 0) return 0;
    auto* s = shipper_ptr_.load();
    if (!s || !s->wait_acked_by(0, lsn, std::chrono::milliseconds(0))) return lsn;
    std::lock_guard lock(local_mu_);
    std::erase_if(local_lsns_, [&](auto& e) { return e.second <= lsn && e.first.starts_with(prefix); });
    return 0;
}

}  // namespace iz::agent
