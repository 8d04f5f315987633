#include "hostile_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>
#include <openssl/err.h>

#include <fmt/format.h>

#include "replicator/wire/tls.hpp"

#include <boost/asio/ssl/error.hpp>

#include <cerrno>
#include <utility>

namespace iz::test {

namespace proto = replicator::proto;
using Clock = std::chrono::steady_clock;

WireClient::~WireClient() {
    if (ssl_) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
}

WireClient::WireClient(WireClient&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), ssl_(std::exchange(o.ssl_, nullptr)), ctx_(std::move(o.ctx_)) {}

Result<WireClient> WireClient::connect(uint16_t port, const replicator::SharedKey& key) {
    auto ctx = replicator::make_psk_context(replicator::TlsRole::client, {key});
    if (!ctx) return fail(ctx.error());
    return connect_tls(port, *ctx, (*ctx)->native_handle());
}

Result<WireClient> WireClient::connect_tls(uint16_t port, std::shared_ptr<void> context, SSL_CTX* ctx) {
    auto c = connect_plain(port);
    if (!c) return c;
    c->ctx_ = std::move(context);
    c->ssl_ = SSL_new(ctx);
    if (!c->ssl_ || SSL_set_fd(c->ssl_, c->fd_) != 1) return fail(make_error("SSL_new/SSL_set_fd failed"));
    replicator::TlsPeer peer;
    peer.attach(c->ssl_);
    // The handshake blocks (with a timeout on the socket); then the socket
    // goes non-blocking and reads wait in poll.
    timeval tv{5, 0};
    ::setsockopt(c->fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ERR_clear_error();
    int rc = SSL_connect(c->ssl_);
    replicator::TlsPeer::detach(c->ssl_);
    if (rc != 1) {
        unsigned long e = ERR_peek_error();
        boost::system::error_code ec(static_cast<int>(e), boost::asio::error::get_ssl_category());
        ERR_clear_error();
        return fail(make_error(replicator::failure_reason(ec, &peer, replicator::TlsRole::client)));
    }
    if (!replicator::established(c->ssl_, &peer)) return fail(make_error("TLS session not authenticated"));
    ::fcntl(c->fd_, F_SETFL, ::fcntl(c->fd_, F_GETFL) | O_NONBLOCK);
    return c;
}

Result<WireClient> WireClient::connect_plain(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(sys_error("socket", errno));
    WireClient c(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return fail(sys_error(fmt::format("connect to 127.0.0.1:{}", port), errno));
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return c;
}

bool WireClient::send_raw(std::string_view bytes) {
    while (ssl_ && !bytes.empty()) {
        ERR_clear_error();
        int n = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
        if (n > 0) {
            bytes.remove_prefix(static_cast<size_t>(n));
            continue;
        }
        int err = SSL_get_error(ssl_, n);
        if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ) return false;
        pollfd p{fd_, static_cast<short>(err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
        ::poll(&p, 1, 1000);
    }
    while (!bytes.empty()) {
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

bool WireClient::send(const proto::Message& m) {
    auto frame = proto::encode_frame(m);
    return frame && send_raw(*frame);
}

ssize_t WireClient::read_some(char* out, size_t n) {
    if (!ssl_) {
        ssize_t r = ::recv(fd_, out, n, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) return -1;
        if (r < 0) return (errno == ECONNRESET || errno == EPIPE) ? 0 : -2;
        return r;
    }
    // SSL_get_error reads this thread's error queue: another connection's
    // leftovers must not pass for this one's.
    ERR_clear_error();
    int r = SSL_read(ssl_, out, static_cast<int>(n));
    if (r > 0) return r;
    int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return -1;
    // A close, a reset, or a record that does not decrypt: the stream is over.
    return 0;
}

Result<std::string> WireClient::read_exact(size_t n, Clock::time_point deadline) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return fail(make_error("timeout"));
        ssize_t r = read_some(out.data() + got, n - got);
        if (r == 0) return fail(make_error("closed"));
        if (r == -2) return fail(sys_error("recv", errno));
        if (r > 0) {
            got += static_cast<size_t>(r);
            continue;
        }
        pollfd p{fd_, POLLIN, 0};
        int rc = ::poll(&p, 1, static_cast<int>(left));
        if (rc < 0 && errno == EINTR) continue;
        if (rc == 0) return fail(make_error("timeout"));
    }
    return out;
}

Result<proto::Message> WireClient::receive(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    auto head = read_exact(proto::kHeaderBytes, deadline);
    if (!head) return fail(head.error());
    auto h = proto::parse_header(*head);
    if (!h) return fail(h.error());
    auto body = read_exact(h->length, deadline);
    if (!body) return fail(body.error());
    return proto::decode_body(h->type, *body);
}

bool WireClient::wait_closed(std::chrono::milliseconds timeout, std::string* error_text) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return false;
        auto m = receive(left);
        if (!m) {
            if (m.error().message == "closed") return true;
            if (m.error().message == "timeout") return false;
            // Undecodable bytes: keep draining until the close.
            char buf[4096];
            if (read_some(buf, sizeof buf) == 0) return true;
            continue;
        }
        if (auto* e = std::get_if<proto::ErrorMsg>(&*m); e && error_text) *error_text = e->message;
    }
}

Result<proto::Welcome> WireClient::handshake(const replicator::SharedKey& key, const std::string& agent,
                                              const std::string& fileset) {
    return handshake(key, agent, fileset, proto::kVersion, proto::kVersion);
}

Result<proto::Welcome> WireClient::handshake(const replicator::SharedKey& key, const std::string& agent,
                                              const std::string& fileset, uint16_t min_version, uint16_t max_version,
                                              uint16_t* chosen) {
    auto nonce = replicator::random_bytes(proto::kNonceBytes);
    if (!nonce) return fail(nonce.error());
    if (!send(proto::Hello{min_version, max_version, agent, fileset, *nonce}))
        return fail(make_error("cannot send hello"));
    auto reply = receive();
    if (!reply) return fail(reply.error());
    if (auto* e = std::get_if<proto::ErrorMsg>(&*reply)) return fail(make_error("server error: " + e->message));
    auto* challenge = std::get_if<proto::Challenge>(&*reply);
    if (!challenge) return fail(make_error("expected a challenge"));
    if (chosen) *chosen = challenge->version;
    auto server_proof = replicator::auth_proof(key, replicator::ProofRole::server, *nonce, challenge->server_nonce, agent, fileset);
    if (!replicator::proofs_equal(server_proof, challenge->server_proof))
        return fail(make_error("the server does not know the key"));
    auto proof = replicator::auth_proof(key, replicator::ProofRole::client, *nonce, challenge->server_nonce, agent, fileset);
    if (!send(proto::Auth{proof})) return fail(make_error("cannot send auth"));
    auto welcome = receive();
    if (!welcome) return fail(welcome.error());
    if (auto* e = std::get_if<proto::ErrorMsg>(&*welcome)) return fail(make_error("server error: " + e->message));
    auto* w = std::get_if<proto::Welcome>(&*welcome);
    if (!w) return fail(make_error("expected a welcome"));
    return *w;
}

}  // namespace iz::test
