#include "agent/control.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstring>

#include "common/unique_fd.hpp"

namespace iz::agent {

namespace {

Result<sockaddr_un> address_of(const std::filesystem::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.string().size() >= sizeof addr.sun_path)
        return fail(make_error(fmt::format("control socket path '{}' is too long", path.string())));
    std::strcpy(addr.sun_path, path.c_str());
    return addr;
}

// Reads up to a newline; bounded so a stuck peer cannot hold us.
Result<std::string> read_line(int fd, std::chrono::milliseconds timeout) {
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (line.find('\n') == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return fail(make_error("control socket: timed out waiting for a reply"));
        pollfd p{fd, POLLIN, 0};
        int rc = ::poll(&p, 1, static_cast<int>(left.count()));
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) return fail(sys_error("poll control socket", errno));
        if (rc == 0) continue;
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(sys_error("read control socket", errno));
        if (n == 0) break;
        line.append(buf, static_cast<size_t>(n));
        if (line.size() > (1 << 20)) return fail(make_error("control socket: message too large"));
    }
    return line.substr(0, line.find('\n'));
}

}  // namespace

Result<int> listen_control(const std::filesystem::path& path) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    auto addr = address_of(path);
    if (!addr) return fail(addr.error());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return fail(sys_error("socket", errno));
    ::unlink(path.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof *addr) != 0 || ::listen(fd.get(), 16) != 0)
        return fail(sys_error("listen on control socket", path.string(), errno));
    ::chmod(path.c_str(), 0600);
    return fd.release();
}

Result<nlohmann::json> read_request(int conn) {
    auto line = read_line(conn, std::chrono::milliseconds(2000));
    if (!line) return fail(line.error());
    auto j = nlohmann::json::parse(*line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail(make_error("control socket: malformed request"));
    return j;
}

void send_reply(int conn, const nlohmann::json& reply) {
    // Paths are bytes, not UTF-8: a strict dump throws on one that is not,
    // and a status or sync reply naming such a path would end the agent.
    // The reply is for a person (or a script reading names it showed):
    // invalid bytes become U+FFFD.
    auto text = reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    size_t off = 0;
    while (off < text.size()) {
        ssize_t n = ::send(conn, text.data() + off, text.size() - off, MSG_NOSIGNAL);
        if (n <= 0) {
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
                pollfd p{conn, POLLOUT, 0};
                ::poll(&p, 1, 1000);
                continue;
            }
            return;
        }
        off += static_cast<size_t>(n);
    }
}

Result<nlohmann::json> control_request(const std::filesystem::path& path, const nlohmann::json& request,
                                       std::chrono::milliseconds timeout) {
    auto addr = address_of(path);
    if (!addr) return fail(addr.error());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return fail(sys_error("socket", errno));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof *addr) != 0)
        return fail(sys_error("connect to izwatch control socket", path.string(), errno));
    auto text = request.dump() + "\n";
    if (::send(fd.get(), text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size()))
        return fail(sys_error("send to izwatch control socket", path.string(), errno));
    auto line = read_line(fd.get(), timeout);
    fd.reset();
    if (!line) return fail(line.error());
    if (line->empty())
        return fail(make_error("izwatch closed its control connection without a reply: the agent may have stopped "
                               "or crashed (see its log)"));
    auto j = nlohmann::json::parse(*line, nullptr, false);
    if (j.is_discarded()) return fail(make_error("izwatch sent a malformed reply"));
    return j;
}

}  // namespace iz::agent
