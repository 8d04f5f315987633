#include "agent/agent_status.hpp"

#include <type_traits>

namespace iz::agent {

namespace {

// Each type's keys, in one list that both directions walk: f(key, field).
// IZ_STATUS_FIELDS(a, b) is f("a", s.a); f("b", s.b);: the key is the
// field's name, spelled once.
#define IZ_STATUS_FIELD(name) f(#name, s.name);
#define IZ_STATUS_FIELDS(...) NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(IZ_STATUS_FIELD, __VA_ARGS__))

// The message is under "error", the key the reply has always had.
template <class R, class F>
void fields_of_rejected(R& r, F&& f) {
    f("lsn", r.lsn);
    f("path", r.path);
    f("error", r.message);
}

template <class S, class F>
void fields_of_server(S& s, F&& f) {
    IZ_STATUS_FIELDS(endpoint, connected, acked_lsn, records_behind, bytes_behind, data_bytes_sent,
                     wire_bytes_sent, conflicts, rejected, last_error, reconnects, rejected_total, server_errors,
                     unacked_age_s, peer, tls, protocol, received_lsn, server_head, records_to_receive, receive_error,
                     not_applied);
}

// The last run's keys follow `runs`, and are walked only when it is
// positive: when reading, runs is read first.
template <class S, class F>
void fields_of_scrub(S& s, F&& f) {
    IZ_STATUS_FIELDS(interval_s, runs);
    if (s.runs == 0) return;
    IZ_STATUS_FIELDS(last_run, differences, repaired, paths, errors, found_total, repaired_total);
    if (s.found_total == 0) return;
    IZ_STATUS_FIELDS(last_found, last_found_paths);
}

template <class S, class F>
void fields_of_agent(S& s, F&& f) {
    IZ_STATUS_FIELDS(dir, pid, journal, state_dir, capture, capture_detail, root_removed, queue_events, records,
                     events, events_outside, events_per_s, overflows, rescans, journal_errors, head_lsn,
                     durable_lsn, journal_disk_bytes, uptime_s, servers, scrub, journal_failure, queue_depth, ebpf,
                     local_changes, local_change_paths);
}

#undef IZ_STATUS_FIELDS
#undef IZ_STATUS_FIELD

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

namespace iz::replicator {

void proto::to_json(nlohmann::json& j, const RejectedMsg& r) {
    j = nlohmann::json::object();
    agent::fields_of_rejected(r, agent::PutField{j});
}

void proto::from_json(const nlohmann::json& j, RejectedMsg& r) { agent::fields_of_rejected(r, agent::GetField{j}); }

void to_json(nlohmann::json& j, const ServerStatus& s) {
    j = nlohmann::json::object();
    agent::fields_of_server(s, agent::PutField{j});
}

void from_json(const nlohmann::json& j, ServerStatus& s) { agent::fields_of_server(s, agent::GetField{j}); }

}  // namespace iz::replicator
