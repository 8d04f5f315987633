#include "replicator/wire/auth.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <fmt/format.h>

#include <cctype>

#include "private_file.hpp"

namespace iz::replicator {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void append_field(std::string& out, std::string_view field) {
    uint32_t n = static_cast<uint32_t>(field.size());
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((n >> s) & 0xff));
    out.append(field);
}

}  // namespace

Result<SharedKey> load_key_file(const std::filesystem::path& path) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer forever instead of reaching the "not a regular file" refusal.
    // It changes nothing for the regular file that is read below.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return fail(sys_error("open key file", path.string(), errno));
    struct stat st{};
    if (::fstat(fd, &st) != 0) {
        int err = errno;
        ::close(fd);
        return fail(sys_error("stat key file", path.string(), err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return fail(make_error(fmt::format("key file '{}' is not a regular file", path.string())));
    }
    if (st.st_mode & 077) {
        ::close(fd);
        return fail(make_error(fmt::format("key file '{}' is accessible by group or others (mode {:04o}); "
                                           "run: chmod 600 '{}'",
                                           path.string(), st.st_mode & 07777, path.string())));
    }
    char buf[256];
    ssize_t n = ::read(fd, buf, sizeof buf);
    int err = errno;
    ::close(fd);
    if (n < 0) return fail(sys_error("read key file", path.string(), err));
    std::string_view text(buf, static_cast<size_t>(n));
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    if (text.size() != kKeyBytes * 2)
        return fail(make_error(fmt::format("key file '{}' must hold exactly {} hex digits (found {} characters); "
                                           "create one with: izreplicate keygen FILE",
                                           path.string(), kKeyBytes * 2, text.size())));
    SharedKey key;
    for (size_t i = 0; i < text.size(); i += 2) {
        int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);
        if (hi < 0 || lo < 0)
            return fail(make_error(fmt::format("key file '{}' contains a character that is not a hex digit at offset {}",
                                               path.string(), hi < 0 ? i : i + 1)));
        key.bytes.push_back(static_cast<char>(hi << 4 | lo));
    }
    return key;
}

Result<std::string> random_bytes(size_t n) {
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
        return fail(make_error("RAND_bytes failed: the system random generator is unavailable"));
    return out;
}

Status write_key_file(const std::filesystem::path& path) {
    auto raw = random_bytes(kKeyBytes);
    if (!raw) return fail(raw.error());
    std::string text;
    for (unsigned char c : *raw) text += fmt::format("{:02x}", c);
    text += '\n';
    // The key is given to the other end at once: without the directory's
    // fsync, a crash could lose the file's name, and with it the key both
    // ends were told to use.
    return write_private_file(path, text, "key file");
}

std::string auth_proof(const SharedKey& key, ProofRole role, std::string_view client_nonce,
                       std::string_view server_nonce, std::string_view agent_id, std::string_view fileset) {
    std::string msg;
    append_field(msg, role == ProofRole::server ? "intermezzo/1 server proof" : "intermezzo/1 client proof");
    append_field(msg, client_nonce);
    append_field(msg, server_nonce);
    append_field(msg, agent_id);
    append_field(msg, fileset);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.bytes.data(), static_cast<int>(key.bytes.size()),
         reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len);
    return std::string(reinterpret_cast<char*>(mac), len);
}

bool proofs_equal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace iz::replicator
