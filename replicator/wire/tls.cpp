#include "replicator/wire/tls.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

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
    std::vector<SharedKey> keys;
    std::vector<std::string> identities;  // psk_identity(keys[i]); the client hands out a pointer into one
};

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
    std::shared_ptr<PskContext> pc;
    try {
        pc = std::make_shared<PskContext>(role == TlsRole::client ? ssl::context::tls_client : ssl::context::tls_server);
    } catch (const std::exception& e) {
        return fail(make_error(fmt::format("TLS: cannot make a context: {}", e.what())));
    }
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
    if (role == TlsRole::client) {
        // No trust anchors: a server that shows a certificate instead of
        // using the key fails verification.
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        SSL_CTX_set_psk_use_session_callback(ctx, use_psk);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);  // AES-GCM: in hardware on most CPUs
        SSL_CTX_set_psk_find_session_callback(ctx, find_psk);
    }
    return std::shared_ptr<ssl::context>(pc, &pc->ctx);
}

void TlsPeer::attach(SSL* ssl) { SSL_set_ex_data(ssl, peer_index(), this); }

bool established(SSL* ssl) { return SSL_version(ssl) == TLS1_3_VERSION && SSL_session_reused(ssl) == 1; }

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
