// systemd's notify protocol (Type=notify, sd_notify(3)) as the daemons
// speak it: the test owns the unix datagram socket NOTIFY_SOCKET names, as
// systemd would, and reads what arrives. izwatch must say READY=1 only
// once the baseline is in the journal (the unit's start is what an
// operator's next step waits for), izreplicate only once it accepts
// connections; both with a STATUS= line, and izwatch keeps STATUS= current.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstring>
#include <optional>

#include "agent_fixture.hpp"

namespace iz::test::agent {
namespace {

// The manager's end: a datagram socket bound to a path in the test's work
// directory.
class NotifySocket {
public:
    explicit NotifySocket(fs::path path) : path_(std::move(path)) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        EXPECT_GE(fd_, 0) << std::strerror(errno);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path_ << ": " << std::strerror(errno);
    }
    ~NotifySocket() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    std::string env() const { return "NOTIFY_SOCKET=" + path_.string(); }

    // The next datagram, or nothing within `timeout`.
    std::optional<std::string> next(std::chrono::milliseconds timeout) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
        char buf[4096];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0) return std::nullopt;
        return std::string(buf, static_cast<size_t>(n));
    }

    // Datagrams until one with READY=1 (returned), all kept in `seen`.
    std::optional<std::string> until_ready(std::chrono::seconds timeout, std::vector<std::string>& seen) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            auto got = next(left);
            if (!got) break;
            seen.push_back(*got);
            if (has_line(*got, "READY=1")) return got;
        }
        return std::nullopt;
    }

    static bool has_line(const std::string& message, const std::string& line) {
        return ("\n" + message + "\n").find("\n" + line + "\n") != std::string::npos;
    }
    static std::string status_of(const std::string& message) {
        auto at = ("\n" + message).find("\nSTATUS=");
        if (at == std::string::npos) return "";
        auto line = message.substr(at + 7);
        return line.substr(0, line.find('\n'));
    }

private:
    fs::path path_;
    int fd_ = -1;
};

class ServiceNotify : public AgentOn {};

TEST_P(ServiceNotify, IzwatchIsReadyOnlyOnceTheBaselineIsJournaled) {
    // Enough files that the baseline takes a while to journal.
    constexpr int kFiles = 3000;
    for (int d = 0; d < 30; ++d) {
        make_dir(at(fmt::format("d{}", d)));
        for (int i = 0; i < kFiles / 30; ++i) write_file(at(fmt::format("d{}/f{}", d, i)), "x");
    }
    NotifySocket manager(work_->path() / "notify.sock");
    auto log = work_->path() / "izwatch.log";
    auto env = watch().env();
    env.push_back(manager.env());
    ChildProcess daemon({bin_path("izwatch").string(), "start", root().string(), "--foreground", "--journal",
                         watch().journal_dir().string(), "--state-dir", watch().state_dir().string()},
                        log, log, env);
    std::vector<std::string> seen;
    auto ready = manager.until_ready(std::chrono::seconds(40), seen);
    ASSERT_TRUE(ready) << "no READY=1 from izwatch; received: " << ::testing::PrintToString(seen);
    // Read at once: whatever the journal holds now was there when READY=1 was sent.
    auto journal = read_journal(watch().journal_dir());
    ASSERT_FALSE(journal.empty());
    EXPECT_EQ(journal.front().value("op", ""), "start");
    EXPECT_EQ(journal.back().value("op", ""), "rescan") << "READY=1 came before the baseline ended";
    EXPECT_EQ(with_op(journal, "create").size(), size_t{kFiles});
    EXPECT_EQ(with_op(journal, "mkdir").size(), 30u);
    // The status line: the capture mode and the records journaled (all but the start).
    EXPECT_EQ(NotifySocket::status_of(*ready),
              fmt::format("fanotify+ebpf: {} records, durable LSN {}", journal.size() - 1,
                          journal.back().value("lsn", uint64_t{0})))
        << *ready;

    // STATUS= follows what is journaled.
    write_file(at("later"), "y");
    auto before = fmt::format("fanotify+ebpf: {} records,", journal.size() - 1);
    std::string status;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        auto got = manager.next(std::chrono::seconds(3));
        if (!got) break;
        status = NotifySocket::status_of(*got);
        if (!status.empty() && status.rfind(before, 0) != 0) break;
    }
    EXPECT_TRUE(status.rfind("fanotify+ebpf: ", 0) == 0 && status.rfind(before, 0) != 0)
        << "no STATUS= with the new record count; last: " << status;

    daemon.signal(SIGTERM);
    EXPECT_EQ(daemon.wait(std::chrono::seconds(20)), 0);
    bool stopping = false;
    while (auto got = manager.next(std::chrono::milliseconds(200)))
        stopping = stopping || NotifySocket::has_line(*got, "STOPPING=1");
    EXPECT_TRUE(stopping) << "no STOPPING=1 when the agent stopped";
}

// A port free a moment ago (the server is started on it next).
uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

bool accepts_connections(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

TEST_P(ServiceNotify, IzreplicateIsReadyOnceItListens) {
    auto key = work_->path() / "key";
    auto made = run_process({bin_path("izreplicate").string(), "keygen", key.string()});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    auto replicas = mount() / "replicas";
    fs::create_directories(replicas);
    NotifySocket manager(work_->path() / "notify.sock");
    auto port = free_port();
    auto listen = fmt::format("127.0.0.1:{}", port);
    auto log = work_->path() / "izreplicate.log";
    ChildProcess server({bin_path("izreplicate").string(), "--root", replicas.string(), "--listen", listen, "--key",
                         key.string(), "--foreground"},
                        log, log, {manager.env()});
    std::vector<std::string> seen;
    auto ready = manager.until_ready(std::chrono::seconds(20), seen);
    ASSERT_TRUE(ready) << "no READY=1 from izreplicate; received: " << ::testing::PrintToString(seen);
    EXPECT_TRUE(accepts_connections(port)) << "READY=1 before the server listens";
    EXPECT_EQ(NotifySocket::status_of(*ready), fmt::format("listening on {}, replicas beneath {}", listen, replicas.string()));
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait(std::chrono::seconds(20)), 0);
}

INSTANTIATE_TEST_SUITE_P(Filesystems, ServiceNotify, ::testing::Values(FsType::ext4), fs_param_name);

}  // namespace
}  // namespace iz::test::agent
