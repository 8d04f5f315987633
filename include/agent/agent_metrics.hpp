#pragma once
// What `izwatch start --metrics ADDR:PORT` serves at /metrics: the agent's
// status (agent_status.hpp) as Prometheus metrics. Counters are what the
// agent counted since it started (Prometheus takes restarts in its stride);
// per-server metrics carry the server's endpoint as their one label, and no
// metric carries a path.
#include <string>

#include "agent/agent_status.hpp"

namespace iz::agent {

// The page, in the Prometheus text format (metrics/exposition.hpp).
std::string agent_metrics(const AgentStatus& status);

}  // namespace iz::agent
