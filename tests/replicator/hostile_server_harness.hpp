#pragma once
// An in-process izreplicate Server on 127.0.0.1 (any free port), serving on
// its own thread, with its log captured, a fresh root and a canary
// directory beside the root that no client may ever touch.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include "hostile_client.hpp"
#include "server.hpp"
#include "support/tree.hpp"

namespace iz::test {

namespace fs = std::filesystem;

// Polls `cond` every 10 ms until it holds or `timeout` passes.
template <class Cond>
bool wait_until(Cond cond, std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (cond()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return cond();
}

class ServerHarness {
public:
    explicit ServerHarness(const std::function<void(replicator::ServerOptions&)>& tweak = {}) {
        logs_ = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4096);
        previous_logger_ = spdlog::default_logger();
        auto logger = std::make_shared<spdlog::logger>("izreplicate-test", logs_);
        logger->set_level(spdlog::level::info);
        spdlog::set_default_logger(logger);

        fs::create_directories(canary() / "dir");
        write_file(canary() / "file", "canary", 0644);
        canary_before_ = manifest(canary());

        key.bytes = std::string(replicator::kKeyBytes, '\x5c');
        replicator::ServerOptions o;
        o.root = root();
        o.listen_host = "127.0.0.1";
        o.port = 0;
        o.key = key;
        o.host_name = "testserver";
        o.threads = 2;
        if (tweak) tweak(o);
        auto s = replicator::Server::start(o);
        if (!s) throw std::runtime_error("server start: " + s.error().message);
        server_ = std::move(*s);
        thread_ = std::thread([this] { server_->run(false); });
    }

    ~ServerHarness() {
        server_->stop();
        thread_.join();
        server_.reset();
        EXPECT_EQ(manifest(canary()), canary_before_) << "the canary beside the server's root was touched";
        spdlog::set_default_logger(previous_logger_);
    }

    uint16_t port() const { return server_->port(); }
    // What SIGHUP does.
    void reload() { server_->reload(); }
    fs::path root() const { return dir_.path() / "root"; }
    fs::path fileset_root(const std::string& fileset) const { return root() / fileset; }
    fs::path canary() const { return dir_.path() / "canary"; }
    const fs::path& base() const { return dir_.path(); }

    // Over TLS with the server's key.
    WireClient connect() const { return connect_with(key); }
    WireClient connect_with(const replicator::SharedKey& k) const {
        auto c = WireClient::connect(port(), k);
        if (!c) throw std::runtime_error(c.error().message);
        return std::move(*c);
    }
    // In the clear, as a peer from before TLS.
    WireClient connect_plain() const {
        auto c = WireClient::connect_plain(port());
        if (!c) throw std::runtime_error(c.error().message);
        return std::move(*c);
    }

    // Whether some log line so far contains `needle`.
    bool logged(std::string_view needle) const {
        for (auto& line : logs_->last_formatted())
            if (line.find(needle) != std::string::npos) return true;
        return false;
    }
    bool eventually_logged(std::string_view needle) const {
        return wait_until([&] { return logged(needle); });
    }
    std::string all_logs() const {
        std::string out;
        for (auto& line : logs_->last_formatted()) out += line;
        return out;
    }

    replicator::SharedKey key;

private:
    TempDir dir_{"server"};
    std::string canary_before_;
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> logs_;
    std::shared_ptr<spdlog::logger> previous_logger_;
    std::unique_ptr<replicator::Server> server_;
    std::thread thread_;
};

}  // namespace iz::test
