// Monitoring end to end: a real Prometheus (Debian's package) scrapes the
// real izwatch and izreplicate every second, and what its query API
// (/api/v1/query) returns is compared with what the journal (izlog) and the
// replica say. Prometheus runs in the agent's network namespace, reaching
// the agent on loopback and the server over the veth link; it and its data
// directory go with the test, whatever happens.
#include <signal.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "e2e_hosts.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace iz::test::e2e {
namespace {

constexpr uint16_t kAgentMetricsPort = 9464;
constexpr uint16_t kServerMetricsPort = 9465;
constexpr uint16_t kPrometheusPort = 9090;

bool have_prometheus() {
    return run_process({"sh", "-c", "command -v prometheus && command -v promtool && command -v curl"}).exit_code == 0;
}

// A Prometheus in `ns` scraping `targets` (job -> HOST:PORT) every second.
class Prometheus {
public:
    Prometheus(const Netns& ns, const std::vector<std::pair<std::string, std::string>>& targets)
        : ns_(ns), dir_("e2e-prometheus") {
        std::ofstream config(dir_ / "prometheus.yml");
        config << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n";
        for (auto& [job, target] : targets)
            config << fmt::format("  - job_name: {}\n    static_configs:\n      - targets: ['{}']\n", job, target);
        config.close();
        proc_ = std::make_unique<ChildProcess>(
            ns_.exec({"prometheus", "--config.file=" + (dir_ / "prometheus.yml").string(),
                      "--storage.tsdb.path=" + (dir_ / "data").string(),
                      fmt::format("--web.listen-address=127.0.0.1:{}", kPrometheusPort), "--log.level=warn"}),
            dir_ / "out", dir_ / "log");
        bool ready = eventually([&] { return get("/-/ready").exit_code == 0; }, 20s);
        if (!ready) throw std::runtime_error("prometheus did not become ready: " + log());
    }
    // The process first, then (TempDir) its data directory.
    ~Prometheus() { proc_.reset(); }

    ProcessResult get(const std::string& path) const {
        return run_process(ns_.exec({"curl", "-sf", "--max-time", "5", fmt::format("http://127.0.0.1:{}{}", kPrometheusPort, path)}));
    }

    // /api/v1/query: the value of the first sample `expr` gives now, if any.
    std::optional<double> value(const std::string& expr) const {
        auto r = run_process(ns_.exec({"curl", "-sfG", "--max-time", "5", "--data-urlencode", "query=" + expr,
                                       fmt::format("http://127.0.0.1:{}/api/v1/query", kPrometheusPort)}));
        if (r.exit_code != 0) return std::nullopt;
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        if (!j.is_object() || j.value("status", "") != "success") return std::nullopt;
        auto& result = j["data"]["result"];
        if (!result.is_array() || result.empty()) return std::nullopt;
        return std::stod(result[0]["value"][1].get<std::string>());
    }

    // Waits (scrapes come every second) until `expr` is `want`; returns what it last was.
    std::optional<double> wait_for(const std::string& expr, double want, std::chrono::seconds timeout = 15s) const {
        std::optional<double> v;
        eventually([&] { return (v = value(expr)) && *v == want; }, timeout);
        return v;
    }

    std::string log() const {
        std::ifstream in(dir_ / "log");
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }

private:
    const Netns& ns_;
    TempDir dir_;
    std::unique_ptr<ChildProcess> proc_;
};

class Monitoring : public ::testing::Test {
protected:
    void SetUp() override {
        if (!have_prometheus()) GTEST_SKIP() << "prometheus, promtool or curl is not installed (scripts/install-deps.sh)";
        agent_ns_ = must(Netns::make("mon-agent"));
        server_ns_ = must(Netns::make("mon-srv"));
        link_ = must(VethLink::make(*agent_ns_, *server_ns_, 1));
        key_ = make_key(keys_);
        server_ = std::make_unique<ServerHost>(*server_ns_, link_->address_b(), key_, "mon-dst");
        auto args = server_args();
        args.insert(args.end(), {"--metrics", server_metrics()});
        server_->start(args);
        agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "mon-src");
        auto r = agent_->start({server_->endpoint()}, {"--metrics", agent_metrics()});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        prometheus_ = std::make_unique<Prometheus>(
            *agent_ns_, std::vector<std::pair<std::string, std::string>>{{"izwatch", agent_metrics()},
                                                                         {"izreplicate", server_metrics()}});
    }

    void TearDown() override {
        prometheus_.reset();
        if (HasFailure() && agent_) fmt::print(stderr, "agent log:\n{}\nserver log:\n{}\n", agent_->log(), server_->log());
        agent_.reset();
        server_.reset();
        link_.reset();
        server_ns_.reset();
        agent_ns_.reset();
    }

    virtual std::vector<std::string> server_args() const { return {}; }

    std::string agent_metrics() const { return fmt::format("127.0.0.1:{}", kAgentMetricsPort); }
    std::string server_metrics() const { return fmt::format("{}:{}", link_->address_b(), kServerMetricsPort); }

    // A scrape as Prometheus gets it (from the agent's namespace).
    std::string scrape(const std::string& target) const {
        auto r = run_process(agent_ns_->exec({"curl", "-sf", "--max-time", "5", "http://" + target + "/metrics"}));
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return r.out;
    }

    // The journal as izlog reads it: the records the capture journaled (all
    // but the agent's own start records) and the last LSN.
    std::pair<uint64_t, uint64_t> journal_counts() const {
        auto r = run_process({bin_path("izlog").string(), "-D", agent_->journal().string(), "-o", "json", "--no-pager"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        uint64_t captured = 0, last = 0;
        std::istringstream lines(r.out);
        for (std::string line; std::getline(lines, line);) {
            if (line.empty()) continue;
            auto j = nlohmann::json::parse(line);
            if (j.value("op", "") != "start") ++captured;
            last = j.value("lsn", uint64_t{0});
        }
        return {captured, last};
    }

    static uint64_t write_files(const fs::path& dir, const std::string& prefix, int n) {
        uint64_t bytes = 0;
        for (int i = 0; i < n; ++i) {
            std::string content(1000 + 997 * i, static_cast<char>('a' + i % 26));
            std::ofstream(dir / fmt::format("{}{}", prefix, i)) << content;
            bytes += content.size();
        }
        return bytes;
    }

    TempDir keys_{"mon-key"};
    fs::path key_;
    std::unique_ptr<Netns> agent_ns_, server_ns_;
    std::unique_ptr<VethLink> link_;
    std::unique_ptr<ServerHost> server_;
    std::unique_ptr<AgentHost> agent_;
    std::unique_ptr<Prometheus> prometheus_;
};

TEST_F(Monitoring, PrometheusScrapesWhatTheJournalAndTheReplicaSay) {
    // Clients that connect to both endpoints and send nothing stay
    // connected through the workload; one that sends garbage gets a 400.
    // Neither holds up the daemons nor Prometheus' scrapes.
    auto [host, port] = std::pair{link_->address_b(), kServerMetricsPort};
    ChildProcess silent(agent_ns_->exec(
        {"bash", "-c",
         fmt::format("exec 3<>/dev/tcp/127.0.0.1/{} 4<>/dev/tcp/{}/{} && exec sleep 60", kAgentMetricsPort, host, port)}));
    for (auto target : {fmt::format("127.0.0.1/{}", kAgentMetricsPort), fmt::format("{}/{}", host, port)}) {
        auto garbage = run_process(
            agent_ns_->exec({"bash", "-c",
                             fmt::format("exec 3<>/dev/tcp/{} && printf '\026\003\001 garbage\r\n\r\n' >&3 && cat <&3",
                                         target)}),
            {}, 15s);
        EXPECT_TRUE(garbage.out.starts_with("HTTP/1.1 400 Bad Request\r\n")) << target << ": " << garbage.out << garbage.err;
    }
    auto d = agent_->dir();
    fs::create_directories(d / "sub/deeper");
    uint64_t written = write_files(d / "sub", "f", 20);
    fs::rename(d / "sub/f0", d / "sub/deeper/moved");
    fs::remove(d / "sub/f1");
    written -= 1000 + 997;  // f1's, which may or may not have shipped before it went
    auto r = agent_->sync();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto [captured, head] = journal_counts();
    ASSERT_GT(captured, 20u);
    auto& p = *prometheus_;
    auto ep = server_->endpoint();
    auto srv = fmt::format("{{server=\"{}\"}}", ep);

    // Scrapes of both succeed, and the agent's counters are the journal's.
    EXPECT_EQ(p.wait_for("up{job=\"izwatch\"}", 1), 1) << p.log();
    EXPECT_EQ(p.wait_for("up{job=\"izreplicate\"}", 1), 1) << p.log();
    EXPECT_EQ(p.wait_for("iz_agent_records_journaled_total", static_cast<double>(captured)), captured);
    EXPECT_EQ(p.wait_for("iz_agent_journal_head_lsn", static_cast<double>(head)), head);
    // Everything acknowledged: the server has the journal's head durably,
    // and nothing is behind.
    EXPECT_EQ(p.wait_for("iz_agent_server_acked_lsn" + srv, static_cast<double>(head)), head);
    EXPECT_EQ(p.wait_for("iz_server_durable_lsn{fileset=\"data\"}", static_cast<double>(head)), head);
    EXPECT_EQ(p.wait_for("iz_server_applied_lsn{fileset=\"data\"}", static_cast<double>(head)), head);
    EXPECT_EQ(p.wait_for("iz_agent_server_behind_records" + srv, 0), 0);
    EXPECT_EQ(p.wait_for("iz_agent_server_behind_bytes" + srv, 0), 0);
    EXPECT_EQ(p.wait_for("iz_agent_server_unacked_age_seconds" + srv, 0), 0);
    EXPECT_EQ(p.wait_for("iz_agent_journal_durable_lag_records", 0), 0);
    EXPECT_EQ(p.wait_for("iz_agent_server_connected" + srv, 1), 1);
    // What the agent sent is what the server wrote, and at least every
    // byte of the files that remain.
    auto sent = p.value("iz_agent_server_data_sent_bytes_total" + srv);
    ASSERT_TRUE(sent);
    EXPECT_GE(*sent, static_cast<double>(written));
    EXPECT_EQ(p.wait_for("sum(iz_server_applied_data_bytes_total{fileset=\"data\"})", *sent), *sent);
    auto wire = p.value("iz_agent_server_wire_sent_bytes_total" + srv);
    ASSERT_TRUE(wire);
    EXPECT_GT(*wire, 0);
    EXPECT_EQ(p.value("sum(iz_server_operations_total{outcome=~\"refused|failed|rejected\"})"), 0);
    EXPECT_GT(p.value("iz_server_operations_total{outcome=\"applied\"}").value_or(0), 0);
    EXPECT_EQ(p.value("iz_server_records_applied_total{fileset=\"data\"}").has_value(), true);
    EXPECT_EQ(p.value("sum(iz_agent_server_apply_errors_total)"), 0);
    EXPECT_EQ(p.value("iz_agent_server_reconnects_total" + srv), 0);
    EXPECT_EQ(p.value("iz_agent_overflows_total"), 0);
    EXPECT_GE(p.value("iz_agent_events_read_total").value_or(0), 20);
    bool ebpf = agent_->status().value("capture", "") == "fanotify+ebpf";
    EXPECT_EQ(p.value("iz_agent_ebpf_attached"), ebpf ? 1 : 0);
    EXPECT_GT(p.value("iz_agent_journal_disk_bytes").value_or(0), 0);
    EXPECT_EQ(p.value("iz_server_handshake_failures_total"), 0);

    // A server that stops reading: the records behind and the age of the
    // oldest one show, and both return to 0 once it is back and synced.
    server_->pause();
    write_files(d, "late", 5);
    auto behind = p.value("iz_agent_server_behind_records" + srv);
    eventually([&] { return (behind = p.value("iz_agent_server_behind_records" + srv)) && *behind > 0; }, 15s);
    EXPECT_GT(behind.value_or(0), 0);
    std::optional<double> age;
    eventually([&] { return (age = p.value("iz_agent_server_unacked_age_seconds" + srv)) && *age >= 1; }, 15s);
    EXPECT_GE(age.value_or(0), 1);
    server_->resume();
    r = agent_->sync();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto [captured2, head2] = journal_counts();
    EXPECT_GT(head2, head);
    EXPECT_EQ(p.wait_for("iz_agent_records_journaled_total", static_cast<double>(captured2)), captured2);
    EXPECT_EQ(p.wait_for("iz_agent_server_behind_records" + srv, 0), 0);
    EXPECT_EQ(p.wait_for("iz_agent_server_unacked_age_seconds" + srv, 0), 0);
    EXPECT_EQ(p.wait_for("iz_server_durable_lsn{fileset=\"data\"}", static_cast<double>(head2)), head2);
    // The agent was scraped all along, the silent clients notwithstanding
    // (the server not while it was stopped).
    EXPECT_EQ(p.value("min_over_time(up{job=\"izwatch\"}[1m])"), 1) << p.log();
    EXPECT_EQ(p.wait_for("up{job=\"izreplicate\"}", 1), 1) << p.log();
}

// promtool's lint of a scrape of each: names, units, HELP and TYPE as
// Prometheus' conventions want them.
TEST_F(Monitoring, ScrapesPassPromtool) {
    std::ofstream(agent_->dir() / "one") << "something to count\n";
    auto r = agent_->sync();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (auto target : {agent_metrics(), server_metrics()}) {
        auto page = scrape(target);
        ASSERT_NE(page.find("# TYPE "), std::string::npos) << target << ":\n" << page;
        auto check = run_process({"promtool", "check", "metrics"}, {}, 30s, page);
        EXPECT_EQ(check.exit_code, 0) << target << ": " << check.out << check.err << "\n" << page;
        EXPECT_EQ(check.out + check.err, "") << target << ":\n" << page;
    }
    // The per-server and per-fileset families are there, with their labels.
    auto agent_page = scrape(agent_metrics());
    EXPECT_NE(agent_page.find(fmt::format("iz_agent_server_acked_lsn{{server=\"{}\"}} ", server_->endpoint())),
              std::string::npos)
        << agent_page;
    // The kernel says how many events wait in the fanotify queue (FIONREAD).
    EXPECT_NE(agent_page.find("\niz_agent_fanotify_queue_events "), std::string::npos) << agent_page;
    auto server_page = scrape(server_metrics());
    EXPECT_NE(server_page.find("fileset=\"data\",outcome=\"applied\"} "), std::string::npos) << server_page;

    // A metrics address that is taken fails the start, naming it.
    auto second = run_process(
        server_ns_->exec({bin_path("izreplicate").string(), "--root", (keys_ / "root2").string(), "--listen",
                          link_->address_b() + ":7412", "--key", key_.string(), "--foreground", "--metrics",
                          server_metrics()}),
        {}, 30s);
    EXPECT_EQ(second.exit_code, 1) << second.out << second.err;
    EXPECT_NE(second.err.find("listen for metrics on '" + server_metrics() + "': Address already in use"), std::string::npos)
        << second.err;
}

}  // namespace
}  // namespace iz::test::e2e

namespace iz::test::e2e {
namespace {

// The server keeps its state inside the replica, under `.state`: a record
// under that name can never be applied there.
class MonitoringRejections : public Monitoring {
protected:
    std::vector<std::string> server_args() const override {
        return {"--state-dir", (server_->replica("data") / ".state").string()};
    }
};

// A record the server rejects and a file edited on the replica behind the
// replicator's back (a conflict) are counted on both sides alike, as
// Prometheus sees them.
TEST_F(MonitoringRejections, RejectionsAndConflictsAreCounted) {
    auto d = agent_->dir();
    std::ofstream(d / "f") << "first\n";
    auto r = agent_->sync();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::ofstream(server_->replica("data") / "f", std::ios::app) << "edited on the server\n";
    std::ofstream(d / "f", std::ios::app) << "second, on the source\n";
    fs::create_directories(d / ".state/sub");
    std::ofstream(d / ".state/sub/file") << "a name the server keeps for itself\n";
    std::ofstream(d / "after") << "after it\n";
    r = agent_->sync();
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("cannot apply '.state"), std::string::npos) << r.err;
    auto& p = *prometheus_;
    auto srv = fmt::format("server=\"{}\"", server_->endpoint());
    EXPECT_EQ(p.wait_for("iz_agent_server_conflicts_total{" + srv + "}", 1), 1);
    std::optional<double> rejected;
    eventually([&] { return (rejected = p.value("iz_agent_server_apply_errors_total{" + srv + ",kind=\"rejected\"}")) && *rejected >= 1; },
               15s);
    EXPECT_GE(rejected.value_or(0), 1);
    EXPECT_EQ(p.wait_for("sum(iz_server_operations_total{fileset=\"data\",outcome=\"rejected\"})", rejected.value_or(-1)),
              rejected);
    EXPECT_EQ(p.value("iz_agent_server_apply_errors_total{" + srv + ",kind=\"failed\"}"), 0);
    // What follows the rejected record arrived: nothing is behind.
    EXPECT_EQ(p.wait_for("iz_agent_server_behind_records{" + srv + "}", 0), 0);
}

}  // namespace
}  // namespace iz::test::e2e
