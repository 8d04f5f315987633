// Shared-key files and the HMAC proofs of the handshake.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <future>

#include "replicator/wire/auth.hpp"
#include "support/fsync_probe.hpp"
#include "support/tree.hpp"

namespace iz::replicator {
namespace {

namespace fs = std::filesystem;
using test::read_file;
using test::write_file;

const std::string kHexKey = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

TEST(AuthKeyFile, WrittenKeyLoadsBack) {
    test::TempDir dir("auth");
    auto path = dir / "key";
    ASSERT_TRUE(write_key_file(path));
    struct stat st{};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    std::string text = read_file(path);
    EXPECT_EQ(text.size(), 65u);  // 64 hex digits and a newline
    auto key = load_key_file(path);
    ASSERT_TRUE(key) << key.error().message;
    ASSERT_EQ(key->bytes.size(), kKeyBytes);
    // The bytes are the hex text decoded.
    std::string hex;
    for (unsigned char c : key->bytes) hex += fmt::format("{:02x}", c);
    EXPECT_EQ(hex + "\n", text);
}

// The key file's name reaches the disk: its directory is synced after it
// is written. When that sync fails, the call fails and leaves no file, so
// that it can be run again.
TEST(AuthKeyFile, TheDirectoryIsSyncedAfterTheKeyIsWritten) {
    test::TempDir dir("auth");
    fs::create_directories(dir / "keys");
    {
        test::FsyncProbe probe;
        ASSERT_TRUE(write_key_file(dir / "keys" / "key"));
        ASSERT_EQ(probe.synced().size(), 1u);
        EXPECT_EQ(test::FsyncProbe::index_of(dir / "keys"), 0);
    }
    test::FsyncProbe failing(test::FsyncProbe::Fail::dirs);
    auto st = write_key_file(dir / "keys" / "other");
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("fsync directory"), std::string::npos) << st.error().message;
    EXPECT_FALSE(fs::exists(dir / "keys" / "other"));
}

TEST(AuthKeyFile, TwoKeysDiffer) {
    test::TempDir dir("auth");
    ASSERT_TRUE(write_key_file(dir / "a"));
    ASSERT_TRUE(write_key_file(dir / "b"));
    EXPECT_NE(load_key_file(dir / "a")->bytes, load_key_file(dir / "b")->bytes);
}

TEST(AuthKeyFile, ExistingFileIsNotOverwritten) {
    test::TempDir dir("auth");
    auto path = dir / "key";
    write_file(path, "precious\n", 0600);
    EXPECT_FALSE(write_key_file(path));
    EXPECT_EQ(read_file(path), "precious\n");
    // Not through a symlink either.
    fs::create_symlink(dir / "elsewhere", dir / "link");
    EXPECT_FALSE(write_key_file(dir / "link"));
    EXPECT_FALSE(fs::exists(dir / "elsewhere"));
}

TEST(AuthKeyFile, UpperAndLowerCaseAndWhitespaceAccepted) {
    test::TempDir dir("auth");
    write_file(dir / "key", "  \n" + kHexKey + "\n\n", 0600);
    auto key = load_key_file(dir / "key");
    ASSERT_TRUE(key) << key.error().message;
    EXPECT_EQ(static_cast<unsigned char>(key->bytes[0]), 0x00);
    EXPECT_EQ(static_cast<unsigned char>(key->bytes[1]), 0x11);
    EXPECT_EQ(static_cast<unsigned char>(key->bytes[31]), 0xff);
}

TEST(AuthKeyFile, GroupOrOtherAccessRefused) {
    test::TempDir dir("auth");
    for (unsigned mode : {0640u, 0604u, 0620u, 0602u, 0644u, 0660u, 0666u}) {
        auto path = dir / fmt::format("key{:o}", mode);
        write_file(path, kHexKey + "\n", mode);
        auto key = load_key_file(path);
        ASSERT_FALSE(key) << fmt::format("{:o}", mode);
        EXPECT_NE(key.error().message.find("chmod 600"), std::string::npos) << key.error().message;
    }
    write_file(dir / "ok", kHexKey, 0400);
    EXPECT_TRUE(load_key_file(dir / "ok"));
}

TEST(AuthKeyFile, WrongLengthOrNonHexRefused) {
    test::TempDir dir("auth");
    std::vector<std::string> bad = {
        "",
        kHexKey.substr(0, 63),
        kHexKey + "0",
        kHexKey + kHexKey,
        kHexKey.substr(0, 62) + "zz",
        kHexKey.substr(0, 62) + "0x",
        kHexKey.substr(0, 31) + " " + kHexKey.substr(32),
        kHexKey.substr(0, 10) + "-" + kHexKey.substr(11),
    };
    for (size_t i = 0; i < bad.size(); ++i) {
        auto path = dir / fmt::format("k{}", i);
        write_file(path, bad[i], 0600);
        auto key = load_key_file(path);
        EXPECT_FALSE(key) << "'" << bad[i] << "' was accepted";
    }
}

TEST(AuthKeyFile, NonRegularOrMissingRefused) {
    test::TempDir dir("auth");
    EXPECT_FALSE(load_key_file(dir / "missing"));
    fs::create_directory(dir / "d");
    fs::permissions(dir / "d", fs::perms::owner_all);
    EXPECT_FALSE(load_key_file(dir / "d"));
    write_file(dir / "real", kHexKey, 0600);
    fs::create_symlink(dir / "real", dir / "link");
    EXPECT_FALSE(load_key_file(dir / "link"));
}

TEST(AuthKeyFile, FifoRefusedWithoutBlocking) {
    test::TempDir dir("auth");
    auto fifo = dir / "fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    auto pending = std::async(std::launch::async, [&] { return load_key_file(fifo); });
    bool finished = pending.wait_for(std::chrono::seconds(3)) == std::future_status::ready;
    if (!finished) {
        // Release the blocked open() so the test ends, then report.
        int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        pending.wait();
        if (w >= 0) ::close(w);
    }
    EXPECT_TRUE(finished) << "load_key_file blocked on a FIFO";
    auto key = pending.get();
    ASSERT_FALSE(key);
    EXPECT_NE(key.error().message.find("not a regular file"), std::string::npos) << key.error().message;
}

SharedKey key_of(char fill) { return SharedKey{std::string(kKeyBytes, fill)}; }

TEST(AuthProof, DiffersByRoleNonceKeyAndIdentity) {
    const std::string cn(32, 'c'), sn(32, 's');
    auto k = key_of('k');
    auto base = auth_proof(k, ProofRole::client, cn, sn, "agent", "fs");
    EXPECT_EQ(base.size(), 32u);
    EXPECT_EQ(base, auth_proof(k, ProofRole::client, cn, sn, "agent", "fs"));  // deterministic
    EXPECT_NE(base, auth_proof(k, ProofRole::server, cn, sn, "agent", "fs"));
    EXPECT_NE(base, auth_proof(k, ProofRole::client, std::string(32, 'C'), sn, "agent", "fs"));
    EXPECT_NE(base, auth_proof(k, ProofRole::client, cn, std::string(32, 'S'), "agent", "fs"));
    EXPECT_NE(base, auth_proof(k, ProofRole::client, sn, cn, "agent", "fs"));  // nonces swapped
    EXPECT_NE(base, auth_proof(key_of('K'), ProofRole::client, cn, sn, "agent", "fs"));
    EXPECT_NE(base, auth_proof(k, ProofRole::client, cn, sn, "agent2", "fs"));
    EXPECT_NE(base, auth_proof(k, ProofRole::client, cn, sn, "agent", "fs2"));
    // Length prefixes keep field boundaries apart.
    EXPECT_NE(auth_proof(k, ProofRole::client, cn, sn, "ab", "c"), auth_proof(k, ProofRole::client, cn, sn, "a", "bc"));
}

TEST(AuthProof, ProofsEqual) {
    std::string a(32, 'x');
    EXPECT_TRUE(proofs_equal(a, a));
    std::string b = a;
    b[31] = 'y';
    EXPECT_FALSE(proofs_equal(a, b));
    b = a;
    b[0] = 'y';
    EXPECT_FALSE(proofs_equal(a, b));
    EXPECT_FALSE(proofs_equal(a, a.substr(0, 31)));
    EXPECT_FALSE(proofs_equal(a, ""));
    EXPECT_TRUE(proofs_equal("", ""));
}

TEST(AuthRandom, BytesAreFreshAndSized) {
    auto a = random_bytes(32), b = random_bytes(32);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->size(), 32u);
    EXPECT_NE(*a, *b);
}

}  // namespace
}  // namespace iz::replicator
