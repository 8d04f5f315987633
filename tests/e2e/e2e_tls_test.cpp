// End to end over TLS, with a man in the middle: the real izwatch ships to
// the real izreplicate through a relay in the agent's namespace that records
// every byte and, on request, flips, drops or injects bytes after the
// handshake. A session tampered with fails closed (nothing of it applied),
// the agent reconnects and resumes, and the replica converges with nothing
// lost. The recording holds none of a file's content nor its name.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <random>

#include "e2e_hosts.hpp"
#include "e2e_relay.hpp"
#include "e2e_workload.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace iz::test::e2e {
namespace {

class Tls : public ::testing::Test {
protected:
    void SetUp() override {
        agent_ns_ = must(Netns::make("tlsagent"));
        server_ns_ = must(Netns::make("tlssrv"));
        link_ = must(VethLink::make(*agent_ns_, *server_ns_, 7));
        key_ = make_key(keys_);
        server_ = std::make_unique<ServerHost>(*server_ns_, link_->address_b(), key_, "e2e-tls-dst");
        server_->start();
        agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "e2e-tls-src");
    }

    void TearDown() override {
        if (HasFailure()) {
            fmt::print(stderr, "agent log:\n{}\nserver log:\n{}\n", tail(agent_->log()), tail(server_->log()));
        }
        agent_.reset();
        relay_.reset();
        server_.reset();
        link_.reset();
        server_ns_.reset();
        agent_ns_.reset();
    }

    static std::string tail(const std::string& s, size_t n = 4000) { return s.size() > n ? s.substr(s.size() - n) : s; }

    // The agent ships through the relay.
    void start_agent_through_relay() {
        relay_ = std::make_unique<Relay>(*agent_ns_, link_->address_b(), kServerPort);
        auto r = agent_->start({relay_->endpoint()});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }

    void sync_ok(int timeout_s = 60) {
        auto r = agent_->sync(timeout_s);
        ASSERT_EQ(r.exit_code, 0) << "izwatch sync: " << r.err;
    }

    void expect_converged() {
        EXPECT_EQ(manifest_diff(manifest(agent_->dir()), manifest(server_->replica("data"))), "");
    }

    size_t count(const std::string& haystack, const std::string& needle) const {
        size_t n = 0;
        for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
        return n;
    }

    TempDir keys_{"e2e-tls-key"};
    fs::path key_;
    std::unique_ptr<Netns> agent_ns_, server_ns_;
    std::unique_ptr<VethLink> link_;
    std::unique_ptr<ServerHost> server_;
    std::unique_ptr<AgentHost> agent_;
    std::unique_ptr<Relay> relay_;
};

std::string random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
}

TEST_F(Tls, TamperedBytesEndTheSessionAndTheAgentResumesWithoutLoss) {
    start_agent_through_relay();
    every_operation(agent_->dir() / "before");
    sync_ok();
    expect_converged();
    struct Case {
        Tamper what;
        Direction dir;
        const char* name;
    };
    const Case cases[] = {{Tamper::flip, Direction::to_server, "flip-to-server"},
                          {Tamper::drop, Direction::to_server, "drop-to-server"},
                          {Tamper::inject, Direction::to_server, "inject-to-server"},
                          {Tamper::flip, Direction::to_agent, "flip-to-agent"},
                          {Tamper::inject, Direction::to_agent, "inject-to-agent"}};
    int round = 0;
    for (auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto sessions_before = count(server_->log(), "authenticated by shared key");
        auto lost_before = count(server_->log(), "connection lost") + count(server_->log(), "dropping connection");
        relay_->arm(c.what, c.dir);
        // Traffic for the fault to land in: files, whose acks come back.
        for (int i = 0; !relay_->fired() && i < 50; ++i) {
            write_file(agent_->dir() / fmt::format("{}-{}", c.name, i), random_bytes(20000, 100 * round + i));
            std::this_thread::sleep_for(100ms);
        }
        ASSERT_TRUE(relay_->fired());
        // The session ends (on the server's side, or the agent's), and a new
        // one takes over.
        EXPECT_TRUE(eventually([&] {
            return count(server_->log(), "connection lost") + count(server_->log(), "dropping connection") > lost_before;
        }, 20s)) << tail(server_->log());
        EXPECT_TRUE(eventually([&] { return count(server_->log(), "authenticated by shared key") > sessions_before; }, 30s))
            << tail(server_->log());
        sync_ok(90);
        expect_converged();
        ++round;
    }
    // A record that does not decrypt is what ended the sessions.
    EXPECT_NE(server_->log().find("decryption failed or bad record mac"), std::string::npos) << tail(server_->log());
}

TEST_F(Tls, ACaptureOfTheTrafficHoldsNoneOfAFilesContentNorItsName) {
    start_agent_through_relay();
    const std::string name = "tls-distinctive-name-5ac1e7";
    // Random bytes do not compress: sent in the clear, they would show as is.
    const std::string content = random_bytes(256 * 1024, 4242);
    write_file(agent_->dir() / name, content);
    // Text that would compress, in case the agent compresses.
    std::string text;
    for (int i = 0; i < 2000; ++i) text += fmt::format("line {} of the distinctive plaintext zq9x\n", i);
    write_file(agent_->dir() / (name + ".txt"), text);
    sync_ok();
    expect_converged();
    ASSERT_EQ(read_file(server_->replica("data") / name), content);
    auto wire = relay_->recorded();
    ASSERT_GT(wire.size(), content.size());  // the content did travel, somehow
    EXPECT_EQ(wire.find(name), std::string::npos);
    EXPECT_EQ(wire.find("distinctive plaintext"), std::string::npos);
    for (size_t at : {size_t{0}, content.size() / 3, content.size() / 2, content.size() - 64})
        EXPECT_EQ(wire.find(content.substr(at, 32)), std::string::npos) << "32 bytes of the content at " << at;
}

// An agent with another key: the server refuses it by its key's name and
// applies nothing; the agent says why; an honest agent is served meanwhile.
TEST_F(Tls, AnAgentWithAnotherKeyIsRefusedAndTheHonestOneServed) {
    TempDir other("e2e-tls-otherkey");
    auto wrong = make_key(other);
    AgentHost intruder(*agent_ns_, wrong, "e2e-tls-intruder");
    write_file(intruder.dir() / "secret", "must not arrive\n");
    auto r = intruder.start({server_->endpoint()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(eventually([&] { return server_->log().find("which this server does not hold") != std::string::npos; }))
        << tail(server_->log());
    EXPECT_TRUE(eventually([&] {
        auto s = intruder.status();
        return s["servers"][0].value("last_error", "").find("does not hold our shared key") != std::string::npos;
    })) << intruder.status().dump();
    auto ra = agent_->start({server_->endpoint()});
    ASSERT_EQ(ra.exit_code, 0) << ra.err;
    every_operation(agent_->dir());
    sync_ok();
    expect_converged();
    EXPECT_FALSE(fs::exists(server_->replica("data") / "secret"));
    EXPECT_EQ(agent_->status()["servers"][0].value("peer", "").rfind("shared key 'iz-psk1-", 0), 0u)
        << agent_->status().dump();
    intruder.stop();
}

// The access file, end to end: an agent asking for a fileset it may not
// use is told so naming it, applies nothing, and the other goes on.
TEST_F(Tls, AFilesetTheAgentMayNotUseIsRefusedNamingIt) {
    write_file(keys_.path() / "access.conf", "# everyone on data only\n* data read-write\n");
    server_->start({"--access", (keys_.path() / "access.conf").string()});
    // The older option still works, for one release, saying so.
    EXPECT_NE(server_->log().find("--access is deprecated"), std::string::npos) << tail(server_->log());
    AgentHost other(*agent_ns_, key_, "e2e-tls-other");
    write_file(other.dir() / "secret", "must not arrive\n");
    auto r = other.start({server_->endpoint()}, {"--fileset", "other", "--agent-id", "other"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(eventually([&] {
        auto s = other.status();
        return s["servers"][0].value("last_error", "").find("may not use fileset 'other' on this server") !=
               std::string::npos;
    })) << other.status().dump();
    other.stop();
    EXPECT_FALSE(fs::exists(server_->replica("other")));
    auto ra = agent_->start({server_->endpoint()});
    ASSERT_EQ(ra.exit_code, 0) << ra.err;
    every_operation(agent_->dir());
    sync_ok();
    expect_converged();
}

// The real izreplicate, sent SIGHUP after its access file changed: the
// agent whose fileset the new rules refuse is dropped with a refusal naming
// that fileset and stays refused when it reconnects; the other agent goes on
// over the same connection, with nothing lost.
TEST_F(Tls, AReloadedAccessFileDropsTheAgentItNowRefusesAndKeepsTheOther) {
    auto access = keys_.path() / "access.conf";
    write_file(access, "* data read-write\n* other read-write\n");
    server_->start({"--access", access.string()});
    AgentHost other(*agent_ns_, key_, "e2e-tls-other");
    write_file(other.dir() / "before", "arrives\n");
    auto r = other.start({server_->endpoint()}, {"--fileset", "other", "--agent-id", "other"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto ra = agent_->start({server_->endpoint()});
    ASSERT_EQ(ra.exit_code, 0) << ra.err;
    write_file(agent_->dir() / "first", "one\n");
    sync_ok();
    auto ro = other.sync(60);
    ASSERT_EQ(ro.exit_code, 0) << ro.err;
    EXPECT_EQ(read_file(server_->replica("other") / "before"), "arrives\n");
    auto served = agent_->status()["servers"][0];
    ASSERT_TRUE(served.value("connected", false)) << served.dump();
    auto reconnects = served.value("reconnects", uint64_t{0});

    write_file(access, "* data read-write\n");
    server_->reload();
    EXPECT_TRUE(eventually([&] {
        return other.status()["servers"][0].value("last_error", "").find(
                   "may no longer use fileset 'other' on this server") != std::string::npos;
    })) << other.status().dump();
    write_file(other.dir() / "after", "must not arrive\n");
    every_operation(agent_->dir());
    sync_ok();
    expect_converged();
    served = agent_->status()["servers"][0];
    EXPECT_TRUE(served.value("connected", false)) << served.dump();
    EXPECT_EQ(served.value("reconnects", uint64_t{0}), reconnects) << served.dump();
    // Reconnecting, it is refused at its hello now.
    EXPECT_TRUE(eventually([&] {
        return other.status()["servers"][0].value("last_error", "").find("may not use fileset 'other' on this server") !=
               std::string::npos;
    })) << other.status().dump();
    other.stop();
    EXPECT_FALSE(fs::exists(server_->replica("other") / "after"));
    EXPECT_EQ(read_file(server_->replica("other") / "before"), "arrives\n");
}

// `PROGRAM identity new DIR`: the node ID it printed.
std::string new_identity(const std::string& program, const fs::path& dir) {
    auto r = run_process({bin_path(program).string(), "identity", "new", dir.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto at = r.out.find("node ID: ");
    if (at == std::string::npos) {
        ADD_FAILURE() << "no node ID in: " << r.out;
        return {};
    }
    auto id = r.out.substr(at + 9);
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    // identity show prints the same ID.
    auto shown = run_process({bin_path(program).string(), "identity", "show", dir.string()});
    EXPECT_EQ(shown.out, id + "\n");
    return id;
}

// Per-node identities, end to end: the agent pins the server's node ID, the
// server allows the agent's; both files are private. An agent whose
// certificate is not allowed, and one that pins another node ID, are each
// refused with their own message; the allowed agent is served throughout.
TEST_F(Tls, AgentsAndServersAuthenticateByPinnedCertificates) {
    TempDir ids("e2e-tls-ids");
    auto server_id = new_identity("izreplicate", ids.path() / "server");
    auto agent_id = new_identity("izwatch", ids.path() / "agent");
    auto stranger_id = new_identity("izwatch", ids.path() / "stranger");
    ASSERT_EQ(server_id.size(), 64u);  // 52 digits in 13 groups of 4
    for (auto* f : {"node.key", "node.crt"})
        EXPECT_EQ(fs::status(ids.path() / "agent" / f).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
    // A second `identity new` never overwrites.
    EXPECT_NE(run_process({bin_path("izwatch").string(), "identity", "new", (ids.path() / "agent").string()}).exit_code, 0);
    write_file(ids.path() / "allowed", fmt::format("# agents of this test\n{}\n", agent_id));
    server_->start({"--identity", (ids.path() / "server").string(), "--allowed-agents", (ids.path() / "allowed").string()});
    EXPECT_NE(server_->log().find("node ID: " + server_id), std::string::npos);
    EXPECT_NE(server_->log().find("--allowed-agents is deprecated"), std::string::npos) << tail(server_->log());

    auto pinned = server_->endpoint() + "@" + server_id;
    auto r = agent_->start({pinned}, {"--identity", (ids.path() / "agent").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    every_operation(agent_->dir());
    sync_ok();
    expect_converged();
    EXPECT_NE(server_->log().find("authenticated by certificate " + agent_id + " over TLSv1.3"), std::string::npos)
        << tail(server_->log());
    // izwatch status names the server's identity, the TLS version and cipher.
    auto st = agent_->status();
    EXPECT_EQ(st["servers"][0].value("peer", ""), "server certificate " + server_id) << st.dump();
    EXPECT_EQ(st["servers"][0].value("tls", ""), "TLSv1.3 TLS_AES_128_GCM_SHA256") << st.dump();
    // And the protocol version the server chose: this build's newest.
    EXPECT_EQ(st["servers"][0].value("protocol", 0), 6) << st.dump();
    auto text = agent_->izwatch("status");
    EXPECT_NE(text.out.find("connected over TLSv1.3 TLS_AES_128_GCM_SHA256 to server certificate " + server_id +
                            ", protocol version 6"),
              std::string::npos)
        << text.out << text.err;

    // A certificate the server does not allow.
    AgentHost stranger(*agent_ns_, key_, "e2e-tls-stranger");
    write_file(stranger.dir() / "secret", "must not arrive\n");
    r = stranger.start({pinned}, {"--identity", (ids.path() / "stranger").string(), "--fileset", "other"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(eventually([&] {
        return server_->log().find("the agent's certificate " + stranger_id + " is not among the allowed agents") !=
               std::string::npos;
    })) << tail(server_->log());
    EXPECT_TRUE(eventually([&] {
        auto s = stranger.status();
        return s["servers"][0].value("last_error", "").find("does not accept our certificate") != std::string::npos;
    })) << stranger.status().dump();
    stranger.stop();

    // An agent pinning another node ID (its own, say) refuses the server.
    AgentHost wary(*agent_ns_, key_, "e2e-tls-wary");
    r = wary.start({server_->endpoint() + "@" + stranger_id},
                   {"--identity", (ids.path() / "agent").string(), "--fileset", "wary", "--agent-id", "wary"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(eventually([&] {
        auto s = wary.status();
        return s["servers"][0].value("last_error", "").find("the server's certificate is " + server_id +
                                                             ", not the one pinned for it") != std::string::npos;
    })) << wary.status().dump();
    wary.stop();
    EXPECT_FALSE(fs::exists(server_->replica("other")));
    EXPECT_FALSE(fs::exists(server_->replica("wary")));

    // The allowed agent is still served; and an agent with the shared key
    // too (the server takes both).
    write_file(agent_->dir() / "after", "later\n");
    sync_ok();
    expect_converged();
    AgentHost keyed(*agent_ns_, key_, "e2e-tls-keyed");
    write_file(keyed.dir() / "by-key", "shared key\n");
    r = keyed.start({server_->endpoint()}, {"--fileset", "keyed", "--agent-id", "keyed"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto synced = keyed.sync();
    EXPECT_EQ(synced.exit_code, 0) << synced.err << keyed.status().dump();
    EXPECT_EQ(read_file(server_->replica("keyed") / "by-key"), "shared key\n");
    keyed.stop();
}

}  // namespace
}  // namespace iz::test::e2e
