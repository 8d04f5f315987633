// izwatch: start, stop, inspect and sync the watch of a directory.
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/cfg/env.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "agent/agent_status.hpp"
#include "agent/control.hpp"
#include "agent/daemon.hpp"
#include "agent/watch_paths.hpp"
#include "common/daemonize.hpp"
#include "common/service_notify.hpp"
#include "common/version.hpp"
#include "replicator/wire/endpoint.hpp"
#include "replicator/wire/identity.hpp"

namespace fs = std::filesystem;
using namespace iz::agent;
using nlohmann::json;

namespace {

// Where `izwatch identity new` puts the agent's identity, and where start
// looks for it, unless told otherwise.
constexpr const char* kDefaultIdentityDir = "/var/lib/intermezzo/identity";

// "90", "90s", "15m", "12h", "7d".
std::optional<std::chrono::seconds> parse_duration(const std::string& text) {
    if (text.empty()) return std::nullopt;
    size_t used = 0;
    long long n = 0;
    try {
        n = std::stoll(text, &used);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    if (n < 0) return std::nullopt;
    auto unit = text.substr(used);
    long long scale = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : 0;
    if (scale == 0) return std::nullopt;
    return std::chrono::seconds(n * scale);
}

int die(const std::string& message) {
    fmt::print(stderr, "izwatch: {}\n", message);
    return 1;
}

iz::Result<std::string> watched_dir(const std::string& given) {
    std::error_code ec;
    auto st = fs::symlink_status(given, ec);
    if (ec || !fs::exists(st)) return iz::fail(iz::make_error(fmt::format("'{}' does not exist", given)));
    auto canonical = fs::canonical(given, ec);
    if (ec) return iz::fail(iz::make_error(fmt::format("cannot resolve '{}': {}", given, ec.message())));
    if (!fs::is_directory(canonical)) return iz::fail(iz::make_error(fmt::format("'{}' is not a directory", given)));
    return canonical.string();
}

// The directory a running agent watches, for stop, status and sync: as
// watched_dir(), and also when the directory itself has been removed (its
// agent is still running and must be reachable to be stopped).
iz::Result<std::string> agent_dir(const std::string& given) {
    auto dir = watched_dir(given);
    if (dir) return dir;
    std::error_code ec;
    auto gone = fs::weakly_canonical(fs::absolute(given), ec).string();
    while (gone.size() > 1 && gone.back() == '/') gone.pop_back();
    if (!ec && fs::exists(control_socket_path(gone), ec)) return gone;
    return dir;
}

iz::Result<json> ask(const std::string& dir, const json& request, std::chrono::milliseconds timeout) {
    auto reply = control_request(control_socket_path(dir), request, timeout);
    if (!reply) {
        if (reply.error().sys_errno == ENOENT || reply.error().sys_errno == ECONNREFUSED)
            return iz::fail(iz::make_error(fmt::format("'{}' is not being watched", dir)));
        return iz::fail(reply.error());
    }
    if (!reply->value("ok", false)) return iz::fail(iz::make_error(reply->value("error", std::string("request failed"))));
    return *reply;
}

// What the agent watching a directory answered, and the directory.
struct Answer {
    std::string dir;
    json reply;
};

// Sends `request` to the agent watching `given` (as agent_dir finds it) and
// waits at most `wait` for its reply.
iz::Result<Answer> ask_agent(const std::string& given, const json& request, std::chrono::milliseconds wait) {
    auto dir = agent_dir(given);
    if (!dir) return iz::fail(dir.error());
    auto reply = ask(*dir, request, wait);
    if (!reply) return iz::fail(reply.error());
    return Answer{std::move(*dir), std::move(*reply)};
}

// How long to wait for the reply to a request the agent spends at most
// `timeout_s` seconds on, `steps` times over, and `margin` more.
std::chrono::milliseconds reply_wait(double timeout_s, std::chrono::milliseconds margin, int steps = 1) {
    return std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000) * steps) + margin;
}

// Runs the daemon in this process; `readiness` hears once capture is armed,
// or why it could not be.
int serve(const WatchOptions& opts, iz::Readiness& readiness) {
    auto daemon = Daemon::start(opts);
    if (!daemon) {
        readiness.failed(daemon.error().message);
        iz::notify_status("failed: " + daemon.error().message);
        spdlog::error("{}", daemon.error().message);
        return 1;
    }
    spdlog::info("watching {}", opts.dir);
    readiness.ready();
    // Daemon::start returned: capture is armed and the baseline (or what
    // changed while no agent ran) is in the journal, durably.
    iz::notify_ready((*daemon)->status_line());
    return (*daemon)->run();
}

int start(WatchOptions opts, bool foreground) {
    auto dir = watched_dir(opts.dir);
    if (!dir) return die(dir.error().message);
    opts.dir = *dir;
    if (geteuid() != 0) return die("izwatch needs root (CAP_SYS_ADMIN) to watch a whole filesystem with fanotify");
    // Said now rather than by a daemon that armed capture first.
    if (!opts.metrics.empty())
        if (auto ep = iz::replicator::parse_endpoint(opts.metrics); !ep)
            return die(fmt::format("--metrics '{}': {}", opts.metrics, ep.error().message));
    if (auto status = control_request(control_socket_path(opts.dir), {{"cmd", "status"}}, std::chrono::seconds(2)))
        return die(fmt::format("'{}' is already watched (izwatch pid {})", opts.dir, (*status).value("pid", 0)));
    if (opts.state_dir.empty()) opts.state_dir = default_state_dir(opts.dir);
    auto& ship = opts.shipping;
    if (ship.fileset.empty()) ship.fileset = default_fileset(opts.dir);
    if (ship.agent_id.empty()) ship.agent_id = default_agent_id();
    if (opts.mode != "send-only" && ship.servers.empty())
        return die(fmt::format("--mode {} needs a server to receive from (--server HOST:PORT)", opts.mode));
    bool pinned = false, unpinned = false;
    for (auto& s : ship.servers) (s.fingerprint.empty() ? unpinned : pinned) = true;
    if (unpinned && ship.key_file.empty())
        return die("--server HOST:PORT needs --key KEYFILE (make one with 'izreplicate keygen KEYFILE' and give it to the "
                   "servers too), or pin the server's node ID: --server HOST:PORT@NODE-ID");
    if (pinned && ship.identity_dir.empty()) ship.identity_dir = kDefaultIdentityDir;
    // The daemon runs from "/": relative paths are resolved now.
    if (!ship.key_file.empty()) ship.key_file = fs::absolute(ship.key_file);
    if (!ship.identity_dir.empty()) ship.identity_dir = fs::absolute(ship.identity_dir);
    if (opts.journal_dir.empty()) opts.journal_dir = opts.state_dir / "journal";
    std::error_code ec;
    fs::create_directories(opts.state_dir, ec);
    if (ec) return die(fmt::format("create state directory '{}': {}", opts.state_dir.string(), ec.message()));

    iz::Readiness foreground_readiness;
    if (foreground) return serve(opts, foreground_readiness);

    auto log = opts.state_dir / "izwatch.log";
    auto readiness = iz::daemonize(
        {.program = "izwatch", .log = log, .exited_early = fmt::format("the agent exited before arming capture; see {}", log.string())});
    // The daemon ends as it always has, without running static destructors.
    _exit(serve(opts, readiness));
}

std::string human_bytes(uint64_t n) {
    if (n < 1024) return fmt::format("{} B", n);
    if (n < (1u << 20)) return fmt::format("{:.1f} KiB", n / 1024.0);
    if (n < (1ull << 30)) return fmt::format("{:.1f} MiB", n / 1048576.0);
    return fmt::format("{:.2f} GiB", n / 1073741824.0);
}

std::string human(const AgentStatus& s) {
    std::string out = fmt::format("{}\n", s.dir);
    out += fmt::format("  agent pid:   {}\n", s.pid);
    // The detail lists every tracepoint; --json has it all, a person needs the gist.
    auto detail = s.capture_detail;
    if (auto cut = detail.find(" ("); cut != std::string::npos) detail.resize(cut);
    out += fmt::format("  capture:     {} ({})\n", s.capture, detail);
    out += fmt::format("  journal:     {} (head LSN {}, durable {}, {:.1f} MiB on disk)\n", s.journal,
                       s.head_lsn, s.durable_lsn, s.journal_disk_bytes / 1048576.0);
    out += fmt::format("  records:     {} journaled\n", s.records);
    out += fmt::format("  events:      {} ({:.0f}/s now, {} outside the tree)\n", s.events,
                       s.events_per_s, s.events_outside);
    out += fmt::format("  overflows:   {}, rescans: {} (queue of {} events)\n", s.overflows,
                       s.rescans, s.queue_events);
    if (s.root_removed)
        out += "  REMOVED:     the watched directory itself was deleted; stop this agent with 'izwatch stop DIR'\n";
    if (s.journal_failure) out += fmt::format("  JOURNAL FAILED: {}\n", *s.journal_failure);
    if (s.local_changes && *s.local_changes > 0) {
        std::string paths;
        for (auto& p : s.local_change_paths.value_or(std::vector<std::string>{})) paths += (paths.empty() ? "" : ", ") + p;
        out += fmt::format("  LOCAL CHANGES (receive-only, kept and not sent): {} since start; the latest: {}\n",
                           *s.local_changes, paths);
    }
    if (auto& scrub = s.scrub; scrub.interval_s > 0) {
        if (scrub.runs == 0)
            out += fmt::format("  scrub:       every {} s; not run yet\n", scrub.interval_s);
        else
            out += fmt::format("  scrub:       every {} s; last run {}: {} difference(s), {} repaired{}\n",
                               scrub.interval_s, scrub.last_run, scrub.differences, scrub.repaired,
                               scrub.errors.empty() ? "" : "; " + json(scrub.errors).dump());
        if (scrub.found_total > 0) {
            std::string paths;
            for (auto& p : scrub.last_found_paths) paths += (paths.empty() ? "" : ", ") + p;
            out += fmt::format("  SCRUB FOUND: {} difference(s) since start, {} repaired; the last at {}: {}\n",
                               scrub.found_total, scrub.repaired_total, scrub.last_found, paths);
        }
    }
    for (auto& srv : s.servers)
        out += fmt::format("  server {}: {} (acked LSN {}, {} records and {} behind; sent {} of file data as {}){}\n",
                           srv.endpoint,
                           !srv.connected     ? "not connected"
                           : srv.tls.empty() ? "connected"
                                             : fmt::format("connected over {} to {}, protocol version {}", srv.tls,
                                                           srv.peer, srv.protocol),
                           srv.acked_lsn, srv.records_behind,
                           human_bytes(srv.bytes_behind),
                           human_bytes(srv.data_bytes_sent),
                           human_bytes(srv.wire_bytes_sent),
                           srv.last_error.empty() ? "" : "; last error: " + srv.last_error);
    for (auto& srv : s.servers) {
        if (!srv.received_lsn) continue;
        out += fmt::format("  receiving from {}: applied through server LSN {}, {}{}\n", srv.endpoint,
                           *srv.received_lsn,
                           srv.records_to_receive ? fmt::format("{} records to receive (server head {})",
                                                                *srv.records_to_receive, *srv.server_head)
                                                  : std::string("records to receive unknown (server not reached)"),
                           srv.receive_error && !srv.receive_error->empty() ? "; last error: " + *srv.receive_error
                                                                             : "");
        if (srv.not_applied)
            for (auto& r : *srv.not_applied)
                out += fmt::format("  NOT APPLIED here from {}: '{}' (server LSN {}): {}\n", srv.endpoint, r.path,
                                   r.lsn, r.message);
    }
    for (auto& srv : s.servers)
        for (auto& r : srv.rejected)
            out += fmt::format("  CANNOT APPLY on {}: '{}' (LSN {}): {}\n", srv.endpoint,
                               r.path, r.lsn, r.message);
    return out;
}

int status(const std::string& given, bool as_json) {
    std::vector<std::string> dirs;
    if (!given.empty()) {
        auto dir = agent_dir(given);
        if (!dir) return die(dir.error().message);
        dirs.push_back(*dir);
    }
    std::vector<json> all;
    if (dirs.empty()) {
        std::error_code ec;
        for (auto& entry : fs::directory_iterator(run_dir(), ec)) {
            if (entry.path().extension() != ".sock") continue;
            auto reply = control_request(entry.path(), {{"cmd", "status"}}, std::chrono::seconds(5));
            if (reply && reply->value("ok", false)) all.push_back(*reply);
        }
    } else {
        auto reply = ask(dirs[0], {{"cmd", "status"}}, std::chrono::seconds(5));
        if (!reply) return die(reply.error().message);
        all.push_back(*reply);
    }
    if (as_json) {
        fmt::print("{}\n", given.empty() ? json(all).dump() : all[0].dump());
        return 0;
    }
    if (all.empty()) fmt::print("no directory is being watched\n");
    for (auto& s : all) fmt::print("{}", human(s.get<AgentStatus>()));
    return 0;
}

int stop(const std::string& given) {
    auto answer = ask_agent(given, {{"cmd", "stop"}}, std::chrono::seconds(60));
    if (!answer) return die(answer.error().message);
    // The daemon replies once everything is durable, then exits.
    auto sock = control_socket_path(answer->dir);
    for (int i = 0; i < 500 && fs::exists(sock); ++i) ::usleep(10000);
    return 0;
}

std::string listed(const json& diffs, const std::string& indent) {
    std::string out;
    for (auto& d : diffs) {
        out += fmt::format("{}{}:\n", indent, d.value("path", ""));
        for (auto& w : d.value("what", json::array())) out += fmt::format("{}    {}\n", indent, w.get<std::string>());
    }
    return out;
}

// One server's verdict for a person. True when its replica is equal.
bool print_verdict(const json& v, bool repair) {
    auto server = v.value("server", "");
    auto stats = fmt::format("{} source entries, {} of content read, {} on the wire, {:.2f} s", v.value("entries", 0),
                             human_bytes(v.value("bytes_hashed", uint64_t{0})), human_bytes(v.value("wire_bytes", uint64_t{0})),
                             v.value("seconds", 0.0));
    if (v.contains("error")) {
        fmt::print("server {}: NOT VERIFIED: {}\n", server, v["error"].get<std::string>());
        if (!v.value("differences", json::array()).empty())
            fmt::print("  found before that:\n{}", listed(v["differences"], "  "));
        return false;
    }
    auto diffs = v.value("differences", json::array());
    for (auto& p : v.value("changing", json::array()))
        fmt::print("server {}: {} changed during the verification; not compared\n", server, p.get<std::string>());
    if (diffs.empty()) {
        fmt::print("server {}: the replica is equal to the source ({})\n", server, stats);
        return true;
    }
    fmt::print("server {}: the replica DIFFERS from the source at {} path(s):\n{}", server, diffs.size(), listed(diffs, "  "));
    if (repair) {
        if (v.value("repaired", false))
            fmt::print("  repaired with {} journal records (izlog --op repair shows them); the replica is now equal\n",
                       v.value("repair_records", 0));
        else
            fmt::print("  after {} repair records, still different:\n{}", v.value("repair_records", 0),
                       listed(v.value("remaining", json::array()), "  "));
    }
    fmt::print("  ({})\n", stats);
    return false;
}

// Exit status: 0 when every replica equals the source, 1 when any differs
// (also when it was repaired), 2 when one could not be verified.
int verify_cmd(const std::string& given, const std::string& server, bool repair, double timeout_s, bool as_json) {
    auto answer = ask_agent(given, {{"cmd", "verify"}, {"server", server}, {"repair", repair}, {"timeout_s", timeout_s}},
                            reply_wait(timeout_s, std::chrono::seconds(5), 4));
    if (!answer) {
        fmt::print(stderr, "izwatch: {}\n", answer.error().message);
        return 2;
    }
    auto* reply = &answer->reply;
    if (as_json) fmt::print("{}\n", reply->dump());
    int code = 0;
    for (auto& v : reply->value("servers", json::array())) {
        bool equal = as_json ? v.value("equal", false) : print_verdict(v, repair);
        if (v.contains("error")) code = 2;
        else if (!equal && code == 0) code = 1;
    }
    return code;
}

// Receive-only: makes DIR equal to the fileset on its server again, and
// says what it removed. Exit status: 0 when it is equal, 1 otherwise.
int revert_cmd(const std::string& given, double timeout_s, bool as_json) {
    auto answer = ask_agent(given, {{"cmd", "revert"}, {"timeout_s", timeout_s}},
                            reply_wait(timeout_s, std::chrono::seconds(10)));
    if (!answer) return die(answer.error().message);
    auto* reply = &answer->reply;
    if (as_json) {
        fmt::print("{}\n", reply->dump());
        return reply->value("ok", false) ? 0 : 1;
    }
    for (auto& p : reply->value("removed", json::array()))
        fmt::print("removed {} (not in the fileset)\n", p.get<std::string>());
    for (auto& p : reply->value("replaced", json::array()))
        fmt::print("replaced {} with the fileset's version\n", p.get<std::string>());
    if (!reply->value("ok", false)) {
        if (reply->contains("remaining"))
            fmt::print(stderr, "still different:\n{}", listed((*reply)["remaining"], "  "));
        return die(reply->value("error", std::string("revert failed")));
    }
    fmt::print("{} equals the fileset on {} again (replayed through server LSN {}): {} path(s) removed, {} replaced, "
               "{} directory attribute set(s); local changes and {} forward(s) passed over forgotten\n",
               answer->dir, reply->value("server", ""), reply->value("replayed_through", uint64_t{0}),
               reply->value("removed", json::array()).size(), reply->value("replaced", json::array()).size(),
               reply->value("directory_attributes_set", 0), reply->value("failures_forgotten", 0));
    return 0;
}

int sync_cmd(const std::string& given, double timeout_s, bool verify) {
    auto answer = ask_agent(given, {{"cmd", "sync"}, {"timeout_s", timeout_s}}, reply_wait(timeout_s, std::chrono::seconds(1)));
    if (!answer) return die(answer.error().message);
    if (verify) return verify_cmd(answer->dir, "", false, timeout_s, false);
    return 0;
}

// An option of a number of bytes, given with its unit ("64MiB", "1KiB").
CLI::Option* size_option(CLI::App* cmd, const std::string& name, uint64_t& bytes, const std::string& help,
                         const std::string& shown_default) {
    return cmd->add_option(name, bytes, help)->transform(CLI::AsSizeValue(false))->default_str(shown_default);
}

// A subcommand on one watched directory that asks its servers something:
// it waits for them at most --timeout seconds and answers in JSON with --json.
CLI::App* server_dir_command(CLI::App& app, const std::string& name, const std::string& description,
                             std::string& dir, double& timeout_s, const std::string& timeout_help, bool& as_json) {
    auto* cmd = app.add_subcommand(name, description);
    cmd->add_option("DIR", dir, "watched directory")->required();
    cmd->add_option("--timeout", timeout_s, timeout_help);
    cmd->add_flag("--json", as_json, "machine-readable output");
    return cmd;
}

}  // namespace

int main(int argc, char** argv) {
    spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL=debug traces every event the agent reads
    CLI::App app{"izwatch: capture every change of a directory into an intermezzo journal"};
    app.require_subcommand(1);
    app.set_version_flag("--version", iz::version_line("izwatch"));
    WatchOptions opts;
    bool foreground = false;
    std::string journal, state;
    auto* start_cmd = app.add_subcommand("start", "start watching DIR (returns once capture is armed)");
    start_cmd->add_option("DIR", opts.dir, "directory to watch")->required();
    start_cmd->add_option("--journal", journal, "journal directory (default: <state dir>/journal)");
    start_cmd->add_option("--state-dir", state, "agent state directory (default: /var/lib/intermezzo/<escaped DIR>)");
    start_cmd->add_flag("--foreground", foreground, "do not detach (for systemd)");
    start_cmd->add_flag("--no-bpf", opts.no_bpf, "capture with fanotify alone");
    start_cmd
        ->add_option("--queue-events", opts.queue_events,
                     "fanotify queue length in events (0: the system's fs.fanotify.max_queued_events)")
        ->capture_default_str();
    size_option(start_cmd, "--segment-size", opts.segment_bytes,
                "journal segment size (e.g. 64MiB, 1MiB); its space is reserved when a segment begins", "64MiB")
        ->check(CLI::Range(uint64_t{64} << 10, uint64_t{1} << 34));
    start_cmd->add_option("--exclude", opts.excludes, "glob of paths not to journal (repeatable)");
    std::vector<std::string> servers;
    std::string compress = "auto";
    start_cmd->add_option("--server", servers, "HOST:PORT of an izreplicate server (repeatable)");
    start_cmd->add_option("--key", opts.shipping.key_file, "shared key file for the servers");
    start_cmd->add_option("--identity", opts.shipping.identity_dir,
                          fmt::format("this agent's identity, for servers pinned as HOST:PORT@NODE-ID (default {})",
                                      kDefaultIdentityDir));
    start_cmd
        ->add_option("--compress", compress,
                     "zstd for shipped data: auto (only while the link to a server cannot keep up), always, never")
        ->check(CLI::IsMember({"auto", "always", "never"}))
        ->capture_default_str();
    start_cmd->add_option("--fileset", opts.shipping.fileset, "name of this directory on the servers (default: its own name)");
    start_cmd->add_option("--agent-id", opts.shipping.agent_id, "name of this agent on the servers (default: the host name)");
    start_cmd
        ->add_option("--mode", opts.mode,
                     "send-only (a mirror: nothing comes back), send-receive (a shared fileset: the other agents' "
                     "changes are applied here too) or receive-only")
        ->check(CLI::IsMember({"send-only", "send-receive", "receive-only"}))
        ->capture_default_str();
    std::string history = "7d";
    start_cmd->add_option("--history", history, "keep journal segments at least this long (e.g. 12h, 7d, 0)")
        ->capture_default_str();
    std::string scrub_interval = "24h";
    start_cmd
        ->add_option("--scrub-interval", scrub_interval,
                     "verify and repair every server's replica this often, at idle I/O priority (e.g. 24h; 0: never)")
        ->capture_default_str();
    start_cmd->add_option("--metrics", opts.metrics,
                          "ADDR:PORT to serve Prometheus metrics on, at /metrics (e.g. 127.0.0.1:9464)");
    size_option(start_cmd, "--scrub-rate", opts.scrub_bytes_per_s,
                "the scrub reads at most this much of the source's content per second (e.g. 32MiB)", "32MiB");

    std::string dir;
    bool as_json = false;
    double timeout_s = 30;
    auto* stop_cmd = app.add_subcommand("stop", "stop watching DIR once everything captured is durable");
    stop_cmd->add_option("DIR", dir, "watched directory")->required();
    auto* status_cmd = app.add_subcommand("status", "show watched directories");
    status_cmd->add_option("DIR", dir, "watched directory (default: all)");
    status_cmd->add_flag("--json", as_json, "machine-readable output");
    auto* sync_sub = app.add_subcommand("sync", "return once everything journaled before the call is durable on every server (in the journal when there are none)");
    sync_sub->add_option("DIR", dir, "watched directory")->required();
    sync_sub->add_option("--timeout", timeout_s, "seconds to wait");
    bool sync_verify = false;
    sync_sub->add_flag("--verify", sync_verify,
                       "then verify every replica: exit 0 only when each equals the source (as 'izwatch verify')");
    std::string verify_server;
    bool repair = false;
    double verify_timeout_s = 120;
    auto* verify_sub = server_dir_command(
        app, "verify",
        "compare DIR with each server's replica by a hash tree of metadata and content (after a sync); exit 0 "
        "when equal, 1 when anything differs, 2 when it could not be verified",
        dir, verify_timeout_s, "seconds to wait for the server at each step", as_json);
    verify_sub->add_option("--server", verify_server, "only this server (HOST:PORT, as given to izwatch start)");
    verify_sub->add_flag("--repair", repair, "journal what makes each replica equal (as repair records), then check again");
    double revert_timeout_s = 300;
    auto* revert_sub = server_dir_command(
        app, "revert",
        "receive-only: make DIR equal to the fileset on its server again, discarding every local change "
        "(local additions and conflict copies are removed, and each is printed); exit 0 once equal",
        dir, revert_timeout_s, "seconds to wait for the server", as_json);
    std::string identity_dir = kDefaultIdentityDir;
    auto* identity_cmd = app.add_subcommand("identity", "this agent's own key pair and certificate");
    identity_cmd->require_subcommand(1);
    auto* identity_new = identity_cmd->add_subcommand(
        "new", "make a key and a self-signed certificate in DIR (mode 0600) and print the node ID to allow on servers");
    identity_new->add_option("DIR", identity_dir, "directory for node.key and node.crt")->capture_default_str();
    auto* identity_show = identity_cmd->add_subcommand("show", "print the node ID of the identity in DIR");
    identity_show->add_option("DIR", identity_dir, "directory holding node.key and node.crt")->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (*identity_new) {
        auto id = iz::replicator::new_identity(identity_dir, default_agent_id());
        if (!id) return die(id.error().message);
        fmt::print("wrote a new identity to {}\nnode ID: {}\n", identity_dir, iz::replicator::format_node_id(id->fingerprint));
        return 0;
    }
    if (*identity_show) {
        auto id = iz::replicator::load_identity(identity_dir);
        if (!id) return die(id.error().message);
        fmt::print("{}\n", iz::replicator::format_node_id(id->fingerprint));
        return 0;
    }
    if (*start_cmd) {
        auto secs = parse_duration(history);
        if (!secs) return die(fmt::format("--history: '{}' is not a duration (use s, m, h or d, e.g. 7d)", history));
        opts.history = *secs;
        auto scrub = parse_duration(scrub_interval);
        if (!scrub) return die(fmt::format("--scrub-interval: '{}' is not a duration (use s, m, h or d, e.g. 24h)", scrub_interval));
        opts.scrub_interval = *scrub;
        if (!journal.empty()) opts.journal_dir = fs::absolute(journal);
        if (!state.empty()) opts.state_dir = fs::absolute(state);
        using iz::replicator::Compression;
        opts.shipping.compression = compress == "always" ? Compression::always
                                    : compress == "never" ? Compression::never
                                                          : Compression::adaptive;
        for (auto& text : servers) {
            auto ep = iz::replicator::parse_endpoint(text);
            if (!ep) return die(fmt::format("--server '{}': {}", text, ep.error().message));
            opts.shipping.servers.push_back(*ep);
        }
        return start(opts, foreground);
    }
    if (*stop_cmd) return stop(dir);
    if (*status_cmd) return status(dir, as_json);
    if (*sync_sub) return sync_cmd(dir, timeout_s, sync_verify);
    if (*verify_sub) return verify_cmd(dir, verify_server, repair, verify_timeout_s, as_json);
    if (*revert_sub) return revert_cmd(dir, revert_timeout_s, as_json);
    return 1;
}
