#pragma once
// The options of a shipper that ships fileset fs1 from base/src through
// base/journal to an in-process ServerHarness, with the server's key
// written where the shipper reads it.
#include <fmt/format.h>

#include <string>

#include "hostile_server_harness.hpp"
#include "replicator/ship/shipper.hpp"

namespace iz::test {

inline replicator::ShipperOptions shipper_options_for(ServerHarness& server, const std::string& agent_id) {
    auto key_file = server.base() / "key";
    std::string hex;
    for (char c : server.key.bytes) hex += fmt::format("{:02x}", static_cast<unsigned char>(c));
    write_file(key_file, hex + "\n", 0600);
    fs::create_directories(server.base() / "src");
    replicator::ShipperOptions so;
    so.journal_dir = server.base() / "journal";
    so.watched_root = server.base() / "src";
    so.fileset = "fs1";
    so.agent_id = agent_id;
    so.servers.push_back({"127.0.0.1", server.port()});
    so.key_file = key_file;
    so.register_consumers = false;
    return so;
}

}  // namespace iz::test
