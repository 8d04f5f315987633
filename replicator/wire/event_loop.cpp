#include "replicator/wire/event_loop.hpp"

#include <spdlog/spdlog.h>

#include <exception>

namespace iz::replicator {

void run_event_loop(boost::asio::io_context& io, std::string_view what) noexcept {
    for (;;) {
        try {
            io.run();
            return;
        } catch (const std::exception& e) {
            spdlog::error("{}: internal error in a handler: {}", what, e.what());
        } catch (...) {
            spdlog::error("{}: internal error in a handler: an exception that is not a std::exception", what);
        }
    }
}

}  // namespace iz::replicator
