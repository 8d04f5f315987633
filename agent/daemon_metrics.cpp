// Metrics: /metrics served on a thread of its own. The capture's counters
// belong to this (the main) thread, which copies them for a scrape between
// two batches of events; everything else is read on the metrics thread, so
// a scrape costs capture one copy of a few counters.

#include "daemon_impl.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include "agent/agent_metrics.hpp"
#include "replicator/wire/endpoint.hpp"

namespace iz::agent {

Status DaemonImpl::start_metrics() {
    if (opts_.metrics.empty()) return {};
    auto ep = replicator::parse_endpoint(opts_.metrics);
    if (!ep) return fail(make_error(fmt::format("--metrics '{}': {}", opts_.metrics, ep.error().message)));
    metrics_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (metrics_fd_ < 0) return fail(sys_error("create eventfd for metrics", opts_.dir, errno));
    add(metrics_fd_, 8);
    metrics_capture_ = capture_status();
    auto server = metrics::HttpServer::start({.host = ep->host, .port = ep->port, .render = [this] { return metrics_page(); }});
    if (!server) return fail(server.error());
    metrics_ = std::move(*server);
    return {};
}

// On the metrics thread.
std::string DaemonImpl::metrics_page() {
    AgentStatus st;
    {
        std::unique_lock lock(metrics_mu_);
        uint64_t want = ++metrics_asked_;
        uint64_t one = 1;
        // EAGAIN only when the counter is saturated: the loop wakes anyway.
        (void)!::write(metrics_fd_, &one, sizeof one);
        metrics_cv_.wait_for(lock, kMetricsWait, [&] { return metrics_closed_ || metrics_answered_ >= want; });
        st = metrics_capture_;
    }
    add_shared_status(st);
    return agent_metrics(st);
}

// On the main thread, woken by metrics_fd_.
void DaemonImpl::answer_metrics() {
    uint64_t n = 0;
    (void)!::read(metrics_fd_, &n, sizeof n);
    auto st = capture_status();
    {
        std::lock_guard lock(metrics_mu_);
        metrics_capture_ = std::move(st);
        metrics_answered_ = metrics_asked_;
    }
    metrics_cv_.notify_all();
}

void DaemonImpl::stop_metrics() {
    {
        std::lock_guard lock(metrics_mu_);
        metrics_closed_ = true;
    }
    metrics_cv_.notify_all();
    if (metrics_) metrics_->stop();
}

}  // namespace iz::agent
