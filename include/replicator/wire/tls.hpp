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
// Promises:
//  - A context refuses every protocol version below TLS 1.3 and offers only
//    AEAD cipher suites; it neither issues nor accepts session tickets (a
//    resumed session would carry no fresh proof of the key).
//  - established() is true only for a handshake that used one of the keys:
//    a session that completed any other way is treated as a failure.
//  - failure_reason() turns a failed handshake into one line that says
//    which of the usual causes it was (wrong key, an old TLS version,
//    a peer that does not speak TLS).
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include "common/error.hpp"
#include "replicator/wire/auth.hpp"

namespace iz::replicator {

enum class TlsRole { client, server };

// The PSK identity a key is offered under: "iz-psk1-" and 16 hex digits of
// SHA-256 over a label and the key. Names the key; reveals nothing of it.
std::string psk_identity(const SharedKey& key);

// A context for `role` whose peers authenticate with any of `keys` (the
// client offers the first). Fails when OpenSSL refuses the settings.
Result<std::shared_ptr<boost::asio::ssl::context>> make_psk_context(TlsRole role, std::vector<SharedKey> keys);

// What a handshake left behind on one connection, filled in by the
// context's callbacks (attach() before the handshake).
struct TlsPeer {
    std::string offered_identity;  // the PSK identity the client offered ("" none)
    bool identity_known = false;   // the server holds a key by that name
    int key_index = -1;            // which of the context's keys it was
    // Attaches this record to `ssl`; it must outlive the handshake.
    void attach(SSL* ssl);
};

// After a successful handshake: whether one of the keys authenticated both
// ends (else the session must be dropped).
bool established(SSL* ssl);

// The version and cipher in use, e.g. "TLSv1.3 TLS_AES_128_GCM_SHA256".
std::string tls_summary(SSL* ssl);

// One line saying why a handshake failed: `ec` is what the handshake
// returned, `peer` what the callbacks saw (may be null), `role` our side.
std::string failure_reason(const boost::system::error_code& ec, const TlsPeer* peer, TlsRole role);

// Whether the first bytes a client sent can begin a TLS handshake (a TLS
// record of type handshake). `head` holds at least one byte.
bool looks_like_tls(std::string_view head);

}  // namespace iz::replicator
