#pragma once
// TLS for every replication connection: TLS 1.3 only, both ends
// authenticated, never a plaintext fallback.
//
// The shared key file is a TLS 1.3 external PSK: the client offers it under
// an identity that names the key (psk_identity: a hash of the key, never the
// key), the server looks the identity up among the keys it holds, and the
// handshake proves both hold the same key with an (EC)DHE exchange for
// forward secrecy. Nobody else can finish the handshake: the server has no
// certificate to fall back on, and the client accepts no certificate.
//
// Per-node identities (identity.hpp) are the other way: each end shows its
// self-signed certificate and the other accepts it only when its SHA-256
// fingerprint is pinned (the agent pins its server; the server holds the
// list of allowed agents) and it is within its validity. A server may take
// both: a client that offers a key uses it, one that offers none must show
// an allowed certificate.
//
// Promises:
//  - A context refuses every protocol version below TLS 1.3 and offers only
//    AEAD cipher suites; it neither issues nor accepts session tickets (a
//    resumed session would carry no fresh proof of the key).
//  - established() is true only for a handshake that used one of the keys
//    or a pinned certificate: a session that completed any other way is
//    treated as a failure.
//  - failure_reason() turns a failed handshake into one line that says
//    which of the usual causes it was (wrong key, an old TLS version,
//    a peer that does not speak TLS).
#include <openssl/ssl.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include "common/error.hpp"
#include "replicator/wire/auth.hpp"
#include "replicator/wire/identity.hpp"

namespace iz::replicator {

enum class TlsRole { client, server };

// The PSK identity a key is offered under: "iz-psk1-" and 16 hex digits of
// SHA-256 over a label and the key. Names the key; reveals nothing of it.
std::string psk_identity(const SharedKey& key);

// The certificates a context accepts, by fingerprint (32 raw bytes), each
// with the name it is allowed under ("" any). Thread-safe; replaceable
// while connections use it (a reload).
class PeerPins {
public:
    explicit PeerPins(std::map<std::string, std::string> allowed = {}) : allowed_(std::move(allowed)) {}
    void replace(std::map<std::string, std::string> allowed);
    // nullopt: not allowed.
    std::optional<std::string> name_of(const std::string& fingerprint) const;

private:
    mutable std::mutex mu_;
    std::map<std::string, std::string> allowed_;
};

struct TlsSettings {
    // Shared keys (the client offers the first). May be empty when the
    // client shows a certificate.
    std::vector<SharedKey> keys;
    // Our certificate and key; a client with one shows it instead of
    // offering a key.
    std::optional<NodeIdentity> identity;
    // Whose certificates are accepted; null: none.
    std::shared_ptr<PeerPins> pins;
};

// A context for `role` with `settings`. Fails when OpenSSL refuses them or
// they allow no way to authenticate.
Result<std::shared_ptr<boost::asio::ssl::context>> make_tls_context(TlsRole role, TlsSettings settings);
// Shared keys alone.
Result<std::shared_ptr<boost::asio::ssl::context>> make_psk_context(TlsRole role, std::vector<SharedKey> keys);

// What a handshake left behind on one connection, filled in by the
// context's callbacks (attach() before the handshake).
struct TlsPeer {
    std::string offered_identity;  // the PSK identity the client offered ("" none)
    bool identity_known = false;   // the server holds a key by that name
    int key_index = -1;            // which of the context's keys it was
    std::string fingerprint;       // of the certificate the peer showed ("" none)
    std::string cert_problem;      // why that certificate was refused ("" not refused)
    bool cert_accepted = false;    // it is pinned and valid
    std::string cert_name;         // the name it is allowed under
    // Attaches this record to `ssl`; it must outlive the handshake.
    void attach(SSL* ssl);
    // Forgets whichever record is attached to `ssl`.
    static void detach(SSL* ssl);
};

// After a successful handshake: whether one of the keys, or a pinned
// certificate, authenticated the peer (else the session must be dropped).
bool established(SSL* ssl, const TlsPeer* peer);

// How the peer of an established session proved itself, for logs and
// status: "shared key 'iz-psk1-…'" or "certificate XXXX-…".
std::string peer_identity(SSL* ssl, const TlsPeer& peer);

// Keying material both ends of a session derive alike (RFC 8446 exporter,
// label "EXPORTER-intermezzo-proof-key"): what keys the protocol's proofs
// when the peers hold no shared key.
Result<SharedKey> exported_proof_key(SSL* ssl);

// The version and cipher in use, e.g. "TLSv1.3 TLS_AES_128_GCM_SHA256".
std::string tls_summary(SSL* ssl);

// One line saying why a handshake failed: `ec` is what the handshake
// returned, `peer` what the callbacks saw (may be null), `role` our side.
std::string failure_reason(const boost::system::error_code& ec, const TlsPeer* peer, TlsRole role);

// Whether the first bytes a client sent can begin a TLS handshake (a TLS
// record of type handshake). `head` holds at least one byte.
bool looks_like_tls(std::string_view head);

}  // namespace iz::replicator
