#include "agent/verify_service.hpp"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <algorithm>
#include <fstream>

#include "agent/control.hpp"
#include "common/durable_file.hpp"

namespace iz::agent {

namespace {

std::string utc(std::chrono::system_clock::time_point t) {
    std::time_t secs = std::chrono::system_clock::to_time_t(t);
    struct tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// The calling thread reads at idle I/O priority: only when the disk has
// nothing else to do.
// (linux/ioprio.h is not valid C++: its values, from ioprio_set(2).)
void idle_io() {
    constexpr int kWhoProcess = 1, kClassIdle = 3, kClassShift = 13;
    if (::syscall(SYS_ioprio_set, kWhoProcess, 0, kClassIdle << kClassShift) != 0)
        spdlog::warn("scrub: cannot set idle I/O priority: {}", std::strerror(errno));
    // And the least CPU priority: capture and shipping come first.
    if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 19) != 0)
        spdlog::warn("scrub: cannot lower its CPU priority: {}", std::strerror(errno));
}

}  // namespace

VerifyService::VerifyService(VerifySetup setup)
    : s_(std::move(setup)), cache_((s_.state_dir / "content-hashes").string()) {}

VerifyService::~VerifyService() { stop(); }

void VerifyService::start() {
    if (s_.scrub_interval.count() <= 0 || !s_.shipper) return;
    scrub_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "iz-scrub");
        try {
            scrub_loop();
        } catch (const std::exception& e) {
            spdlog::error("scrub: internal error: {}", e.what());
        } catch (...) {
            spdlog::error("scrub: internal error: an exception that is not a std::exception");
        }
    });
}

void VerifyService::stop() {
    cancel_ = true;
    cv_.notify_all();
    if (scrub_.joinable()) scrub_.join();
    std::vector<Request> threads;
    {
        std::lock_guard lock(mu_);
        threads.swap(requests_);
    }
    for (auto& t : threads)
        if (t.thread.joinable()) t.thread.join();
}

std::vector<ServerVerdict> VerifyService::run(const std::vector<size_t>& servers, VerifyOptions o) {
    std::lock_guard lock(run_mu_);
    o.excludes = s_.excludes;
    o.cache = &cache_;
    o.cancel = &cancel_;
    std::vector<ServerVerdict> out;
    for (size_t i : servers) {
        if (cancel_) break;
        out.push_back(verify_server(s_.root_fd, s_.journal_dir, *s_.shipper, i, s_.servers[i], *s_.host, o));
    }
    // After a walk of the whole source, hashes of files not met are stale.
    bool whole = std::any_of(out.begin(), out.end(), [](const ServerVerdict& v) { return v.entries > 0; });
    if (auto ok = cache_.save(whole); !ok) spdlog::warn("verification: saving content hashes: {}", ok.error().message);
    return out;
}

void VerifyService::serve(UniqueFd conn, const nlohmann::json& request) {
    reap();
    auto refuse = [&](const std::string& why) {
        send_reply(conn.get(), {{"ok", false}, {"error", why}});
        conn.reset();
    };
    if (!s_.shipper || s_.servers.empty()) return refuse("this agent ships to no server: there is no replica to verify");
    std::vector<size_t> servers;
    auto only = request.value("server", std::string());
    for (size_t i = 0; i < s_.servers.size(); ++i)
        if (only.empty() || s_.servers[i] == only) servers.push_back(i);
    if (servers.empty()) {
        std::string known;
        for (auto& s : s_.servers) known += (known.empty() ? "" : ", ") + s;
        return refuse(fmt::format("this agent does not ship to '{}' (it ships to {})", only, known));
    }
    VerifyOptions o;
    o.repair = request.value("repair", false);
    o.timeout = std::chrono::milliseconds(static_cast<int64_t>(request.value("timeout_s", 120.0) * 1000));
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard lock(mu_);
    requests_.push_back(Request{std::thread([this, conn = std::move(conn), servers, o, done]() mutable {
        pthread_setname_np(pthread_self(), "iz-verify");
        nlohmann::json reply;
        try {
            auto verdicts = run(servers, o);
            nlohmann::json list = nlohmann::json::array();
            for (auto& v : verdicts) {
                list.push_back(v.to_json());
                for (auto& d : v.differences)
                    spdlog::warn("verify: {} {}: {}", v.server, o.repair ? "repairing" : "differs", d.summary());
            }
            reply = {{"ok", true}, {"servers", list}};
        } catch (const std::exception& e) {
            reply = {{"ok", false}, {"error", std::string("internal error: ") + e.what()}};
        } catch (...) {
            reply = {{"ok", false}, {"error", "internal error: an exception that is not a std::exception"}};
        }
        // Not even the reply may throw out of this thread (dump() does on
        // a path that is not UTF-8).
        try {
            send_reply(conn.get(), reply);
        } catch (const std::exception& e) {
            spdlog::error("verify: cannot send the reply: {}", e.what());
        }
        conn.reset();
        *done = true;
    }), done});
}

// Threads of answered requests are joined by the next request (or stop()).
void VerifyService::reap() {
    std::vector<Request> finished;
    {
        std::lock_guard lock(mu_);
        for (auto it = requests_.begin(); it != requests_.end();) {
            if (*it->done) {
                finished.push_back(std::move(*it));
                it = requests_.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (auto& r : finished) r.thread.join();
}

// When the last scrub ran, kept in the state directory: an agent restarted
// more often than the interval would otherwise never scrub.
std::optional<std::chrono::system_clock::time_point> VerifyService::load_last_scrub() const {
    std::ifstream in(s_.state_dir / "scrub.last");
    int64_t secs = 0;
    if (!(in >> secs) || secs <= 0) return std::nullopt;
    return std::chrono::system_clock::time_point(std::chrono::seconds(secs));
}

void VerifyService::save_last_scrub(std::chrono::system_clock::time_point t) const {
    auto file = s_.state_dir / "scrub.last";
    auto text = fmt::format("{}\n", std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
    if (auto ok = write_file_durably(file, text, 0644); !ok) spdlog::warn("scrub: {}", ok.error().message);
}

void VerifyService::scrub_loop() {
    idle_io();
    // The first run comes an interval after the last one (whatever agent
    // ran it), or after the agent started when none ever ran.
    auto last = load_last_scrub();
    for (;;) {
        auto now = std::chrono::system_clock::now();
        auto due = last ? *last + s_.scrub_interval : now + s_.scrub_interval;
        if (due > now + s_.scrub_interval) due = now + s_.scrub_interval;  // the clock went back
        {
            std::unique_lock lock(mu_);
            auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(std::max(due - now, std::chrono::system_clock::duration::zero()));
            if (cv_.wait_for(lock, wait, [&] { return cancel_.load(); })) return;
        }
        last = std::chrono::system_clock::now();
        std::vector<size_t> all;
        for (size_t i = 0; i < s_.servers.size(); ++i) all.push_back(i);
        VerifyOptions o;
        o.repair = true;
        o.max_bytes_per_s = s_.scrub_bytes_per_s;
        spdlog::info("scrub: verifying the replicas on {} server(s)", all.size());
        auto verdicts = run(all, o);
        if (cancel_) return;
        size_t differences = 0, repaired = 0;
        for (auto& v : verdicts) {
            differences += v.differences.size();
            if (v.repaired) repaired += v.differences.size();
            if (!v.error.empty()) spdlog::error("scrub: cannot verify the replica on {}: {}", v.server, v.error);
            for (auto& d : v.differences)
                spdlog::warn("scrub: the replica on {} differed from the source (a replication bug; repaired by "
                             "journaling it anew): {}",
                             v.server, d.summary());
            for (auto& d : v.remaining) spdlog::error("scrub: still different on {} after the repair: {}", v.server, d.summary());
            if (v.equal()) spdlog::info("scrub: the replica on {} is equal to the source ({} entries, {:.1f} s)", v.server,
                                        v.entries, v.seconds);
        }
        save_last_scrub(*last);
        std::lock_guard lock(mu_);
        auto& st = scrubbed_;
        st.last_run = utc(std::chrono::system_clock::now());
        ++st.runs;
        st.differences = static_cast<int64_t>(differences);
        st.repaired = static_cast<int64_t>(repaired);
        st.paths.clear();
        st.errors.clear();
        for (auto& v : verdicts) {
            for (auto& d : v.differences) st.paths.push_back(d.path.empty() ? "." : d.path);
            if (!v.error.empty()) st.errors.push_back(v.server + ": " + v.error);
        }
        st.found_total += differences;
        st.repaired_total += repaired;
        if (differences > 0) {
            st.last_found = st.last_run;
            st.last_found_paths = st.paths;
        }
    }
}

AgentStatus::Scrub VerifyService::status() const {
    std::lock_guard lock(mu_);
    auto st = scrubbed_;
    st.interval_s = s_.scrub_interval.count();
    return st;
}

}  // namespace iz::agent
