#include "e2e_share_fixture.hpp"

#include <algorithm>

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

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

// Bytes that do not compress to nothing and differ per file.
std::string pattern(size_t n, uint32_t seed) {
    std::string s(n, '\0');
    uint32_t x = seed * 2654435761u + 1;
    for (auto& c : s) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        c = static_cast<char>(x);
    }
    return s;
}

// Takes every free block of the filesystem holding `dir` (root's reserve
// too: izwatch runs as root) into files under `dir`, which must lie
// outside the watched directory. Returns how many bytes it took.
std::vector<std::string> names_starting(const fs::path& dir, const std::string& prefix) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(dir, ec)) {
        auto n = e.path().filename().string();
        if (n.starts_with(prefix)) out.push_back(n);
    }
    std::sort(out.begin(), out.end());
    return out;
}

uint64_t fill_filesystem(const fs::path& dir) {
    fs::create_directories(dir);
    uint64_t taken = 0;
    for (int i = 0;; ++i) {
        struct statvfs sv {};
        if (::statvfs(dir.c_str(), &sv) != 0) break;
        uint64_t free_bytes = uint64_t{sv.f_bfree} * sv.f_frsize;
        if (free_bytes < 4096 || i > 64) break;
        int fd = ::open((dir / fmt::format("fill{}", i)).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0) break;
        // Halves until a size fits (the extent tree takes blocks too).
        for (uint64_t want = free_bytes; want >= 4096; want /= 2)
            if (::fallocate(fd, 0, 0, static_cast<off_t>(want)) == 0) {
                taken += want;
                break;
            }
        ::close(fd);
    }
    // The last blocks: writes until the filesystem says it is full, made
    // durable so that nothing freed later (a journal commit) gives space.
    int fd = ::open((dir / "last").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        std::string block(4096, 'f');
        for (int round = 0; round < 3; ++round) {
            while (::write(fd, block.data(), block.size()) > 0) taken += block.size();
            ::fsync(fd);
            ::sync();
        }
        ::close(fd);
    }
    ::sync();
    return taken;
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
