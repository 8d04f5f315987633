// Verification inside the agent (verify_service.hpp): its threads have the
// main thread settle what was captured, and journal repairs.

#include "daemon_impl.hpp"

#include <unistd.h>

#include <spdlog/spdlog.h>

namespace iz::agent {

// ---- DaemonImpl::Host: on verification threads -----------------------------

Result<uint64_t> DaemonImpl::Host::settle() { return d_.settle_from_thread(); }

Result<uint64_t> DaemonImpl::Host::journal(std::vector<journal::Record> records) {
    std::lock_guard lock(d_.writer_mu_);
    uint64_t last = 0;
    for (auto& r : records) {
        auto lsn = d_.writer_->append(std::move(r));
        if (!lsn) return fail(lsn.error());
        last = *lsn;
    }
    return last;
}

void DaemonImpl::start_verification() {
    VerifySetup vs;
    vs.root_fd = root_fd_;
    vs.journal_dir = opts_.journal_dir;
    vs.state_dir = opts_.state_dir;
    vs.excludes = opts_.excludes;
    if (shipper_)
        for (auto& srv : shipper_->status()) vs.servers.push_back(srv.endpoint);
    vs.shipper = shipper_.get();
    vs.host = &host_;
    vs.scrub_interval = opts_.scrub_interval;
    vs.scrub_bytes_per_s = opts_.scrub_bytes_per_s;
    verify_ = std::make_unique<VerifyService>(std::move(vs));
    verify_->start();
}

Result<uint64_t> DaemonImpl::settle_from_thread(bool write_back) {
    // The verification thread may block: it writes back here what a
    // sync has the flusher write back (see writeback_flusher.hpp).
    if (write_back && bpf_ && ::syncfs(root_fd_) != 0)
        spdlog::warn("{}", sys_error("write back the watched filesystem (syncfs)", opts_.dir, errno).message);
    auto req = std::make_shared<SettleRequest>();
    {
        std::lock_guard lock(settle_mu_);
        if (settles_closed_) return fail(make_error("the agent is stopping"));
        settles_.push_back(req);
    }
    uint64_t one = 1;
    (void)!::write(settle_fd_, &one, sizeof one);
    std::unique_lock lock(req->mu);
    if (!req->cv.wait_for(lock, std::chrono::minutes(5), [&] { return req->done; }))
        return fail(make_error("the agent did not settle its captured changes within 5 minutes"));
    if (!req->error.empty()) return fail(make_error(req->error));
    return req->lsn;
}

void DaemonImpl::finish_settles(const std::string& error) {
    std::vector<std::shared_ptr<SettleRequest>> reqs;
    {
        std::lock_guard lock(settle_mu_);
        reqs.swap(settles_);
    }
    for (auto& r : reqs) {
        std::lock_guard lock(r->mu);
        r->done = true;
        r->error = error;
        r->lsn = writer_ ? writer_->head_lsn() : 0;
        r->cv.notify_all();
    }
}

void DaemonImpl::answer_settles() {
    uint64_t n = 0;
    while (::read(settle_fd_, &n, sizeof n) == static_cast<ssize_t>(sizeof n)) {
    }
    auto ok = settle();
    finish_settles(ok ? std::string() : ok.error().message);
}

void DaemonImpl::close_settles() {
    {
        std::lock_guard lock(settle_mu_);
        settles_closed_ = true;
    }
    finish_settles("the agent is stopping");
}
}  // namespace iz::agent
