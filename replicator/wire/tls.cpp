#include "replicator/wire/tls.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <fmt/format.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

namespace iz::replicator {

namespace ssl = boost::asio::ssl;

namespace {

// TLS_AES_128_GCM_SHA256. Every suite offered hashes with SHA-256, the
// hash a PSK is bound to: a server choosing another suite could not use it.
constexpr unsigned char kPskCipher[] = {0x13, 0x01};
constexpr const char* kSuites = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";

// The context and what its callbacks need, freed together.
struct PskContext {
    explicit PskContext(ssl::context::method m) : ctx(m) {}
    ssl::context ctx;
    TlsRole role = TlsRole::client;
    std::vector<SharedKey> keys;
    std::vector<std::string> identities;  // psk_identity(keys[i]); the client hands out a pointer into one
    std::shared_ptr<PeerPins> pins;
};

int peer_index();

std::string asn1_time_text(const ASN1_TIME* t) {
    BIO* b = BIO_new(BIO_s_mem());
    if (!b) return "?";
    ASN1_TIME_print(b, t);
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(b);
    return out;
}

// Replaces OpenSSL's chain verification: a node's certificate is its own
// issuer, and what makes it good is its fingerprint being pinned (the
// handshake's CertificateVerify proves the peer holds its key).
int verify_pinned(X509_STORE_CTX* sctx, void* arg) {
    auto* pc = static_cast<PskContext*>(arg);
    X509* cert = X509_STORE_CTX_get0_cert(sctx);
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* peer = ssl ? static_cast<TlsPeer*>(SSL_get_ex_data(ssl, peer_index())) : nullptr;
    auto refuse = [&](int err, std::string why) {
        X509_STORE_CTX_set_error(sctx, err);
        if (peer) peer->cert_problem = std::move(why);
        return 0;
    };
    if (!cert) return refuse(X509_V_ERR_UNSPECIFIED, "no certificate");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return refuse(X509_V_ERR_UNSPECIFIED, "cannot hash the certificate");
    std::string fp(reinterpret_cast<char*>(md), len);
    std::string id = format_node_id(fp);
    if (peer) peer->fingerprint = fp;
    const char* whose = pc->role == TlsRole::server ? "the agent's" : "the server's";
    std::optional<std::string> name = pc->pins ? pc->pins->name_of(fp) : std::nullopt;
    if (!name)
        return refuse(X509_V_ERR_CERT_REJECTED,
                      pc->role == TlsRole::server
                          ? fmt::format("the agent's certificate {} is not among the allowed agents", id)
                          : fmt::format("the server's certificate is {}, not the one pinned for it", id));
    if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0)
        return refuse(X509_V_ERR_CERT_NOT_YET_VALID, fmt::format("{} certificate {} is not valid before {}", whose, id,
                                                                 asn1_time_text(X509_get0_notBefore(cert))));
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
        return refuse(X509_V_ERR_CERT_HAS_EXPIRED,
                      fmt::format("{} certificate {} expired on {}", whose, id, asn1_time_text(X509_get0_notAfter(cert))));
    if (peer) {
        peer->cert_accepted = true;
        peer->cert_name = *name;
    }
    return 1;
}

int ctx_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

int peer_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

PskContext* psk_context(SSL* ssl) {
    return static_cast<PskContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index()));
}

SSL_SESSION* psk_session(SSL* ssl, const SharedKey& key) {
    const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kPskCipher);
    if (!cipher) return nullptr;
    SSL_SESSION* s = SSL_SESSION_new();
    if (!s) return nullptr;
    if (SSL_SESSION_set1_master_key(s, reinterpret_cast<const unsigned char*>(key.bytes.data()), key.bytes.size()) != 1 ||
        SSL_SESSION_set_cipher(s, cipher) != 1 || SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) != 1) {
        SSL_SESSION_free(s);
        return nullptr;
    }
    return s;
}

int use_psk(SSL* ssl, const EVP_MD* md, const unsigned char** id, size_t* idlen, SSL_SESSION** sess) {
    *sess = nullptr;
    auto* pc = psk_context(ssl);
    if (!pc || pc->keys.empty()) return 0;
    const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kPskCipher);
    if (!cipher) return 0;
    // After a HelloRetryRequest the server has fixed the hash: a PSK bound
    // to another cannot be offered (none of our suites differs, though).
    if (md && EVP_MD_get_type(md) != EVP_MD_get_type(SSL_CIPHER_get_handshake_digest(cipher))) return 1;
    SSL_SESSION* s = psk_session(ssl, pc->keys.front());
    if (!s) return 0;
    *id = reinterpret_cast<const unsigned char*>(pc->identities.front().data());
    *idlen = pc->identities.front().size();
    *sess = s;
    return 1;
}

int find_psk(SSL* ssl, const unsigned char* identity, size_t len, SSL_SESSION** sess) {
    *sess = nullptr;
    auto* pc = psk_context(ssl);
    if (!pc) return 0;
    std::string_view offered(reinterpret_cast<const char*>(identity), len);
    auto* peer = static_cast<TlsPeer*>(SSL_get_ex_data(ssl, peer_index()));
    if (peer) peer->offered_identity.assign(offered.substr(0, 128));
    for (size_t i = 0; i < pc->keys.size(); ++i) {
        if (pc->identities[i] != offered) continue;
        if (peer) {
            peer->identity_known = true;
            peer->key_index = static_cast<int>(i);
        }
        *sess = psk_session(ssl, pc->keys[i]);
        return *sess ? 1 : 0;
    }
    // Unknown: no PSK; with no certificate to fall back on, the handshake fails.
    return 1;
}

std::string openssl_errors() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "unknown OpenSSL error" : out;
}

}  // namespace

std::string psk_identity(const SharedKey& key) {
    static constexpr std::string_view kLabel = "intermezzo psk identity 1";
    std::string msg(kLabel);
    msg += key.bytes;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), digest);
    std::string out = "iz-psk1-";
    for (int i = 0; i < 8; ++i) out += fmt::format("{:02x}", digest[i]);
    return out;
}

Result<std::shared_ptr<ssl::context>> make_psk_context(TlsRole role, std::vector<SharedKey> keys) {
    if (keys.empty()) return fail(make_error("TLS: no shared key given"));
    return make_tls_context(role, TlsSettings{std::move(keys), std::nullopt, nullptr});
}

Result<std::shared_ptr<ssl::context>> make_tls_context(TlsRole role, TlsSettings settings) {
    auto& keys = settings.keys;
    bool certificates = settings.identity && settings.pins;
    if (keys.empty() && !certificates)
        return fail(make_error("TLS: neither a shared key nor an identity and the peers it accepts"));
    std::shared_ptr<PskContext> pc;
    try {
        pc = std::make_shared<PskContext>(role == TlsRole::client ? ssl::context::tls_client : ssl::context::tls_server);
    } catch (const std::exception& e) {
        return fail(make_error(fmt::format("TLS: cannot make a context: {}", e.what())));
    }
    pc->role = role;
    pc->pins = settings.pins;
    // A client showing its certificate offers no key: it authenticates one
    // way only, the one its server was pinned with.
    if (role == TlsRole::client && certificates) keys.clear();
    for (auto& k : keys) pc->identities.push_back(psk_identity(k));
    pc->keys = std::move(keys);
    SSL_CTX* ctx = pc->ctx.native_handle();
    ERR_clear_error();
    bool ok = SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 &&
              SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1 && SSL_CTX_set_ciphersuites(ctx, kSuites) == 1 &&
              SSL_CTX_set_ex_data(ctx, ctx_index(), pc.get()) == 1;
    if (!ok) return fail(make_error("TLS: cannot configure the context: " + openssl_errors()));
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (settings.identity) {
        const auto& id = *settings.identity;
        BIO* cb = BIO_new_mem_buf(id.cert_pem.data(), static_cast<int>(id.cert_pem.size()));
        X509* cert = cb ? PEM_read_bio_X509(cb, nullptr, nullptr, nullptr) : nullptr;
        BIO* kb = BIO_new_mem_buf(id.key_pem.data(), static_cast<int>(id.key_pem.size()));
        EVP_PKEY* key = kb ? PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr) : nullptr;
        bool loaded = cert && key && SSL_CTX_use_certificate(ctx, cert) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
                      SSL_CTX_check_private_key(ctx) == 1;
        X509_free(cert);
        EVP_PKEY_free(key);
        BIO_free(cb);
        BIO_free(kb);
        if (!loaded) return fail(make_error("TLS: cannot use the identity's certificate and key: " + openssl_errors()));
    }
    // Without pins no certificate passes: a server that shows one instead
    // of using the key fails verification.
    SSL_CTX_set_cert_verify_callback(ctx, verify_pinned, pc.get());
    if (role == TlsRole::client) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        if (!pc->keys.empty()) SSL_CTX_set_psk_use_session_callback(ctx, use_psk);
    } else {
        SSL_CTX_set_verify(ctx, certificates ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE, nullptr);
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);  // AES-GCM: in hardware on most CPUs
        // OpenSSL counts an external PSK as a resumed session, and refuses
        // one on a server that verifies peers unless sessions have a context.
        static constexpr unsigned char kSessionContext[] = "intermezzo";
        SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
        if (!pc->keys.empty()) SSL_CTX_set_psk_find_session_callback(ctx, find_psk);
    }
    return std::shared_ptr<ssl::context>(pc, &pc->ctx);
}

void TlsPeer::attach(SSL* ssl) { SSL_set_ex_data(ssl, peer_index(), this); }

void TlsPeer::detach(SSL* ssl) { SSL_set_ex_data(ssl, peer_index(), nullptr); }

bool established(SSL* ssl, const TlsPeer* peer) {
    if (SSL_version(ssl) != TLS1_3_VERSION) return false;
    if (SSL_session_reused(ssl) == 1) return true;  // an external PSK: the only sessions resumed
    return peer && peer->cert_accepted && SSL_get0_peer_certificate(ssl) != nullptr &&
           SSL_get_verify_result(ssl) == X509_V_OK;
}

std::string peer_identity(SSL* ssl, const TlsPeer& peer) {
    if (SSL_session_reused(ssl) == 1) return fmt::format("shared key '{}'", peer.offered_identity);
    if (peer.cert_name.empty()) return fmt::format("certificate {}", format_node_id(peer.fingerprint));
    return fmt::format("certificate {} ('{}')", format_node_id(peer.fingerprint), peer.cert_name);
}

Result<SharedKey> exported_proof_key(SSL* ssl) {
    static constexpr std::string_view kLabel = "EXPORTER-intermezzo-proof-key";
    SharedKey key;
    key.bytes.resize(kKeyBytes);
    if (SSL_export_keying_material(ssl, reinterpret_cast<unsigned char*>(key.bytes.data()), key.bytes.size(),
                                   kLabel.data(), kLabel.size(), nullptr, 0, 0) != 1)
        return fail(make_error("TLS: cannot export keying material: " + openssl_errors()));
    return key;
}

void PeerPins::replace(std::map<std::string, std::string> allowed) {
    std::lock_guard lock(mu_);
    allowed_ = std::move(allowed);
}

std::optional<std::string> PeerPins::name_of(const std::string& fingerprint) const {
    std::lock_guard lock(mu_);
    auto it = allowed_.find(fingerprint);
    if (it == allowed_.end()) return std::nullopt;
    return it->second;
}

std::string tls_summary(SSL* ssl) {
    const SSL_CIPHER* c = SSL_get_current_cipher(ssl);
    return fmt::format("{} {}", SSL_get_version(ssl), c ? SSL_CIPHER_get_name(c) : "(no cipher)");
}

bool looks_like_tls(std::string_view head) {
    // A TLS record: content type 22 (handshake), then major version 3.
    return !head.empty() && static_cast<unsigned char>(head[0]) == 0x16 &&
           (head.size() < 2 || static_cast<unsigned char>(head[1]) == 0x03);
}

std::string failure_reason(const boost::system::error_code& ec, const TlsPeer* peer, TlsRole role) {
    if (peer && !peer->cert_problem.empty()) return "TLS refused: " + peer->cert_problem;
    if (role == TlsRole::server && peer) {
        if (!peer->offered_identity.empty() && !peer->identity_known)
            return fmt::format("TLS refused: the client offered shared key '{}', which this server does not hold "
                               "(a different key file?)",
                               peer->offered_identity);
    }
    if (ec == boost::asio::error::eof || ec == ssl::error::stream_truncated)
        return role == TlsRole::client ? "TLS refused: the server closed the connection during the TLS handshake"
                                       : "TLS refused: the client closed the connection during the TLS handshake";
    if (ec.category() == boost::asio::error::get_ssl_category()) {
        int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
        std::string detail = ec.message();
        switch (reason) {
            case SSL_R_UNSUPPORTED_PROTOCOL:
            case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
                return fmt::format("TLS refused: the peer does not speak TLS 1.3 (only older versions, which are "
                                   "refused) ({})",
                                   detail);
            case SSL_R_WRONG_VERSION_NUMBER:
            case SSL_R_PACKET_LENGTH_TOO_LONG:
            case SSL_R_HTTP_REQUEST:
                return fmt::format("TLS refused: the peer does not speak TLS ({})", detail);
            case SSL_R_BINDER_DOES_NOT_VERIFY:
                return fmt::format("TLS refused: the peer's shared key does not match ours ({})", detail);
            case SSL_R_CERTIFICATE_VERIFY_FAILED:
                return fmt::format("TLS refused: the server did not use the shared key and showed a certificate "
                                   "that is not trusted ({})",
                                   detail);
            case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
            case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
            case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
            case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
            case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
                if (role == TlsRole::client)
                    return fmt::format("TLS refused by the server: it does not accept our certificate ({})", detail);
                break;
            case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
                return fmt::format("TLS refused: the client offered no shared key and showed no certificate ({})", detail);
            case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
            case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
            case SSL_R_SSLV3_ALERT_ILLEGAL_PARAMETER:
                if (role == TlsRole::client)
                    return fmt::format("TLS refused by the server: it does not hold our shared key (a different key "
                                       "file?) ({})",
                                       detail);
                break;
            default:
                break;
        }
        if (role == TlsRole::server && peer && peer->offered_identity.empty())
            return fmt::format("TLS refused: the client offered no shared key ({})", detail);
        return fmt::format("TLS handshake failed: {}", detail);
    }
    return fmt::format("TLS handshake failed: {}", ec.message());
}

}  // namespace iz::replicator
