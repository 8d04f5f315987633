#include "agent/agent_status.hpp"

#include <type_traits>

namespace iz::agent {

namespace {

// Each type's keys, in one list that both directions walk: f(key, field).
template <class R, class F>
void fields_of_rejected(R& r, F&& f) {
    f("lsn", r.lsn);
    f("path", r.path);
    f("error", r.error);
}

template <class S, class F>
void fields_of_server(S& s, F&& f) {
    f("endpoint", s.endpoint);
    f("connected", s.connected);
    f("acked_lsn", s.acked_lsn);
    f("records_behind", s.records_behind);
    f("bytes_behind", s.bytes_behind);
    f("data_bytes_sent", s.data_bytes_sent);
    f("wire_bytes_sent", s.wire_bytes_sent);
    f("conflicts", s.conflicts);
    f("rejected", s.rejected);
    f("last_error", s.last_error);
    f("reconnects", s.reconnects);
    f("rejected_total", s.rejected_total);
    f("server_errors", s.server_errors);
    f("unacked_age_s", s.unacked_age_s);
    f("peer", s.peer);
    f("tls", s.tls);
}

// The last run's keys follow `runs`, and are walked only when it is
// positive: when reading, runs is read first.
template <class S, class F>
void fields_of_scrub(S& s, F&& f) {
    f("interval_s", s.interval_s);
    f("runs", s.runs);
    if (s.runs == 0) return;
    f("last_run", s.last_run);
    f("differences", s.differences);
    f("repaired", s.repaired);
    f("paths", s.paths);
    f("errors", s.errors);
    f("found_total", s.found_total);
    f("repaired_total", s.repaired_total);
    if (s.found_total == 0) return;
    f("last_found", s.last_found);
    f("last_found_paths", s.last_found_paths);
}

template <class S, class F>
void fields_of_agent(S& s, F&& f) {
    f("dir", s.dir);
    f("pid", s.pid);
    f("journal", s.journal);
    f("state_dir", s.state_dir);
    f("capture", s.capture);
    f("capture_detail", s.capture_detail);
    f("root_removed", s.root_removed);
    f("queue_events", s.queue_events);
    f("records", s.records);
    f("events", s.events);
    f("events_outside", s.events_outside);
    f("events_per_s", s.events_per_s);
    f("overflows", s.overflows);
    f("rescans", s.rescans);
    f("journal_errors", s.journal_errors);
    f("head_lsn", s.head_lsn);
    f("durable_lsn", s.durable_lsn);
    f("journal_disk_bytes", s.journal_disk_bytes);
    f("uptime_s", s.uptime_s);
    f("servers", s.servers);
    f("scrub", s.scrub);
    f("journal_failure", s.journal_failure);
    f("queue_depth", s.queue_depth);
    f("ebpf", s.ebpf);
}

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

// An empty optional is left out; a vector is an array even when empty.
struct PutField {
    nlohmann::json& j;
    template <class T>
    void operator()(const char* key, const T& v) const {
        if constexpr (is_optional<T>::value) {
            if (v) j[key] = *v;
        } else {
            j[key] = v;
        }
    }
};

struct GetField {
    const nlohmann::json& j;
    template <class T>
    void operator()(const char* key, T& v) const {
        auto it = j.find(key);
        if (it == j.end() || it->is_null()) return;
        if constexpr (is_optional<T>::value) {
            v = it->template get<typename T::value_type>();
        } else {
            it->get_to(v);
        }
    }
};

}  // namespace

void to_json(nlohmann::json& j, const AgentStatus::Rejected& r) {
    j = nlohmann::json::object();
    fields_of_rejected(r, PutField{j});
}

void from_json(const nlohmann::json& j, AgentStatus::Rejected& r) { fields_of_rejected(r, GetField{j}); }

void to_json(nlohmann::json& j, const AgentStatus::Server& s) {
    j = nlohmann::json::object();
    fields_of_server(s, PutField{j});
}

void from_json(const nlohmann::json& j, AgentStatus::Server& s) { fields_of_server(s, GetField{j}); }

void to_json(nlohmann::json& j, const AgentStatus::Scrub& s) {
    j = nlohmann::json::object();
    fields_of_scrub(s, PutField{j});
}

void from_json(const nlohmann::json& j, AgentStatus::Scrub& s) { fields_of_scrub(s, GetField{j}); }

void to_json(nlohmann::json& j, const AgentStatus& s) {
    j = nlohmann::json::object();
    fields_of_agent(s, PutField{j});
}

void from_json(const nlohmann::json& j, AgentStatus& s) { fields_of_agent(s, GetField{j}); }

}  // namespace iz::agent
