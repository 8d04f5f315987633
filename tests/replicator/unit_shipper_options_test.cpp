// Shipper::start refuses options it cannot ship with before it reads the
// journal or connects anywhere: an invalid fileset or agent name, and the
// first server (in the order given) whose credentials were not given, each
// named with what to do.
#include <gtest/gtest.h>

#include <string>

#include "replicator/ship/shipper.hpp"

namespace iz::replicator {
namespace {

std::string refusal(ShipperOptions o) {
    auto s = Shipper::start(std::move(o));
    return s ? std::string("started") : s.error().message;
}

ShipperOptions valid() {
    ShipperOptions o;
    o.journal_dir = "/nonexistent/journal";
    o.watched_root = "/nonexistent/root";
    o.fileset = "docs";
    o.agent_id = "host-1";
    o.servers = {ServerEndpoint{.host = "10.0.0.1", .port = 7411}};
    o.key_file = "/nonexistent/key";
    o.identity_dir = "/nonexistent/identity";
    return o;
}

const ServerEndpoint kPinned{.host = "10.0.0.2", .port = 7412, .fingerprint = std::string(32, 'x')};

TEST(ShipperOptions, NamesAnInvalidFilesetOrAgentId) {
    auto o = valid();
    o.fileset = ".hidden";
    EXPECT_EQ(refusal(o), "invalid fileset name '.hidden': use 1-128 of A-Z a-z 0-9 . _ - (not starting with '.')");
    o = valid();
    o.agent_id = "a/b";
    EXPECT_EQ(refusal(o), "invalid agent id 'a/b': use 1-128 of A-Z a-z 0-9 . _ - (not starting with '.')");
}

TEST(ShipperOptions, NamesTheFirstServerWhoseCredentialsWereNotGiven) {
    auto o = valid();
    o.key_file.clear();
    o.identity_dir.clear();
    o.servers = {kPinned, o.servers[0]};
    EXPECT_EQ(refusal(o), "server 10.0.0.2:7412 is pinned by node ID: it needs this agent's identity "
                          "(--identity DIR; make one with 'izwatch identity new DIR')");
    std::swap(o.servers[0], o.servers[1]);
    EXPECT_EQ(refusal(o), "server 10.0.0.1:7411 needs a shared key (--key KEYFILE), or its node ID "
                          "(HOST:PORT@NODE-ID) and --identity DIR");
    // In order: the first one's key is read (and is not there) before the
    // second one's missing identity is found.
    o.key_file = "/nonexistent/key";
    o.servers = {o.servers[0], kPinned};
    auto why = refusal(o);
    EXPECT_NE(why.find("/nonexistent/key"), std::string::npos) << why;
}

}  // namespace
}  // namespace iz::replicator
