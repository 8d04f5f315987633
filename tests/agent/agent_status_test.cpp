// The status reply's JSON: what AgentStatus writes is, key for key and type
// for type, what the agent wrote before the struct existed (the literal
// below is that code, with the same C++ types as its sources), so scripts
// reading `izwatch status --json` see no change; and it reads back equal.
#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "agent/agent_status.hpp"

namespace iz::agent {
namespace {

using nlohmann::json;

// Equal values are not enough: 3 and 3u and 3.0 compare equal, but a
// reader that asks for a type sees the difference.
void expect_same(const json& want, const json& got, const std::string& where) {
    ASSERT_EQ(want.type_name(), got.type_name()) << where;
    ASSERT_EQ(want.is_number_unsigned(), got.is_number_unsigned()) << where;
    ASSERT_EQ(want.is_number_float(), got.is_number_float()) << where;
    if (want.is_object()) {
        ASSERT_EQ(want.size(), got.size()) << where << ": " << got.dump();
        for (auto& [k, v] : want.items()) {
            ASSERT_TRUE(got.contains(k)) << where << "." << k;
            expect_same(v, got[k], where + "." + k);
        }
    } else if (want.is_array()) {
        ASSERT_EQ(want.size(), got.size()) << where;
        for (size_t i = 0; i < want.size(); ++i) expect_same(want[i], got[i], where + "[" + std::to_string(i) + "]");
    } else {
        ASSERT_EQ(want, got) << where;
    }
}

AgentStatus filled() {
    AgentStatus s;
    s.dir = "/data/watched";
    s.pid = 4242;
    s.journal = "/var/lib/izwatch/x/journal";
    s.state_dir = "/var/lib/izwatch/x";
    s.capture = "fanotify+ebpf";
    s.capture_detail = "eBPF on 4 tracepoints (a, b)";
    s.root_removed = true;
    s.queue_events = 262144;
    s.records = 11;
    s.events = 12;
    s.events_outside = 13;
    s.events_per_s = 14.5;
    s.overflows = 15;
    s.rescans = 16;
    s.journal_errors = 17;
    s.head_lsn = 18;
    s.durable_lsn = 19;
    s.journal_disk_bytes = 20ull << 32;
    s.uptime_s = 21.25;
    s.servers.push_back({.endpoint = "10.0.0.1:7070",
                         .connected = true,
                         .last_error = "reset by peer",
                         .acked_lsn = 22,
                         .records_behind = 23,
                         .bytes_behind = 24,
                         .conflicts = 27,
                         .rejected = {{.lsn = 28, .path = "a/b", .message = "too long"}, {.lsn = 29, .path = "c", .message = "no"}},
                         .data_bytes_sent = 25,
                         .wire_bytes_sent = 26,
                         .reconnects = 33,
                         .rejected_total = 34,
                         .server_errors = 35,
                         .unacked_age_s = 36.5,
                         .peer = "shared key 'iz-psk1-0011223344556677'",
                         .tls = "TLSv1.3 TLS_AES_128_GCM_SHA256",
                         .protocol = 5});
    s.servers.push_back({.endpoint = "10.0.0.2:7070"});
    s.scrub = {.interval_s = 86400,
               .runs = 30,
               .last_run = "2026-12-07T10:00:00Z",
               .differences = 2,
               .repaired = 1,
               .paths = {"x", "."},
               .errors = {"10.0.0.2:7070: connection refused"},
               .found_total = 31,
               .repaired_total = 32,
               .last_found = "2026-12-07T09:00:00Z",
               .last_found_paths = {"y/z"}};
    s.journal_failure = "write segment: No space left on device";
    s.queue_depth = 37;
    s.ebpf = true;
    return s;
}

// The scrub's JSON as VerifyService::status() built it by hand: the
// interval a std::chrono::seconds count, the last run's differences and
// repaired read back from its result with value(key, 0) (so int), the
// totals uint64_t.
json scrub_written_before(const AgentStatus::Scrub& s) {
    json j = {{"interval_s", std::chrono::seconds(s.interval_s).count()}, {"runs", uint64_t{s.runs}}};
    if (s.runs > 0) {
        j["last_run"] = s.last_run;
        j["differences"] = static_cast<int>(s.differences);
        j["repaired"] = static_cast<int>(s.repaired);
        json paths = json::array();
        for (auto& p : s.paths) paths.push_back(p);
        json errors = json::array();
        for (auto& e : s.errors) errors.push_back(e);
        j["paths"] = paths;
        j["errors"] = errors;
        j["found_total"] = uint64_t{s.found_total};
        j["repaired_total"] = uint64_t{s.repaired_total};
        if (s.found_total > 0) {
            j["last_found"] = s.last_found;
            json found = json::array();
            for (auto& p : s.last_found_paths) found.push_back(p);
            j["last_found_paths"] = found;
        }
    }
    return j;
}

// The JSON the agent built by hand before AgentStatus, from sources of
// these types (CaptureStats' uint64_t counters, FanotifySource's uint32_t
// queue length, getpid()'s pid_t, the shipper's ServerStatus).
json written_before(const AgentStatus& s) {
    json servers = json::array();
    for (auto& srv : s.servers) {
        json rejected = json::array();
        for (auto& r : srv.rejected) rejected.push_back({{"lsn", uint64_t{r.lsn}}, {"path", r.path}, {"error", r.message}});
        servers.push_back({{"endpoint", srv.endpoint},
                           {"connected", srv.connected},
                           {"acked_lsn", uint64_t{srv.acked_lsn}},
                           {"records_behind", uint64_t{srv.records_behind}},
                           {"bytes_behind", uint64_t{srv.bytes_behind}},
                           {"data_bytes_sent", uint64_t{srv.data_bytes_sent}},
                           {"wire_bytes_sent", uint64_t{srv.wire_bytes_sent}},
                           {"conflicts", uint64_t{srv.conflicts}},
                           {"rejected", rejected},
                           {"last_error", srv.last_error},
                           // Added for the metrics; scripts reading the keys above see no change.
                           {"reconnects", uint64_t{srv.reconnects}},
                           {"rejected_total", uint64_t{srv.rejected_total}},
                           {"server_errors", uint64_t{srv.server_errors}},
                           {"unacked_age_s", double{srv.unacked_age_s}},
                           {"peer", srv.peer},
                           {"tls", srv.tls},
                           // The protocol version the server chose (0 while not connected).
                           {"protocol", uint16_t{srv.protocol}}});
    }
    json j = {
        {"dir", s.dir},
        {"pid", pid_t{s.pid}},
        {"journal", s.journal},
        {"state_dir", s.state_dir},
        {"capture", s.capture},
        {"capture_detail", s.capture_detail},
        {"root_removed", s.root_removed},
        {"queue_events", uint32_t{s.queue_events}},
        {"records", uint64_t{s.records}},
        {"events", uint64_t{s.events}},
        {"events_outside", uint64_t{s.events_outside}},
        {"events_per_s", double{s.events_per_s}},
        {"overflows", uint64_t{s.overflows}},
        {"rescans", uint64_t{s.rescans}},
        {"journal_errors", uint64_t{s.journal_errors}},
        {"head_lsn", uint64_t{s.head_lsn}},
        {"durable_lsn", uint64_t{s.durable_lsn}},
        {"journal_disk_bytes", uint64_t{s.journal_disk_bytes}},
        {"uptime_s", double{s.uptime_s}},
        {"servers", servers},
        {"scrub", scrub_written_before(s.scrub)},
    };
    if (s.journal_failure) j["journal_failure"] = *s.journal_failure;
    // Added for the metrics.
    if (s.queue_depth) j["queue_depth"] = uint64_t{*s.queue_depth};
    j["ebpf"] = s.ebpf;
    return j;
}

TEST(AgentStatus, WritesTheJsonTheAgentAlwaysSent) {
    auto s = filled();
    json got = s;
    expect_same(written_before(s), got, "status");
    EXPECT_EQ(written_before(s).dump(), got.dump());
}

TEST(AgentStatus, LeavesJournalFailureOutWhileTheJournalWorks) {
    auto s = filled();
    s.journal_failure.reset();
    s.servers.clear();
    json got = s;
    EXPECT_FALSE(got.contains("journal_failure"));
    ASSERT_TRUE(got["servers"].is_array());
    EXPECT_TRUE(got["servers"].empty());
    expect_same(written_before(s), got, "status");
}

TEST(AgentStatus, ReadsBackEqual) {
    for (bool failed : {true, false}) {
        auto s = filled();
        if (!failed) s.journal_failure.reset();
        json reply = s;
        reply["ok"] = true;  // the control reply adds it
        auto back = json::parse(reply.dump()).get<AgentStatus>();
        EXPECT_EQ(back, s) << reply.dump();
    }
}

// A reply without some keys (an agent of another version) reads as the
// command always read it: the missing fields keep their defaults.
TEST(AgentStatus, ReadsMissingKeysAsDefaults) {
    auto back = json{{"dir", "/d"}, {"servers", json::array({json{{"endpoint", "e"}}})}}.get<AgentStatus>();
    EXPECT_EQ(back.dir, "/d");
    EXPECT_EQ(back.pid, 0);
    EXPECT_FALSE(back.journal_failure.has_value());
    ASSERT_EQ(back.servers.size(), 1u);
    EXPECT_EQ(back.servers[0].endpoint, "e");
    EXPECT_TRUE(back.servers[0].rejected.empty());
    EXPECT_EQ(back.scrub, AgentStatus::Scrub{});
}

// Before its first run the scrub says only its schedule; until it finds a
// difference, nothing of the last one found.
TEST(AgentStatus, ScrubWritesTheKeysOfWhatHappened) {
    for (uint64_t runs : {0, 3}) {
        for (uint64_t found : {0, 5}) {
            auto s = filled().scrub;
            s.runs = runs;
            s.found_total = found;
            json got = s;
            auto where = fmt::format("scrub (runs {}, found {})", runs, found);
            expect_same(scrub_written_before(s), got, where);
            EXPECT_EQ(scrub_written_before(s).dump(), got.dump()) << where;
            auto back = json::parse(got.dump()).get<AgentStatus::Scrub>();
            auto want = s;
            if (runs == 0) {
                want = {.interval_s = s.interval_s};
            } else if (found == 0) {
                want.last_found.clear();
                want.last_found_paths.clear();
            }
            EXPECT_EQ(back, want) << where;
        }
    }
}

}  // namespace
}  // namespace iz::agent
