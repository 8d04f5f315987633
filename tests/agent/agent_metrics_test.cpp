// The agent's metrics page made of a status: each figure under its name and
// labels, and a page promtool's lint accepts.
#include <gtest/gtest.h>

#include <string>

#include "agent/agent_metrics.hpp"
#include "support/process.hpp"

namespace iz::agent {
namespace {

AgentStatus sample() {
    AgentStatus s;
    s.dir = "/srv/a dir/with \"quotes\"";  // never in a label
    s.capture = "fanotify+ebpf";
    s.ebpf = true;
    s.queue_events = 262144;
    s.queue_depth = 12;
    s.records = 1001;
    s.events = 2002;
    s.events_outside = 3;
    s.overflows = 4;
    s.rescans = 5;
    s.head_lsn = 1010;
    s.durable_lsn = 1000;
    s.journal_disk_bytes = 64ull << 20;
    s.uptime_s = 12.5;
    s.servers.push_back({.endpoint = "10.0.0.1:7411",
                         .connected = true,
                         .acked_lsn = 990,
                         .records_behind = 20,
                         .bytes_behind = 4096,
                         .conflicts = 2,
                         .rejected = {{.lsn = 7, .path = "a/secret/path", .message = "too long"}},
                         .data_bytes_sent = 1ull << 40,
                         .wire_bytes_sent = 12345,
                         .reconnects = 3,
                         .rejected_total = 101,
                         .server_errors = 6,
                         .unacked_age_s = 2.5});
    s.servers.push_back({.endpoint = "[::1]:7411"});
    return s;
}

bool has_line(const std::string& page, const std::string& line) {
    return page.find("\n" + line + "\n") != std::string::npos;
}

TEST(AgentMetrics, EachFigureUnderItsNameAndLabels) {
    auto page = agent_metrics(sample());
    for (auto line : {"iz_agent_records_journaled_total 1001", "iz_agent_events_read_total 2002",
                      "iz_agent_events_outside_total 3", "iz_agent_overflows_total 4", "iz_agent_rescans_total 5",
                      "iz_agent_journal_head_lsn 1010", "iz_agent_journal_durable_lsn 1000",
                      "iz_agent_journal_durable_lag_records 10", "iz_agent_journal_disk_bytes 67108864",
                      "iz_agent_journal_failed 0", "iz_agent_fanotify_queue_capacity_events 262144",
                      "iz_agent_fanotify_queue_events 12", "iz_agent_ebpf_attached 1", "iz_agent_uptime_seconds 12.5",
                      "iz_agent_server_connected{server=\"10.0.0.1:7411\"} 1",
                      "iz_agent_server_connected{server=\"[::1]:7411\"} 0",
                      "iz_agent_server_acked_lsn{server=\"10.0.0.1:7411\"} 990",
                      "iz_agent_server_behind_records{server=\"10.0.0.1:7411\"} 20",
                      "iz_agent_server_behind_bytes{server=\"10.0.0.1:7411\"} 4096",
                      "iz_agent_server_unacked_age_seconds{server=\"10.0.0.1:7411\"} 2.5",
                      "iz_agent_server_data_sent_bytes_total{server=\"10.0.0.1:7411\"} 1099511627776",
                      "iz_agent_server_wire_sent_bytes_total{server=\"10.0.0.1:7411\"} 12345",
                      "iz_agent_server_conflicts_total{server=\"10.0.0.1:7411\"} 2",
                      "iz_agent_server_reconnects_total{server=\"10.0.0.1:7411\"} 3",
                      "iz_agent_server_apply_errors_total{server=\"10.0.0.1:7411\",kind=\"rejected\"} 101",
                      "iz_agent_server_apply_errors_total{server=\"10.0.0.1:7411\",kind=\"failed\"} 6"})
        EXPECT_TRUE(has_line(page, line)) << line << "\n" << page;
    // Paths stay out of the metrics: the watched directory, a rejected record's.
    EXPECT_EQ(page.find("/srv/a dir"), std::string::npos) << page;
    EXPECT_EQ(page.find("secret"), std::string::npos) << page;
}

TEST(AgentMetrics, TheQueueDepthIsLeftOutWhenUnknown) {
    auto s = sample();
    s.queue_depth.reset();
    s.journal_failure = "disk full";
    auto page = agent_metrics(s);
    EXPECT_EQ(page.find("iz_agent_fanotify_queue_events"), std::string::npos) << page;
    EXPECT_TRUE(has_line(page, "iz_agent_journal_failed 1")) << page;
}

TEST(AgentMetrics, PromtoolAcceptsThePage) {
    if (test::run_process({"sh", "-c", "command -v promtool"}).exit_code != 0)
        GTEST_SKIP() << "promtool is not installed (the prometheus package, scripts/install-deps.sh)";
    auto check = test::run_process({"promtool", "check", "metrics"}, {}, std::chrono::seconds(30), agent_metrics(sample()));
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
    EXPECT_EQ(check.out + check.err, "");
}

}  // namespace
}  // namespace iz::agent
