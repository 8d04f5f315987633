#include "replicator/wire/identity.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <fmt/format.h>

#include <memory>

#include "private_file.hpp"

namespace iz::replicator {

namespace {

template <class T, void (*F)(T*)>
struct Free {
    void operator()(T* p) const { F(p); }
};
using PKey = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Free<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;

constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

std::string bio_text(BIO* b) {
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    return std::string(data, static_cast<size_t>(n));
}

Result<std::string> fingerprint_of_pem(const std::string& cert_pem) {
    Bio b(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
    Cert cert(b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!cert) return fail(make_error("not a PEM certificate"));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (X509_digest(cert.get(), EVP_sha256(), md, &len) != 1) return fail(make_error("cannot hash the certificate"));
    return std::string(reinterpret_cast<char*>(md), len);
}

// Reads a file that must be private: a regular file nobody but its owner
// may read or write.
Result<std::string> read_private(const std::filesystem::path& path, std::string_view what) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return fail(sys_error(fmt::format("open {}", what), path.string(), errno));
    struct stat st{};
    if (::fstat(fd, &st) != 0) {
        int err = errno;
        ::close(fd);
        return fail(sys_error(fmt::format("stat {}", what), path.string(), err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return fail(make_error(fmt::format("{} '{}' is not a regular file", what, path.string())));
    }
    if (st.st_mode & 077) {
        ::close(fd);
        return fail(make_error(fmt::format("{} '{}' is accessible by group or others (mode {:04o}); run: chmod 600 '{}'",
                                           what, path.string(), st.st_mode & 07777, path.string())));
    }
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            int err = errno;
            ::close(fd);
            return fail(sys_error(fmt::format("read {}", what), path.string(), err));
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > (1u << 20)) {
            ::close(fd);
            return fail(make_error(fmt::format("{} '{}' is larger than 1 MiB", what, path.string())));
        }
    }
    ::close(fd);
    return out;
}

}  // namespace

std::string format_node_id(std::string_view fp) {
    std::string plain;
    uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : fp) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 5) {
            plain.push_back(kBase32[(acc >> (bits - 5)) & 31]);
            bits -= 5;
        }
    }
    if (bits > 0) plain.push_back(kBase32[(acc << (5 - bits)) & 31]);
    std::string out;
    for (size_t i = 0; i < plain.size(); ++i) {
        if (i > 0 && i % 4 == 0) out.push_back('-');
        out.push_back(plain[i]);
    }
    return out;
}

Result<std::string> parse_node_id(std::string_view text) {
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    size_t digits = 0;
    for (char c : text) {
        if (c == '-' || c == ' ') continue;
        char u = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
        const char* at = u ? std::char_traits<char>::find(kBase32, 32, u) : nullptr;
        if (!at)
            return fail(make_error(fmt::format("node ID '{}' holds '{}', which is not one of A-Z 2-7", text, c)));
        acc = (acc << 5) | static_cast<uint32_t>(at - kBase32);
        bits += 5;
        ++digits;
        if (bits >= 8) {
            out.push_back(static_cast<char>((acc >> (bits - 8)) & 0xff));
            bits -= 8;
        }
    }
    if (digits != 52 || out.size() != 32)
        return fail(make_error(fmt::format("node ID '{}' has {} base32 digits where a node ID has 52", text, digits)));
    return out;
}

Result<NodeIdentity> new_identity(const std::filesystem::path& dir, const std::string& name, IdentityValidity validity) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail(Error{fmt::format("create identity directory '{}': {}", dir.string(), ec.message()), ec.value()});
    if (::chmod(dir.c_str(), 0700) != 0) return fail(sys_error("chmod identity directory", dir.string(), errno));
    auto key_path = dir / kIdentityKeyFile, cert_path = dir / kIdentityCertFile;
    for (auto& p : {key_path, cert_path})
        if (std::filesystem::exists(p, ec))
            return fail(make_error(fmt::format("'{}' exists already: an identity is never overwritten", p.string())));

    PKey key(EVP_EC_gen("P-256"));
    if (!key) return fail(make_error("cannot make an EC P-256 key"));
    Cert cert(X509_new());
    if (!cert) return fail(make_error("cannot make a certificate"));
    X509_set_version(cert.get(), 2);
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) return fail(make_error("RAND_bytes failed: no random serial number"));
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_clear_bit(bn, 127);  // positive
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), static_cast<long>(validity.not_before.count()));
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(validity.not_after.count()));
    X509_NAME* subject = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert.get(), subject);
    X509_set_pubkey(cert.get(), key.get());
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return fail(make_error("cannot sign the certificate"));

    Bio kb(BIO_new(BIO_s_mem())), cb(BIO_new(BIO_s_mem()));
    if (!kb || !cb || PEM_write_bio_PrivateKey(kb.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
        PEM_write_bio_X509(cb.get(), cert.get()) != 1)
        return fail(make_error("cannot write the key or the certificate as PEM"));
    NodeIdentity id{bio_text(kb.get()), bio_text(cb.get()), {}};
    auto fp = fingerprint_of_pem(id.cert_pem);
    if (!fp) return fail(fp.error());
    id.fingerprint = *fp;
    if (auto ok = write_private_file(key_path, id.key_pem, "identity key"); !ok) return fail(ok.error());
    if (auto ok = write_private_file(cert_path, id.cert_pem, "identity certificate"); !ok) {
        ::unlink(key_path.c_str());
        return fail(ok.error());
    }
    return id;
}

Result<NodeIdentity> load_identity(const std::filesystem::path& dir) {
    auto key = read_private(dir / kIdentityKeyFile, "identity key");
    if (!key) return fail(key.error());
    auto cert = read_private(dir / kIdentityCertFile, "identity certificate");
    if (!cert) return fail(cert.error());
    auto fp = fingerprint_of_pem(*cert);
    if (!fp) return fail(make_error(fmt::format("'{}': {}", (dir / kIdentityCertFile).string(), fp.error().message)));
    Bio kb(BIO_new_mem_buf(key->data(), static_cast<int>(key->size())));
    PKey pkey(kb ? PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!pkey) return fail(make_error(fmt::format("'{}' is not a PEM private key", (dir / kIdentityKeyFile).string())));
    Bio cbio(BIO_new_mem_buf(cert->data(), static_cast<int>(cert->size())));
    Cert x(cbio ? PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!x || X509_check_private_key(x.get(), pkey.get()) != 1)
        return fail(make_error(fmt::format("the key in '{}' does not belong to the certificate beside it", dir.string())));
    return NodeIdentity{std::move(*key), std::move(*cert), std::move(*fp)};
}

}  // namespace iz::replicator
