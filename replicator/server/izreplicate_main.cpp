// izreplicate: the replication server, and `izreplicate keygen KEYFILE`.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <vector>

#include "common/daemonize.hpp"
#include "replicator/wire/auth.hpp"
#include "replicator/wire/endpoint.hpp"
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

    std::string keygen_file;
    auto* keygen = app.add_subcommand("keygen", "write a new shared key (32 random bytes, hex, mode 0600)");
    keygen->add_option("KEYFILE", keygen_file, "where to write the key")->required();

    std::vector<std::string> key_files;
    std::string root, listen, state_dir, mode = "per-fileset", log_file, log_level = "info", host_name;
    bool foreground = false;
    int threads = 2;
    app.add_option("--root", root, "directory the replicas live in");
    app.add_option("--listen", listen, "ADDR:PORT to accept agents on");
    app.add_option("--key", key_files,
                   "shared key file (see keygen); repeat to accept several keys at once while agents move to a new one")
        ->take_all();
    app.add_flag("--foreground", foreground, "stay in the foreground and log to stderr (for systemd)");
    app.add_option("--fileset-dir-mode", mode, "per-fileset: ROOT/<fileset>/; root: every fileset in ROOT itself")
        ->check(CLI::IsMember({"per-fileset", "root"}));
    app.add_option("--state-dir", state_dir, "applied LSNs and file memory (default ROOT/.intermezzo)");
    app.add_option("--log-file", log_file, "log here instead of stderr/syslog");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
    app.add_option("--threads", threads, "threads applying and serving connections")->check(CLI::Range(1, 64));
    app.add_option("--host-name", host_name, "name used in conflict copies (default: the host name)");

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
        std::printf("wrote a new key to %s\n", keygen_file.c_str());
        return 0;
    }

    auto usage = [&](const std::string& what) {
        std::fprintf(stderr, "izreplicate: %s\nRun with --help for usage.\n", what.c_str());
        return 2;
    };
    if (root.empty()) return usage("--root is required");
    if (listen.empty()) return usage("--listen is required");
    if (key_files.empty()) return usage("--key is required");

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
    // The daemon runs from "/": relative paths are resolved now.
    o.root = std::filesystem::absolute(root);
    if (!state_dir.empty()) o.state_dir = std::filesystem::absolute(state_dir);
    if (!log_file.empty()) log_file = std::filesystem::absolute(log_file).string();
    o.dir_mode = mode == "root" ? FilesetDirMode::root : FilesetDirMode::per_fileset;
    o.threads = threads;
    o.host_name = host_name;

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

    auto server = Server::start(std::move(o));
    if (!server) {
        spdlog::error("{}", server.error().message);
        readiness.failed(server.error().message);
        return 1;
    }
    readiness.ready();
    (*server)->run(true);
    spdlog::info("stopped");
    return 0;
}
