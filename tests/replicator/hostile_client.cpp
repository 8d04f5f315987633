#include "hostile_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <utility>

namespace iz::test {

namespace proto = replicator::proto;
using Clock = std::chrono::steady_clock;

WireClient::~WireClient() {
    if (fd_ >= 0) ::close(fd_);
}

WireClient::WireClient(WireClient&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}

Result<WireClient> WireClient::connect(uint16_t port) {
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

Result<std::string> WireClient::read_exact(size_t n, Clock::time_point deadline) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return fail(make_error("timeout"));
        pollfd p{fd_, POLLIN, 0};
        int rc = ::poll(&p, 1, static_cast<int>(left));
        if (rc < 0 && errno == EINTR) continue;
        if (rc == 0) return fail(make_error("timeout"));
        ssize_t r = ::recv(fd_, out.data() + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0 || (r < 0 && (errno == ECONNRESET || errno == EPIPE))) return fail(make_error("closed"));
        if (r < 0) return fail(sys_error("recv", errno));
        got += static_cast<size_t>(r);
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
            ssize_t r = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
            continue;
        }
        if (auto* e = std::get_if<proto::ErrorMsg>(&*m); e && error_text) *error_text = e->message;
    }
}

Result<proto::Welcome> WireClient::handshake(const replicator::SharedKey& key, const std::string& agent,
                                              const std::string& fileset) {
    auto nonce = replicator::random_bytes(proto::kNonceBytes);
    if (!nonce) return fail(nonce.error());
    if (!send(proto::Hello{proto::kVersion, proto::kVersion, agent, fileset, *nonce}))
        return fail(make_error("cannot send hello"));
    auto reply = receive();
    if (!reply) return fail(reply.error());
    if (auto* e = std::get_if<proto::ErrorMsg>(&*reply)) return fail(make_error("server error: " + e->message));
    auto* challenge = std::get_if<proto::Challenge>(&*reply);
    if (!challenge) return fail(make_error("expected a challenge"));
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
