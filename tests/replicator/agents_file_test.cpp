// The server's agents file (agents_file.hpp): one file naming the identities
// that may connect and what each name may do with which fileset. A mistake
// is refused naming its line; names are matched, not identities; a name
// holds several identities at once (rotation); the older two files read
// alike.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "agents_file.hpp"
#include "replicator/wire/identity.hpp"
#include "support/tree.hpp"

namespace iz::test {
namespace {

namespace repl = replicator;
using repl::Access;

const std::string kOld(32, '\x11'), kNew(32, '\x22'), kStranger(32, '\x33');

TEST(AgentsFile, NamesHoldSeveralIdentitiesAndRulesMatchByName) {
    TempDir dir("agents");
    write_file(dir / "agents.conf", fmt::format(R"(# who may connect
agent laptop {}            # the certificate it is moving away from
agent laptop {}            # and the new one, accepted at once
agent office key:iz-psk1-aaaa key:iz-psk1-bbbb   # old and new shared key
access laptop home  read-write
access office *     send-only
access *      public receive-only
)",
                                                repl::format_node_id(kOld), repl::format_node_id(kNew)));
    auto r = repl::AgentsFile::read(dir / "agents.conf");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->certificates.size(), 2u);
    EXPECT_EQ(r->certificates.at(kOld), "laptop");
    EXPECT_EQ(r->certificates.at(kNew), "laptop");
    EXPECT_EQ(r->key_name("iz-psk1-aaaa"), "office");
    EXPECT_EQ(r->key_name("iz-psk1-bbbb"), "office");
    EXPECT_EQ(r->key_name("iz-psk1-cccc"), std::nullopt);  // a key the file does not name
    auto& a = *r->access;
    EXPECT_EQ(a.of(kOld, "", "home", "laptop"), Access::read_write);
    EXPECT_EQ(a.of(kNew, "", "home", "laptop"), Access::read_write);
    EXPECT_EQ(a.of(kNew, "", "public", "laptop"), Access::receive_only);
    EXPECT_EQ(a.of(kNew, "", "other", "laptop"), Access::none);
    EXPECT_EQ(a.of("", "iz-psk1-aaaa", "home", "office"), Access::send_only);
    // The name decides, not the identity: a rule never matches a raw one.
    EXPECT_EQ(a.of(kStranger, "", "home", ""), Access::none);
    EXPECT_EQ(a.of(kStranger, "", "public", ""), Access::receive_only);
}

TEST(AgentsFile, AMistakeIsRefusedNamingTheLine) {
    TempDir dir("agents");
    auto id = repl::format_node_id(kOld);
    struct Case {
        std::string text, expected;
    };
    const Case cases[] = {
        {"agent laptop\n", ":1: expected agent NAME IDENTITY"},
        {"# c\nagent bad/name " + id + "\n", ":2: invalid agent name 'bad/name'"},
        {"agent laptop MFRG-GZDF\n", ":1: node ID"},
        {"agent laptop key:\n", ":1: key: names no PSK identity"},
        {"agent a " + id + "\nagent b " + id + "\n", ":2: " + id + " is already agent 'a'"},
        {"agent a key:k\naccess a fs1 write-only\n", ":2: access 'write-only' is not one of"},
        {"agent a key:k\naccess a fs1\n", ":2: expected access WHO FILESET ACCESS"},
        {"agent a key:k\naccess a fs/1 read-write\n", ":2: invalid fileset name 'fs/1'"},
        {"agent a key:k\naccess b fs1 read-write\n", ":2: no agent line names 'b'"},
        {id + " fs1 read-write\n", ":1: '" + id + "' is neither 'agent' nor 'access'"},
    };
    for (auto& c : cases) {
        write_file(dir / "agents.conf", c.text);
        auto r = repl::AgentsFile::read(dir / "agents.conf");
        ASSERT_FALSE(r) << c.text;
        EXPECT_NE(r.error().message.find(c.expected), std::string::npos) << c.text << "\n" << r.error().message;
    }
    auto r = repl::AgentsFile::read(dir / "missing.conf");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("missing.conf"), std::string::npos) << r.error().message;
}

// --allowed-agents and --access, deprecated, read into the same model:
// any key the server holds is admitted, rules match identities.
TEST(AgentsFile, TheOlderTwoFilesReadAlike) {
    TempDir dir("agents");
    write_file(dir / "allowed", repl::format_node_id(kOld) + " laptop\n" + repl::format_node_id(kNew) + "\n");
    write_file(dir / "access", repl::format_node_id(kOld) + " home read-write\nkey:k * send-only\n");
    auto r = repl::AgentsFile::read_older(dir / "allowed", dir / "access");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->certificates.at(kOld), "laptop");
    EXPECT_EQ(r->certificates.at(kNew), "");
    EXPECT_EQ(r->key_name("anything"), "");
    EXPECT_EQ(r->access->of(kOld, "", "home", "laptop"), Access::read_write);
    EXPECT_EQ(r->access->of("", "k", "home", ""), Access::send_only);
    EXPECT_EQ(r->access->of(kNew, "", "home", ""), Access::none);
    auto none = repl::AgentsFile::read_older({}, {});
    ASSERT_TRUE(none);
    EXPECT_EQ(none->access, nullptr);  // everyone read-write
}

// The example the package installs in /etc/intermezzo reads as it says.
TEST(AgentsFile, TheExampleThePackageInstallsIsValid) {
    auto r = repl::AgentsFile::read(IZ_AGENTS_EXAMPLE);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->certificates.size(), 2u);
    for (auto& [fp, name] : r->certificates) EXPECT_EQ(name, "laptop");
    EXPECT_EQ(r->key_name("iz-psk1-266bb0066ac9825e"), "office");
    auto laptop = r->certificates.begin()->first;
    EXPECT_EQ(r->access->of(laptop, "", "home", "laptop"), Access::read_write);
    EXPECT_EQ(r->access->of(laptop, "", "public", "laptop"), Access::read_write);
    EXPECT_EQ(r->access->of("", "iz-psk1-266bb0066ac9825e", "home", "office"), Access::send_only);
    EXPECT_EQ(r->access->of("", "iz-psk1-0f5e2a7c91d4b388", "home", "kiosk"), Access::receive_only);
    EXPECT_EQ(r->access->of("", "iz-psk1-0f5e2a7c91d4b388", "other", "kiosk"), Access::none);
}

}  // namespace
}  // namespace iz::test
