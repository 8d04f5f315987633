// izreplicate: the replication server, `izreplicate keygen KEYFILE`, and
// `izreplicate identity new|show DIR`.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <vector>

#include "common/daemonize.hpp"
#include "common/service_notify.hpp"
#include "common/version.hpp"
#include "metrics/http_server.hpp"
#include "replicator/wire/auth.hpp"
#include "replicator/wire/endpoint.hpp"
#include "replicator/wire/identity.hpp"
#include "replicator/wire/tls.hpp"
#include "server.hpp"

namespace {

using namespace iz::replicator;

void setup_logging(bool foreground, const std::string& log_file, const std::string& level) {
    std::shared_ptr<spdlog::logger> logger;
    if (!log_file.empty()) logger = spdlog::basic_logger_mt("izreplicate", log_file);
    else if (foreground) logger = spdlog::stderr_color_mt("izreplicate");
    else logger = spdlog::syslog_logger_mt("izreplicate", "izreplicate", LOG_PID, LOG_DAEMON);
    logger->set_level(spdlog::level::from_str(level));
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(logger);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"izreplicate: applies the journals that intermezzo agents ship, beneath ROOT"};
    app.require_subcommand(0, 1);
    app.set_version_flag("--version", iz::version_line("izreplicate"));

    std::string keygen_file;
    auto* keygen = app.add_subcommand("keygen", "write a new shared key (32 random bytes, hex, mode 0600)");
    keygen->add_option("KEYFILE", keygen_file, "where to write the key")->required();

    std::string key_name_file;
    auto* key_name = app.add_subcommand("key-name", "print the name of a shared key, as the agents file's "
                                                    "'agent NAME key:...' lines name it (never the key)");
    key_name->add_option("KEYFILE", key_name_file, "the key file")->required();

    std::string identity_new_dir, identity_show_dir;
    auto* identity = app.add_subcommand("identity", "this server's own key pair and certificate");
    identity->require_subcommand(1);
    auto* identity_new = identity->add_subcommand("new", "make a key and a self-signed certificate in DIR (mode 0600) and "
                                                          "print the node ID agents pin (--server HOST:PORT@ID)");
    identity_new->add_option("DIR", identity_new_dir, "directory for node.key and node.crt")->required();
    auto* identity_show = identity->add_subcommand("show", "print the node ID of the identity in DIR");
    identity_show->add_option("DIR", identity_show_dir, "directory holding node.key and node.crt")->required();

    std::vector<std::string> key_files;
    std::string identity_dir, allowed_agents_file;
    std::string root, listen, state_dir, mode = "per-fileset", log_file, log_level = "info", host_name;
    std::string metrics_at;
    bool foreground = false;
    int threads = 2;
    app.add_option("--root", root, "directory the replicas live in");
    app.add_option("--listen", listen, "ADDR:PORT to accept agents on");
    app.add_option("--key", key_files,
                   "shared key file (see keygen); repeat to accept several keys at once while agents move to a new one")
        ->take_all();
    app.add_option("--identity", identity_dir, "this server's identity (see identity new): agents pin its node ID");
    std::string agents_file, access_file;
    app.add_option("--agents", agents_file,
                   "the agents file: which keys and certificates may connect, under which name ('agent NAME "
                   "IDENTITY...'), and what each may do with which fileset ('access NAME|* FILESET|* "
                   "read-write|send-only|receive-only|none'); read again on SIGHUP (default: every agent on a key "
                   "may read and write every fileset)");
    app.add_option("--allowed-agents", allowed_agents_file, "deprecated: use --agents ('NODE-ID [AGENT-ID]' lines)");
    app.add_option("--access", access_file, "deprecated: use --agents ('WHO FILESET ACCESS' lines)");
    app.add_flag("--foreground", foreground, "stay in the foreground and log to stderr (for systemd)");
    app.add_option("--fileset-dir-mode", mode, "per-fileset: ROOT/<fileset>/; root: every fileset in ROOT itself")
        ->check(CLI::IsMember({"per-fileset", "root"}));
    app.add_option("--state-dir", state_dir, "applied LSNs and file memory (default ROOT/.intermezzo)");
    app.add_option("--log-file", log_file, "log here instead of stderr/syslog");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
    app.add_option("--threads", threads, "threads applying and serving connections")->check(CLI::Range(1, 64));
    app.add_option("--host-name", host_name, "name used in conflict copies (default: the host name)");
    app.add_option("--metrics", metrics_at, "ADDR:PORT to serve Prometheus metrics on, at /metrics (e.g. 127.0.0.1:9465)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    if (*keygen) {
        if (auto ok = write_key_file(keygen_file); !ok) {
            std::fprintf(stderr, "izreplicate: %s\n", ok.error().message.c_str());
            return 1;
        }
        auto key = load_key_file(keygen_file);
        std::printf("wrote a new key to %s\n", keygen_file.c_str());
        if (key) std::printf("in the agents file: key:%s\n", psk_identity(*key).c_str());
        return 0;
    }
    if (*key_name) {
        auto key = load_key_file(key_name_file);
        if (!key) {
            std::fprintf(stderr, "izreplicate: %s\n", key.error().message.c_str());
            return 1;
        }
        std::printf("key:%s\n", psk_identity(*key).c_str());
        return 0;
    }

    if (*identity_new) {
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        auto id = new_identity(identity_new_dir, host[0] ? host : "izreplicate");
        if (!id) {
            std::fprintf(stderr, "izreplicate: %s\n", id.error().message.c_str());
            return 1;
        }
        std::printf("wrote a new identity to %s\nnode ID: %s\n", identity_new_dir.c_str(),
                    format_node_id(id->fingerprint).c_str());
        return 0;
    }
    if (*identity_show) {
        auto id = load_identity(identity_show_dir);
        if (!id) {
            std::fprintf(stderr, "izreplicate: %s\n", id.error().message.c_str());
            return 1;
        }
        std::printf("%s\n", format_node_id(id->fingerprint).c_str());
        return 0;
    }

    auto usage = [&](const std::string& what) {
        std::fprintf(stderr, "izreplicate: %s\nRun with --help for usage.\n", what.c_str());
        return 2;
    };
    if (root.empty()) return usage("--root is required");
    if (listen.empty()) return usage("--listen is required");
    if (key_files.empty() && identity_dir.empty())
        return usage("--key is required (or --identity and --agents, for agents with certificates)");
    if (!agents_file.empty() && (!allowed_agents_file.empty() || !access_file.empty()))
        return usage("--agents replaces --allowed-agents and --access: give it alone");
    if (!identity_dir.empty() && agents_file.empty() && allowed_agents_file.empty())
        return usage("--identity needs --agents: the server shows its certificate to agents it accepts by theirs");
    if (identity_dir.empty() && !allowed_agents_file.empty())
        return usage("--allowed-agents needs --identity: the server shows its certificate to agents it accepts by "
                     "theirs");
    // Said once logging is set up, where the daemon's other lines go.
    std::vector<std::string> deprecated;
    if (!allowed_agents_file.empty())
        deprecated.push_back("--allowed-agents is deprecated and goes in the next release: list the certificates in "
                             "the file --agents names ('agent NAME NODE-ID'; see izreplicate(8))");
    if (!access_file.empty())
        deprecated.push_back("--access is deprecated and goes in the next release: write the rules in the file "
                             "--agents names ('access NAME FILESET ACCESS'; see izreplicate(8))");

    ServerOptions o;
    auto ep = parse_endpoint(listen);
    if (!ep) return usage(ep.error().message);
    o.listen_host = ep->host;
    o.port = ep->port;
    for (size_t i = 0; i < key_files.size(); ++i) {
        auto key = load_key_file(key_files[i]);
        if (!key) {
            std::fprintf(stderr, "izreplicate: %s\n", key.error().message.c_str());
            return 1;
        }
        if (i == 0) o.key = *key;
        else o.other_keys.push_back(*key);
    }
    if (!identity_dir.empty()) {
        auto id = load_identity(identity_dir);
        if (!id) {
            std::fprintf(stderr, "izreplicate: %s\n", id.error().message.c_str());
            return 1;
        }
        o.identity = std::move(*id);
    }
    if (!allowed_agents_file.empty()) o.allowed_agents_file = std::filesystem::absolute(allowed_agents_file);
    if (!agents_file.empty()) o.agents_file = std::filesystem::absolute(agents_file);
    // The daemon runs from "/": relative paths are resolved now.
    o.root = std::filesystem::absolute(root);
    auto root_abs = o.root.string();
    if (!state_dir.empty()) o.state_dir = std::filesystem::absolute(state_dir);
    if (!access_file.empty()) o.access_file = std::filesystem::absolute(access_file);
    if (!log_file.empty()) log_file = std::filesystem::absolute(log_file).string();
    o.dir_mode = mode == "root" ? FilesetDirMode::root : FilesetDirMode::per_fileset;
    o.threads = threads;
    o.host_name = host_name;
    std::optional<ServerEndpoint> metrics_ep;
    if (!metrics_at.empty()) {
        auto m = parse_endpoint(metrics_at);
        if (!m) return usage("--metrics: " + m.error().message);
        metrics_ep = *m;
    }

    iz::Readiness readiness;
    if (!foreground)
        readiness = iz::daemonize({.program = "izreplicate", .log = {}, .exited_early = "the server exited before it was ready"});
    try {
        setup_logging(foreground, log_file, log_level);
    } catch (const std::exception& e) {
        readiness.failed(fmt::format("cannot set up logging: {}", e.what()));
        std::fprintf(stderr, "izreplicate: cannot set up logging: %s\n", e.what());
        return 1;
    }

    for (auto& d : deprecated) spdlog::warn("{}", d);
    auto server = Server::start(std::move(o));
    if (!server) {
        spdlog::error("{}", server.error().message);
        readiness.failed(server.error().message);
        iz::notify_status("failed: " + server.error().message);
        return 1;
    }
    // Stopped before the server it reads goes (declared after it).
    std::unique_ptr<iz::metrics::HttpServer> metrics;
    if (metrics_ep) {
        auto m = iz::metrics::HttpServer::start(
            {.host = metrics_ep->host, .port = metrics_ep->port, .render = [s = server->get()] { return s->metrics(); }});
        if (!m) {
            spdlog::error("{}", m.error().message);
            readiness.failed(m.error().message);
            iz::notify_status("failed: " + m.error().message);
            return 1;
        }
        metrics = std::move(*m);
    }
    // Server::start returned: it listens, and connections are accepted.
    (*server)->run(true, [&] {
        readiness.ready();
        iz::notify_ready(fmt::format("listening on {}, replicas beneath {}", listen, root_abs));
    });
    if (metrics) metrics->stop();
    iz::notify_stopping("stopped");
    spdlog::info("stopped");
    return 0;
}
