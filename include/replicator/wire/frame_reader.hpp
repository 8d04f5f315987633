#pragma once
// Splits a byte stream into protocol frames.
//
// A connection reads whatever the socket holds into one buffer (one
// receive carries many small frames) and takes complete frames out of it,
// instead of one read for each header and another for each body.
//
// Promises:
//  - A header is validated (parse_header) as soon as its bytes are there,
//    and its length checked against the caller's limit, before the buffer
//    grows to hold the body: a peer cannot make it allocate more than the
//    limit plus one receive.
//  - A frame's body stays valid until the next call to space().
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

struct FrameView {
    proto::FrameHeader header;
    std::string_view body;
};

class FrameReader {
public:
    // Bytes asked of the socket per receive when no frame needs more.
    static constexpr size_t kReceiveBytes = 256u << 10;

    // Writable space for the next receive (at least one byte); hand the
    // count received to received().
    char* space(size_t& available);
    void received(size_t n);

    // The next complete frame, nullopt if more bytes are needed, or an error
    // for a bad header or a body longer than `max_body`.
    Result<std::optional<FrameView>> next(uint32_t max_body);

    // Bytes received and not yet taken as frames.
    size_t buffered() const { return end_ - begin_; }

private:
    std::vector<char> buf_;
    size_t begin_ = 0;  // first byte not yet taken
    size_t end_ = 0;    // one past the last byte received
    size_t want_ = 0;   // bytes the frame at begin_ needs in all (0: unknown)
};

}  // namespace iz::replicator
