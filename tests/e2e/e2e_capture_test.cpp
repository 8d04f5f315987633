// End to end, what a wiretap sees: tcpdump on the veth between the agent's
// namespace and the server's records every packet while the real izwatch
// ships a file of random bytes and a file of distinctive text to the real
// izreplicate. The capture holds none of either file's content nor their
// names. A control run the same way shows that the capture would have seen
// them: the test-only plaintext twins of both daemons (built with
// -DIZ_BENCH_PLAINTEXT=ON) carry frames in the clear after the handshake;
// without them, the same bytes are sent in the clear over the same veth.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "e2e_hosts.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace iz::test::e2e {
namespace {

std::string random_content(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// tcpdump on one end of a veth, writing every packet whole to a file.
class Capture {
public:
    Capture(const Netns& ns, const std::string& device, fs::path file)
        : file_(std::move(file)), err_(file_.string() + ".err"),
          proc_(ns.exec({"tcpdump", "-i", device, "-U", "-s", "0", "-n", "-w", file_.string(), "tcp"}), "", err_) {
        if (!eventually([&] { return slurp(err_).find("listening on") != std::string::npos; }, 10s))
            throw std::runtime_error("tcpdump did not start: " + slurp(err_));
    }

    // Stops the capture; the packets' bytes. A packet the kernel handed
    // over but tcpdump has not read yet is lost to SIGINT: a moment first.
    std::string stop() {
        std::this_thread::sleep_for(1s);
        proc_.signal(SIGINT);
        proc_.wait(10s);
        // An absence means nothing if packets went uncaptured.
        auto said = slurp(err_);
        auto number = [&](const std::string& what) {
            auto at = said.find(" packets " + what);
            if (at == std::string::npos) return -1L;
            auto begin = said.rfind('\n', at);
            return std::stol(said.substr(begin == std::string::npos ? 0 : begin + 1, at));
        };
        EXPECT_GT(number("captured"), 0) << said;
        EXPECT_EQ(number("captured"), number("received by filter")) << said;
        EXPECT_EQ(number("dropped by kernel"), 0) << said;
        return slurp(file_);
    }

private:
    fs::path file_, err_;
    ChildProcess proc_;
};

class Wiretap : public ::testing::Test {
protected:
    void SetUp() override {
        if (run_process({"sh", "-c", "command -v tcpdump"}).exit_code != 0)
            GTEST_SKIP() << "tcpdump is not installed (scripts/install-deps.sh installs it)";
        agent_ns_ = must(Netns::make("tapagent"));
        server_ns_ = must(Netns::make("tapsrv"));
        link_ = must(VethLink::make(*agent_ns_, *server_ns_, 9));
        key_ = make_key(keys_);
    }

    void TearDown() override {
        agent_.reset();
        server_.reset();
        link_.reset();
        server_ns_.reset();
        agent_ns_.reset();
    }

    // Runs the daemons (`twin`: "" or "-plaintext-bench"), writes the two
    // files, syncs, and returns what the veth carried meanwhile.
    std::string ship_and_capture(const std::string& twin, const std::string& tag) {
        server_ = std::make_unique<ServerHost>(*server_ns_, link_->address_b(), key_, "tap-dst-" + tag);
        server_->use_program("izreplicate" + twin);
        server_->start();
        agent_ = std::make_unique<AgentHost>(*agent_ns_, key_, "tap-src-" + tag);
        agent_->use_program("izwatch" + twin);
        Capture capture(*agent_ns_, link_->device_a(), keys_.path() / (tag + ".pcap"));
        // Never compressed, so that sent in the clear the bytes show as they are.
        auto r = agent_->start({server_->endpoint()}, {"--compress", "never"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        write_file(agent_->dir() / kName, content_);
        write_file(agent_->dir() / (std::string(kName) + ".txt"), text_);
        auto s = agent_->sync(90);
        EXPECT_EQ(s.exit_code, 0) << s.err << "\n" << agent_->log() << "\n" << server_->log();
        EXPECT_EQ(read_file(server_->replica("data") / kName), content_);
        auto wire = capture.stop();
        agent_->stop();
        agent_.reset();
        server_.reset();
        return wire;
    }

    // How many of 16 samples of 32 bytes of the content the capture holds.
    size_t samples_seen(const std::string& wire) const {
        size_t seen = 0;
        for (size_t i = 0; i < 16; ++i)
            if (wire.find(content_.substr(i * (content_.size() - 32) / 15, 32)) != std::string::npos) ++seen;
        return seen;
    }

    static constexpr const char* kName = "tap-distinctive-name-7d3f0b";
    // Random bytes do not compress; and text that would.
    const std::string content_ = random_content(256 * 1024, 5151);
    const std::string text_ = [] {
        std::string t;
        for (int i = 0; i < 2000; ++i) t += fmt::format("line {} of the distinctive plaintext qv7k\n", i);
        return t;
    }();
    TempDir keys_{"e2e-tap"};
    fs::path key_;
    std::unique_ptr<Netns> agent_ns_, server_ns_;
    std::unique_ptr<VethLink> link_;
    std::unique_ptr<ServerHost> server_;
    std::unique_ptr<AgentHost> agent_;
};

TEST_F(Wiretap, ACaptureOnTheVethHoldsNoneOfAFilesContentNorItsName) {
    auto wire = ship_and_capture("", "tls");
    ASSERT_GT(wire.size(), content_.size());  // the content did travel, somehow
    EXPECT_EQ(wire.find(kName), std::string::npos);
    EXPECT_EQ(wire.find("distinctive plaintext qv7k"), std::string::npos);
    EXPECT_EQ(samples_seen(wire), 0u);

    // The control: the same capture sees the same bytes sent in the clear.
    std::string control;
    if (fs::exists(bin_path("izwatch-plaintext-bench")) && fs::exists(bin_path("izreplicate-plaintext-bench"))) {
        control = ship_and_capture("-plaintext-bench", "plain");
    } else {
        // Without the twins: the bytes written to a TCP connection across
        // the same veth (a server that refuses them still lets them cross).
        server_ = std::make_unique<ServerHost>(*server_ns_, link_->address_b(), key_, "tap-dst-raw");
        server_->start();
        auto bytes = keys_.path() / "clear";
        write_file(bytes, std::string(kName) + text_ + content_);
        Capture capture(*agent_ns_, link_->device_a(), keys_.path() / "raw.pcap");
        run_process(agent_ns_->exec({"bash", "-c",
                                     fmt::format("exec 3<>/dev/tcp/{}/{}; cat {} >&3; sleep 1", link_->address_b(),
                                                 kServerPort, bytes.string())}),
                    {}, 30s);
        control = capture.stop();
        server_.reset();
    }
    EXPECT_NE(control.find(kName), std::string::npos);
    EXPECT_NE(control.find("distinctive plaintext qv7k"), std::string::npos);
    EXPECT_GE(samples_seen(control), 12u) << "a 32-byte sample may straddle two packets, not most of them";
}

}  // namespace
}  // namespace iz::test::e2e
