// Two real izwatch agents (A and B, one network namespace, each on its own
// ext4 image) and one real izreplicate in a namespace of its own, joined by
// veth: the set-up every shared-fileset e2e test starts from. The server is
// running; the agents are made but not started (start() does that, in the
// shared fileset). A failing test keeps the three logs and journals.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2e_hosts.hpp"

namespace iz::test::e2e {

// The fileset A and B share.
inline constexpr const char* kShareFileset = "team";

// Writes exactly `bytes` to `p`, keeping the mode of a file already there.
void write_file(const std::filesystem::path& p, const std::string& bytes);
// The bytes of `p`; empty if it cannot be read.
std::string read_file(const std::filesystem::path& p);
// `n` bytes that do not compress to nothing and differ per `seed`.
std::string pattern(size_t n, uint32_t seed);
// Takes every free block of the filesystem holding `dir` (root's reserve
// too: izwatch runs as root) into files under `dir`, which must lie
// outside the watched directory. Returns how many bytes it took.
uint64_t fill_filesystem(const std::filesystem::path& dir);
// The names of the entries of `dir` (one level) that start with `prefix`,
// sorted; none when `dir` cannot be read.
std::vector<std::string> names_starting(const std::filesystem::path& dir, const std::string& prefix);

class ShareFixture : public ::testing::Test {
protected:
    // `tag` names the namespaces, images and key of one test file, so that
    // two files' leftovers are told apart.
    explicit ShareFixture(std::string tag);

    void SetUp() override;
    void TearDown() override;
    // More izreplicate options for the server SetUp starts (--metrics, ...).
    virtual std::vector<std::string> server_args() const { return {}; }

    // izwatch start on `agent` in the shared fileset, as agent `id`.
    void start(AgentHost& agent, const std::string& id, const std::string& mode = "send-receive");
    // izwatch sync on `agent`, which must succeed.
    void sync(AgentHost& agent);
    // Both agents quiet and caught up with each other: `rounds` syncs, B's
    // first, then A's, B's... (three carry B's changes to A and what A then
    // did back to B; a fourth, what the server sent back to B, on to A).
    void settle(int rounds = 3);

    std::filesystem::path replica() const;
    std::filesystem::path server_journal() const;

    // A, B and the server's replica are equal by the full manifest.
    void expect_all_equal(const std::string& when);

    std::string tag_;
    TempDir keys_;
    std::filesystem::path key_;
    std::unique_ptr<Netns> agents_ns_, server_ns_;
    std::unique_ptr<VethLink> link_;
    std::unique_ptr<ServerHost> server_;
    std::unique_ptr<AgentHost> a_, b_;
};

}  // namespace iz::test::e2e
