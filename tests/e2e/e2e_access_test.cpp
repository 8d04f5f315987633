// End to end, the server's agents file (izreplicate --agents): one file
// names the keys and certificates that may connect and what each name may
// do with which fileset, and the real izreplicate enforces it both ways on
// a shared fileset that real izwatch agents in send-receive mode use: a
// receive-only agent gets the others' changes while everything it sends is
// refused (nothing applied, its connection kept); a send-only agent is
// refused forwards naming the fileset; `none` refuses the fileset. A name
// holds an old and a new certificate (or key) at once, so agents rotate
// without being refused; a reload that drops the old one keeps the session
// on the new one.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "e2e_hosts.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace iz::test::e2e {
namespace {

constexpr const char* kFileset = "team";

// `izreplicate key-name KEYFILE`: how the agents file names a shared key.
std::string key_name(const fs::path& key) {
    auto r = run_process({bin_path("izreplicate").string(), "key-name", key.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto name = r.out;
    while (!name.empty() && name.back() == '\n') name.pop_back();
    EXPECT_EQ(name.rfind("key:iz-psk1-", 0), 0u) << name;
    return name;
}

// `PROGRAM identity new DIR`: the node ID it printed.
std::string new_identity(const std::string& program, const fs::path& dir) {
    auto r = run_process({bin_path(program).string(), "identity", "new", dir.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto at = r.out.find("node ID: ");
    if (at == std::string::npos) return {};
    auto id = r.out.substr(at + 9);
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    return id;
}

size_t count(const std::string& haystack, const std::string& needle) {
    size_t n = 0;
    for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
    return n;
}

class Access : public ::testing::Test {
protected:
    void SetUp() override {
        agents_ns_ = must(Netns::make("acagents"));
        server_ns_ = must(Netns::make("acsrv"));
        link_ = must(VethLink::make(*agents_ns_, *server_ns_, 11));
        key_ = make_key(keys_);
        server_ = std::make_unique<ServerHost>(*server_ns_, link_->address_b(), key_, "e2e-access-dst");
    }

    void TearDown() override {
        if (HasFailure()) fmt::print(stderr, "server log:\n{}\n", tail(server_->log()));
        for (auto& [name, agent] : agents_) {
            if (HasFailure()) fmt::print(stderr, "agent {} log:\n{}\n", name, tail(agent->log()));
            agent.reset();
        }
        server_.reset();
        link_.reset();
        server_ns_.reset();
        agents_ns_.reset();
    }

    static std::string tail(const std::string& s, size_t n = 4000) { return s.size() > n ? s.substr(s.size() - n) : s; }

    // An agent on a key of its own (made here), sharing kFileset.
    AgentHost& share(const std::string& name, const fs::path& key) {
        auto& agent = agents_[name];
        agent = std::make_unique<AgentHost>(*agents_ns_, key, "e2e-access-" + name);
        auto r = agent->start({server_->endpoint()}, {"--mode", "send-receive", "--agent-id", name, "--fileset", kFileset});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return *agent;
    }

    static nlohmann::json server_of(AgentHost& a) { return a.status()["servers"][0]; }

    // The agents file: writer read-write, feeder as told (both on keys).
    void feeder_rules(const char* feeder_access) {
        write_file(agents_file(), fmt::format("agent writer {}\nagent feeder {}\n"
                                              "access writer team read-write\naccess feeder team {}\n",
                                              key_name(key_), key_name(feeder_key()), feeder_access));
    }
    fs::path agents_file() const { return keys_.path() / "agents.conf"; }
    fs::path feeder_key() const { return keys_.path() / "feeder.key"; }

    // The server with writer and feeder read-write, both sharing in
    // send-receive mode, the feeder subscribed (it received the writer's
    // first file).
    std::pair<AgentHost&, AgentHost&> writer_and_subscribed_feeder() {
        auto r = run_process({bin_path("izreplicate").string(), "keygen", feeder_key().string()});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        feeder_rules("read-write");
        server_->start({"--key", feeder_key().string(), "--agents", agents_file().string()});
        auto& writer = share("writer", key_);
        auto& feeder = share("feeder", feeder_key());
        write_file(writer.dir() / "from-writer", "for everyone\n");
        auto s = writer.sync(60);
        EXPECT_EQ(s.exit_code, 0) << s.err;
        EXPECT_TRUE(eventually([&] { return fs::exists(feeder.dir() / "from-writer"); }, 30s)) << feeder.status().dump();
        EXPECT_TRUE(server_of(feeder).value("connected", false)) << feeder.status().dump();
        return {writer, feeder};
    }

    // A reload makes the feeder send-only; it learns so on its connection.
    void make_feeder_send_only(AgentHost& feeder) {
        feeder_rules("send-only");
        server_->reload();
        EXPECT_TRUE(eventually([&] {
            return server_of(feeder).value("receive_error", "").find("fileset 'team' is now send-only for shared key "
                                                                     "'iz-psk1-") != std::string::npos;
        }, 20s)) << feeder.status().dump();
    }

    TempDir keys_{"e2e-access-key"};
    fs::path key_;
    std::unique_ptr<Netns> agents_ns_, server_ns_;
    std::unique_ptr<VethLink> link_;
    std::unique_ptr<ServerHost> server_;
    std::map<std::string, std::unique_ptr<AgentHost>> agents_;
};

TEST_F(Access, RightsOnASharedFilesetHoldInBothDirections) {
    TempDir more("e2e-access-keys");
    std::map<std::string, fs::path> keys{{"writer", key_}};
    std::vector<std::string> server_args;
    for (auto* name : {"reader", "feeder", "outsider"}) {
        fs::create_directories(more.path() / name);
        keys[name] = more.path() / name / "key";
        auto r = run_process({bin_path("izreplicate").string(), "keygen", keys[name].string()});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        server_args.insert(server_args.end(), {"--key", keys[name].string()});
    }
    auto file = keys_.path() / "agents.conf";
    write_file(file, fmt::format("# the agents of this test\n"
                                 "agent writer   {}\nagent reader   {}\nagent feeder   {}\nagent outsider {}\n"
                                 "access writer   team read-write\n"
                                 "access reader   team receive-only\n"
                                 "access feeder   team send-only\n"
                                 "access outsider team none\n",
                                 key_name(keys["writer"]), key_name(keys["reader"]), key_name(keys["feeder"]),
                                 key_name(keys["outsider"])));
    server_args.insert(server_args.end(), {"--agents", file.string()});
    server_->start(server_args);

    auto& writer = share("writer", keys["writer"]);
    auto& reader = share("reader", keys["reader"]);
    auto& feeder = share("feeder", keys["feeder"]);
    auto& outsider = share("outsider", keys["outsider"]);
    write_file(writer.dir() / "from-writer", "one\n");
    auto s = writer.sync(60);
    ASSERT_EQ(s.exit_code, 0) << s.err;

    // receive-only: the others' changes arrive.
    EXPECT_TRUE(eventually([&] { return fs::exists(reader.dir() / "from-writer"); }, 30s)) << reader.status().dump();
    EXPECT_EQ(read_file(reader.dir() / "from-writer"), "one\n");
    // Everything it sends is refused, told once naming the fileset, and its
    // connection goes on.
    ASSERT_TRUE(eventually([&] { return server_of(reader).value("connected", false); }, 20s)) << reader.status().dump();
    auto reconnects = server_of(reader).value("reconnects", uint64_t{0});
    write_file(reader.dir() / "from-reader", "must not arrive\n");
    fs::create_directory(reader.dir() / "dir-from-reader");
    bool told = eventually([&] {
        auto rejected = server_of(reader)["rejected"];
        size_t seen = 0;
        for (auto& r : rejected)
            if (r.value("error", "").find("fileset 'team' is receive-only for shared key 'iz-psk1-") != std::string::npos &&
                (r.value("path", "") == "from-reader" || r.value("path", "") == "dir-from-reader"))
                ++seen;
        return seen >= 2;
    }, 30s);
    EXPECT_TRUE(told) << reader.status().dump();
    // What follows still reaches it, over the same connection.
    write_file(writer.dir() / "after-the-refusal", "two\n");
    s = writer.sync(60);
    ASSERT_EQ(s.exit_code, 0) << s.err;
    EXPECT_TRUE(eventually([&] { return fs::exists(reader.dir() / "after-the-refusal"); }, 30s)) << reader.status().dump();
    EXPECT_EQ(server_of(reader).value("reconnects", uint64_t{0}), reconnects) << reader.status().dump();
    EXPECT_TRUE(server_of(reader).value("connected", false)) << reader.status().dump();
    EXPECT_FALSE(fs::exists(server_->replica(kFileset) / "from-reader"));
    EXPECT_FALSE(fs::exists(server_->replica(kFileset) / "dir-from-reader"));
    EXPECT_FALSE(fs::exists(writer.dir() / "from-reader"));
    EXPECT_FALSE(fs::exists(writer.dir() / "dir-from-reader"));

    // send-only: its subscription is refused with one message naming the
    // fileset, and nothing is forwarded to it.
    EXPECT_TRUE(eventually([&] {
        return server_of(feeder).value("receive_error", "").find(
                   "fileset 'team' is send-only for shared key 'iz-psk1-") != std::string::npos;
    }, 20s)) << feeder.status().dump();
    EXPECT_NE(server_of(feeder).value("receive_error", "").find("nothing is forwarded to it"), std::string::npos)
        << feeder.status().dump();
    // none: the fileset is refused at the handshake.
    EXPECT_TRUE(eventually([&] {
        return server_of(outsider).value("last_error", "").find("may not use fileset 'team' on this server") !=
               std::string::npos;
    }, 20s)) << outsider.status().dump();
    for (auto* a : {&feeder, &outsider}) {
        EXPECT_FALSE(fs::exists(a->dir() / "from-writer")) << a->dir();
        EXPECT_FALSE(fs::exists(a->dir() / "after-the-refusal")) << a->dir();
    }
    EXPECT_GE(count(server_->log(), "fileset 'team' is send-only"), 1u);
}

// A send-only agent run in send-receive mode: its subscribe is refused
// over a connection that stays, so everything it changes reaches the
// server and the others while nothing comes back; status and sync say why.
TEST_F(Access, ASendOnlyAgentInSendReceiveModeStillSends) {
    TempDir more("e2e-access-feeder");
    auto feeder_key = more.path() / "key";
    auto r = run_process({bin_path("izreplicate").string(), "keygen", feeder_key.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto file = keys_.path() / "agents.conf";
    write_file(file, fmt::format("agent writer {}\nagent feeder {}\n"
                                 "access writer team read-write\naccess feeder team send-only\n",
                                 key_name(key_), key_name(feeder_key)));
    server_->start({"--key", feeder_key.string(), "--agents", file.string()});

    auto& writer = share("writer", key_);
    write_file(writer.dir() / "from-writer", "for everyone\n");
    auto s = writer.sync(60);
    ASSERT_EQ(s.exit_code, 0) << s.err;
    auto& feeder = share("feeder", feeder_key);
    write_file(feeder.dir() / "from-feeder", "fed\n");
    fs::create_directory(feeder.dir() / "fed-dir");
    write_file(feeder.dir() / "fed-dir" / "inner", "inner\n");

    // Sent, but not received: sync fails naming the refusal.
    s = feeder.sync(60);
    EXPECT_NE(s.exit_code, 0) << s.out;
    EXPECT_NE((s.out + s.err).find("received nothing"), std::string::npos) << s.out << s.err;
    EXPECT_NE((s.out + s.err).find("fileset 'team' is send-only for shared key 'iz-psk1-"), std::string::npos)
        << s.out << s.err;
    EXPECT_EQ(read_file(server_->replica(kFileset) / "from-feeder"), "fed\n");
    EXPECT_EQ(read_file(server_->replica(kFileset) / "fed-dir" / "inner"), "inner\n");
    EXPECT_TRUE(eventually([&] { return fs::exists(writer.dir() / "fed-dir" / "inner"); }, 30s)) << writer.status().dump();
    EXPECT_EQ(read_file(writer.dir() / "from-feeder"), "fed\n");

    // More follows over the same connection; nothing comes back.
    write_file(feeder.dir() / "later", "later\n");
    write_file(writer.dir() / "after-feeder", "not for the feeder\n");
    s = writer.sync(60);
    ASSERT_EQ(s.exit_code, 0) << s.err;
    EXPECT_TRUE(eventually([&] { return fs::exists(server_->replica(kFileset) / "later"); }, 30s))
        << feeder.status().dump();
    EXPECT_EQ(read_file(server_->replica(kFileset) / "later"), "later\n");
    EXPECT_FALSE(fs::exists(feeder.dir() / "from-writer"));
    EXPECT_FALSE(fs::exists(feeder.dir() / "after-feeder"));
    auto srv = server_of(feeder);
    EXPECT_TRUE(srv.value("connected", false)) << srv.dump();
    EXPECT_EQ(srv.value("reconnects", uint64_t{99}), 0u) << srv.dump();
    EXPECT_EQ(srv.value("server_errors", uint64_t{99}), 0u) << srv.dump();
    EXPECT_NE(srv.value("receive_error", "").find("the server refused to forward fileset 'team': fileset 'team' is "
                                                  "send-only for shared key 'iz-psk1-"),
              std::string::npos)
        << srv.dump();
    // `izwatch status` shows it for that server.
    auto text = feeder.izwatch("status");
    EXPECT_NE(text.out.find("the server refused to forward fileset 'team'"), std::string::npos) << text.out << text.err;
    // Logged once by each side.
    EXPECT_EQ(count(feeder.log(), "the server refused to forward fileset 'team'"), 1u) << tail(feeder.log());
    EXPECT_EQ(count(server_->log(), "subscribe refused"), 1u) << tail(server_->log());
}

// A reload that makes a subscribed agent send-only: its forwards stop with
// subscribe_refused on the live connection, which stays. It used to be
// dropped ("is now send-only"), and the agent reconnected into a refused
// subscribe, losing what it had queued on the way.
TEST_F(Access, AReloadThatMakesASubscriberSendOnlyKeepsItsConnection) {
    auto [writer, feeder] = writer_and_subscribed_feeder();
    auto reconnects = server_of(feeder).value("reconnects", uint64_t{99});
    make_feeder_send_only(feeder);

    // It goes on shipping over the same connection; nothing comes back.
    write_file(feeder.dir() / "after-reload", "still shipped\n");
    write_file(writer.dir() / "not-for-the-feeder", "kept from it\n");
    auto s = writer.sync(60);
    ASSERT_EQ(s.exit_code, 0) << s.err;
    EXPECT_TRUE(eventually([&] { return fs::exists(server_->replica(kFileset) / "after-reload"); }, 30s))
        << feeder.status().dump();
    EXPECT_EQ(read_file(server_->replica(kFileset) / "after-reload"), "still shipped\n");
    s = feeder.sync(60);
    EXPECT_NE(s.exit_code, 0) << s.out;
    EXPECT_NE((s.out + s.err).find("is now send-only"), std::string::npos) << s.out << s.err;
    EXPECT_FALSE(fs::exists(feeder.dir() / "not-for-the-feeder"));
    auto srv = server_of(feeder);
    EXPECT_TRUE(srv.value("connected", false)) << srv.dump();
    EXPECT_EQ(srv.value("reconnects", uint64_t{99}), reconnects) << srv.dump();
    EXPECT_EQ(srv.value("server_errors", uint64_t{99}), 0u) << srv.dump();
    EXPECT_EQ(count(server_->log(), "dropping connection"), 0u) << tail(server_->log());
    EXPECT_EQ(count(server_->log(), "forwarding stopped: fileset 'team' is now send-only"), 1u) << tail(server_->log());
}

// A later reload that makes the feeder read-write again: the server says so
// on the live connection (subscribe_allowed), the feeder subscribes again
// from its cursor and receives everything the writer did while it was
// refused, without reconnecting. It used to receive nothing until its next
// connection, and its syncs failed until then.
TEST_F(Access, AReloadThatMakesItReadWriteAgainResumesItsForwards) {
    auto [writer, feeder] = writer_and_subscribed_feeder();
    write_file(writer.dir() / "to-remove", "gone while refused\n");
    ASSERT_EQ(writer.sync(60).exit_code, 0);
    ASSERT_TRUE(eventually([&] { return fs::exists(feeder.dir() / "to-remove"); }, 30s)) << feeder.status().dump();
    auto reconnects = server_of(feeder).value("reconnects", uint64_t{99});
    make_feeder_send_only(feeder);

    // While refused: the writer changes, adds and removes; the feeder ships.
    write_file(writer.dir() / "from-writer", "changed while refused\n");
    fs::create_directory(writer.dir() / "made-while-refused");
    write_file(writer.dir() / "made-while-refused" / "inside", "new while refused\n");
    fs::remove(writer.dir() / "to-remove");
    write_file(feeder.dir() / "from-feeder", "shipped while refused\n");
    auto s = writer.sync(60);
    ASSERT_EQ(s.exit_code, 0) << s.err;
    ASSERT_TRUE(eventually([&] { return fs::exists(server_->replica(kFileset) / "from-feeder"); }, 30s))
        << feeder.status().dump();
    EXPECT_FALSE(fs::exists(feeder.dir() / "made-while-refused"));

    feeder_rules("read-write");
    server_->reload();
    ASSERT_TRUE(eventually([&] { return server_of(feeder).value("receive_error", "x").empty(); }, 20s))
        << feeder.status().dump();
    s = feeder.sync(60);
    EXPECT_EQ(s.exit_code, 0) << s.out << s.err;
    s = writer.sync(60);
    EXPECT_EQ(s.exit_code, 0) << s.out << s.err;
    auto ms = manifest(server_->replica(kFileset));
    EXPECT_TRUE(eventually([&] { return manifest(feeder.dir()) == ms && manifest(writer.dir()) == ms; }, 30s))
        << "feeder:\n" << manifest_diff(manifest(feeder.dir()), ms) << "writer:\n"
        << manifest_diff(manifest(writer.dir()), ms);
    EXPECT_EQ(read_file(feeder.dir() / "made-while-refused" / "inside"), "new while refused\n");
    EXPECT_EQ(read_file(feeder.dir() / "from-writer"), "changed while refused\n");
    EXPECT_FALSE(fs::exists(feeder.dir() / "to-remove"));
    auto srv = server_of(feeder);
    EXPECT_TRUE(srv.value("connected", false)) << srv.dump();
    EXPECT_EQ(srv.value("reconnects", uint64_t{99}), reconnects) << srv.dump();
    EXPECT_EQ(srv.value("server_errors", uint64_t{99}), 0u) << srv.dump();
    EXPECT_EQ(count(server_->log(), "dropping connection"), 0u) << tail(server_->log());
    EXPECT_EQ(count(server_->log(), "subscribing allowed: fileset 'team' is read-write"), 1u) << tail(server_->log());
}

// Per-node identities and a shared key in the one file: a name holding the
// old and the new certificate takes either; a certificate is bound to its
// name; a key the server holds but the file does not name is refused; a
// reload that drops the old certificate keeps the session on the new one.
TEST_F(Access, OneFileNamesCertificatesAndKeysAndTakesOldAndNewAtOnce) {
    TempDir ids("e2e-access-ids");
    auto server_id = new_identity("izreplicate", ids.path() / "server");
    auto old_id = new_identity("izwatch", ids.path() / "old");
    auto new_id = new_identity("izwatch", ids.path() / "new");
    TempDir other("e2e-access-newkey");
    auto new_key = make_key(other);
    auto file = keys_.path() / "agents.conf";
    auto rules = [&](const std::string& laptop) {
        return fmt::format("agent laptop {}   # moving to a new certificate\n"
                           "agent office {}\n"
                           "access laptop data read-write\n"
                           "access office office read-write\n",
                           laptop, key_name(new_key));
    };
    write_file(file, rules(old_id + " " + new_id));
    server_->start({"--key", new_key.string(), "--identity", (ids.path() / "server").string(), "--agents", file.string()});
    auto pinned = server_->endpoint() + "@" + server_id;

    auto& laptop = *(agents_["laptop"] = std::make_unique<AgentHost>(*agents_ns_, key_, "e2e-access-laptop"));
    for (auto& [dir, id] : {std::pair{"old", old_id}, std::pair{"new", new_id}}) {
        SCOPED_TRACE(dir);
        auto r = laptop.start({pinned}, {"--identity", (ids.path() / dir).string(), "--agent-id", "laptop"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        write_file(laptop.dir() / fmt::format("by-{}", dir), dir);
        auto s = laptop.sync(60);
        ASSERT_EQ(s.exit_code, 0) << s.err;
        EXPECT_EQ(read_file(server_->replica("data") / fmt::format("by-{}", dir)), dir);
        EXPECT_NE(server_->log().find("authenticated by certificate " + id), std::string::npos) << tail(server_->log());
        if (std::string(dir) == "old") laptop.stop();
    }
    // The old certificate goes: the session on the new one is kept.
    auto reconnects = server_of(laptop).value("reconnects", uint64_t{0});
    write_file(file, rules(new_id));
    server_->reload();
    EXPECT_TRUE(eventually([&] { return server_->log().find("reload: 1 certificates, 1 keys and 2 access rules") != std::string::npos; }))
        << tail(server_->log());
    write_file(laptop.dir() / "after-reload", "still\n");
    auto s = laptop.sync(60);
    ASSERT_EQ(s.exit_code, 0) << s.err;
    EXPECT_EQ(server_of(laptop).value("reconnects", uint64_t{0}), reconnects) << laptop.status().dump();
    laptop.stop();

    // The certificate is bound to its name.
    auto& impostor = *(agents_["impostor"] = std::make_unique<AgentHost>(*agents_ns_, key_, "e2e-access-impostor"));
    auto r = impostor.start({pinned}, {"--identity", (ids.path() / "new").string(), "--agent-id", "somebody"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(eventually([&] {
        return server_of(impostor).value("last_error", "").find("agent id 'somebody' is not the name its certificate") !=
               std::string::npos;
    }, 20s)) << impostor.status().dump();
    impostor.stop();

    // The new key, named: served. The key the server holds but the file does
    // not name: refused, saying so.
    auto& office = *(agents_["office"] = std::make_unique<AgentHost>(*agents_ns_, new_key, "e2e-access-office"));
    r = office.start({server_->endpoint()}, {"--fileset", "office", "--agent-id", "office"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    write_file(office.dir() / "on-the-new-key", "yes\n");
    s = office.sync(60);
    ASSERT_EQ(s.exit_code, 0) << s.err;
    EXPECT_EQ(read_file(server_->replica("office") / "on-the-new-key"), "yes\n");
    auto& unnamed = *(agents_["unnamed"] = std::make_unique<AgentHost>(*agents_ns_, key_, "e2e-access-unnamed"));
    r = unnamed.start({server_->endpoint()}, {"--fileset", "office", "--agent-id", "unnamed"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(eventually([&] {
        return server_of(unnamed).value("last_error", "").find("is not among this server's agents") != std::string::npos;
    }, 20s)) << unnamed.status().dump();
    unnamed.stop();
    office.stop();
}

}  // namespace
}  // namespace iz::test::e2e
