#pragma once
// Running an io_context on a thread of its own: no exception may escape a
// thread (std::terminate would end the process), and one handler's failure
// must not stop the connections the others serve. Both daemons run their
// network this way.
#include <string_view>

#include <boost/asio/io_context.hpp>

namespace iz::replicator {

// Runs `io` until it stops (io.stop(), or no work is left). An exception a
// handler throws, std or not, is logged at error level with `what` (the
// loop it is, e.g. "shipper network thread") and the loop runs on.
void run_event_loop(boost::asio::io_context& io, std::string_view what) noexcept;

}  // namespace iz::replicator
