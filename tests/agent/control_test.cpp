// The control socket's replies: whatever a reply holds, it reaches the
// client and never throws in the agent (which answers on its main loop).
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/control.hpp"
#include "common/unique_fd.hpp"

namespace iz::agent {
namespace {

// A file name is bytes; one that is not UTF-8 (Latin-1 here) can stand in
// a status reply (a rejected record's path, what a scrub found).
TEST(ControlReply, APathThatIsNotUtf8IsSentNotThrown) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    UniqueFd ours(sv[0]), theirs(sv[1]);
    nlohmann::json reply = {{"ok", true}, {"path", std::string("caf\xe9/r\xe9sum\xe9.txt")}};
    ASSERT_NO_THROW(send_reply(ours.get(), reply));
    ours.reset();
    std::string got;
    char buf[256];
    for (ssize_t n; (n = ::read(theirs.get(), buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
    auto j = nlohmann::json::parse(got, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << got;
    EXPECT_EQ(j["ok"], true);
    EXPECT_EQ(j["path"], "caf\xef\xbf\xbd/r\xef\xbf\xbdsum\xef\xbf\xbd.txt");
}

}  // namespace
}  // namespace iz::agent
