#include "e2e_share_fixture.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <utility>

namespace fs = std::filesystem;

namespace iz::test::e2e {

void write_file(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

ShareFixture::ShareFixture(std::string tag) : tag_(std::move(tag)), keys_(tag_ + "-key") {}

void ShareFixture::SetUp() {
    agents_ns_ = must(Netns::make(tag_ + "-agents"));
    server_ns_ = must(Netns::make(tag_ + "-srv"));
    link_ = must(VethLink::make(*agents_ns_, *server_ns_, 1));
    key_ = make_key(keys_);
    server_ = std::make_unique<ServerHost>(*server_ns_, link_->address_b(), key_, tag_ + "-srv");
    server_->start(server_args());
    a_ = std::make_unique<AgentHost>(*agents_ns_, key_, tag_ + "-a");
    b_ = std::make_unique<AgentHost>(*agents_ns_, key_, tag_ + "-b");
}

void ShareFixture::TearDown() {
    if (HasFailure()) {
        auto base = (fs::path(::testing::TempDir()) /
                     fmt::format("iz-e2e-{}", ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                        .string();
        std::ofstream(base + ".a-log") << a_->log();
        std::ofstream(base + ".b-log") << b_->log();
        std::ofstream(base + ".server-log") << server_->log();
        std::error_code ec;
        for (auto& [from, suffix] : {std::pair{a_->journal(), ".a-journal"}, std::pair{b_->journal(), ".b-journal"},
                                     std::pair{server_journal(), ".server-journal"}}) {
            fs::remove_all(base + suffix, ec);
            fs::copy(from, base + suffix, fs::copy_options::recursive, ec);
        }
        fmt::print(stderr, "logs and journals kept in {}.{{a,b,server}}-{{log,journal}}\n", base);
    }
    a_.reset();
    b_.reset();
    server_.reset();
    link_.reset();
    server_ns_.reset();
    agents_ns_.reset();
}

void ShareFixture::start(AgentHost& agent, const std::string& id, const std::string& mode) {
    auto r = agent.start({server_->endpoint()}, {"--mode", mode, "--agent-id", id, "--fileset", kShareFileset});
    ASSERT_EQ(r.exit_code, 0) << r.err << "\n" << agent.log();
}

void ShareFixture::sync(AgentHost& agent) {
    auto r = agent.sync(60);
    ASSERT_EQ(r.exit_code, 0) << "izwatch sync: " << r.err << "\nagent log:\n"
                              << agent.log() << "\nserver log:\n"
                              << server_->log();
}

void ShareFixture::settle(int rounds) {
    for (int i = 0; i < rounds; ++i) sync(i % 2 == 0 ? *b_ : *a_);
}

fs::path ShareFixture::replica() const { return server_->replica(kShareFileset); }

fs::path ShareFixture::server_journal() const {
    return server_->root() / ".intermezzo" / ".filesets" / kShareFileset / "journal";
}

void ShareFixture::expect_all_equal(const std::string& when) {
    auto ma = manifest(a_->dir());
    auto mb = manifest(b_->dir());
    auto ms = manifest(replica());
    EXPECT_TRUE(ma == ms) << when << ": A differs from the server's replica:\n" << manifest_diff(ma, ms);
    EXPECT_TRUE(mb == ms) << when << ": B differs from the server's replica:\n" << manifest_diff(mb, ms);
    EXPECT_NE(ma.find("\n"), std::string::npos);  // not three empty trees
}

}  // namespace iz::test::e2e
