// run_event_loop: a handler's exception, std or not, is logged with the
// loop's name and the loop serves the handlers after it.
#include <gtest/gtest.h>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "replicator/wire/event_loop.hpp"

namespace iz::replicator {
namespace {

namespace asio = boost::asio;

// The default logger, replaced by one that keeps what is logged.
class CapturedLog {
public:
    CapturedLog() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64)), previous_(spdlog::default_logger()) {
        auto logger = std::make_shared<spdlog::logger>("event-loop-test", sink_);
        logger->set_pattern("%l %v");
        spdlog::set_default_logger(logger);
    }
    ~CapturedLog() { spdlog::set_default_logger(previous_); }
    std::vector<std::string> lines() const { return sink_->last_formatted(); }

private:
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
    std::shared_ptr<spdlog::logger> previous_;
};

struct NotAStdException {};

TEST(EventLoop, AHandlerThrowingANonStdExceptionIsLoggedAndTheLoopGoesOn) {
    CapturedLog log;
    asio::io_context io;
    std::vector<int> ran;
    asio::post(io, [&] {
        ran.push_back(1);
        throw NotAStdException{};
    });
    asio::post(io, [&] {
        ran.push_back(2);
        throw std::runtime_error("disk on fire");
    });
    asio::post(io, [&] { ran.push_back(3); });
    // On a thread of its own, as the daemons run it: an exception escaping
    // it would end this test program.
    std::thread t([&] { run_event_loop(io, "test loop"); });
    t.join();
    EXPECT_EQ(ran, (std::vector<int>{1, 2, 3}));
    auto lines = log.lines();
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0], "error test loop: internal error in a handler: an exception that is not a std::exception\n");
    EXPECT_EQ(lines[1], "error test loop: internal error in a handler: disk on fire\n");
}

TEST(EventLoop, ReturnsWhenTheContextIsStopped) {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    bool after_stop = false;
    asio::post(io, [&] { io.stop(); });
    asio::post(io, [&] { after_stop = true; });
    run_event_loop(io, "test loop");
    EXPECT_FALSE(after_stop);
    EXPECT_TRUE(io.stopped());
}

}  // namespace
}  // namespace iz::replicator
