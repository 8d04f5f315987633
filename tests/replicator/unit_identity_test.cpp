// Node identities: the node ID's readable form, and the files' modes.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "replicator/wire/identity.hpp"
#include "support/tree.hpp"

namespace iz::replicator {
namespace {

TEST(NodeId, FormatsAsThirteenGroupsOfFourAndParsesBackInAnyCase) {
    std::string fp;
    for (int i = 0; i < 32; ++i) fp.push_back(static_cast<char>(i * 7 + 3));
    auto id = format_node_id(fp);
    ASSERT_EQ(id.size(), 52u + 12u);
    for (size_t i = 4; i < id.size(); i += 5) EXPECT_EQ(id[i], '-') << id;
    EXPECT_EQ(format_node_id(std::string(32, '\0')).substr(0, 9), "AAAA-AAAA");
    auto back = parse_node_id(id);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, fp);
    std::string lower, bare;
    for (char c : id) {
        lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
        if (c != '-') bare.push_back(c);
    }
    EXPECT_EQ(parse_node_id(lower).value(), fp);
    EXPECT_EQ(parse_node_id(bare).value(), fp);
}

TEST(NodeId, ATypoIsRefusedSayingWhat) {
    std::string id = format_node_id(std::string(32, '\x5a'));
    auto shorter = parse_node_id(id.substr(0, id.size() - 1));
    ASSERT_FALSE(shorter);
    EXPECT_NE(shorter.error().message.find("51 base32 digits"), std::string::npos) << shorter.error().message;
    auto wrong = parse_node_id("0" + id.substr(1));
    ASSERT_FALSE(wrong);
    EXPECT_NE(wrong.error().message.find("holds '0'"), std::string::npos) << wrong.error().message;
}

TEST(Identity, IsWrittenPrivateLoadsBackAndIsNeverOverwritten) {
    test::TempDir dir("identity");
    auto made = new_identity(dir / "id", "node-a");
    ASSERT_TRUE(made) << made.error().message;
    for (auto name : {kIdentityKeyFile, kIdentityCertFile}) {
        struct stat st{};
        ASSERT_EQ(::stat((dir / "id" / std::string(name)).c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 07777, 0600u) << name;
    }
    auto loaded = load_identity(dir / "id");
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_EQ(loaded->fingerprint, made->fingerprint);
    auto again = new_identity(dir / "id", "node-a");
    ASSERT_FALSE(again);
    EXPECT_NE(again.error().message.find("never overwritten"), std::string::npos);
    // Two identities differ.
    auto other = new_identity(dir / "other", "node-a");
    ASSERT_TRUE(other);
    EXPECT_NE(other->fingerprint, made->fingerprint);
}

TEST(Identity, AFileOthersMayReadIsRefusedSayingHowToFixIt) {
    test::TempDir dir("identity");
    ASSERT_TRUE(new_identity(dir / "id", "node-a"));
    for (auto name : {kIdentityKeyFile, kIdentityCertFile}) {
        auto path = dir / "id" / std::string(name);
        ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
        auto r = load_identity(dir / "id");
        ASSERT_FALSE(r) << name;
        EXPECT_NE(r.error().message.find("accessible by group or others (mode 0640); run: chmod 600"), std::string::npos)
            << r.error().message;
        ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
    }
    EXPECT_TRUE(load_identity(dir / "id"));
}

TEST(Identity, AKeyThatIsNotTheCertificatesIsRefused) {
    test::TempDir dir("identity");
    ASSERT_TRUE(new_identity(dir / "a", "a"));
    ASSERT_TRUE(new_identity(dir / "b", "b"));
    std::filesystem::remove(dir / "a" / std::string(kIdentityKeyFile));
    std::filesystem::copy_file(dir / "b" / std::string(kIdentityKeyFile), dir / "a" / std::string(kIdentityKeyFile));
    auto r = load_identity(dir / "a");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("does not belong to the certificate"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace iz::replicator
