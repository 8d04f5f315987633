// FrameReader: frames come out whole however the stream is cut into
// receives, and a bad or oversize header is refused before its body is
// buffered.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "replicator/wire/frame_reader.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {
namespace {

using proto::OpKind;
using proto::OpMsg;

// Feeds `bytes` in receives of at most `step` bytes; returns the LSNs of
// the OpMsg frames taken out.
std::vector<uint64_t> feed(FrameReader& r, const std::string& bytes, size_t step) {
    std::vector<uint64_t> lsns;
    size_t pos = 0;
    while (pos < bytes.size()) {
        size_t room = 0;
        char* dst = r.space(room);
        EXPECT_GT(room, 0u);
        size_t n = std::min({room, step, bytes.size() - pos});
        std::memcpy(dst, bytes.data() + pos, n);
        r.received(n);
        pos += n;
        for (;;) {
            auto f = r.next(proto::kMaxFrameBody);
            EXPECT_TRUE(f) << f.error().message;
            if (!f || !*f) break;
            auto m = proto::decode_body((*f)->header.type, (*f)->body);
            EXPECT_TRUE(m);
            if (m) lsns.push_back(std::get<OpMsg>(*m).lsn);
        }
    }
    return lsns;
}

std::string stream_of(int frames) {
    std::string all;
    for (int i = 1; i <= frames; ++i) {
        // Sizes from a few bytes to past one receive.
        std::string data(static_cast<size_t>(i % 4 == 0 ? 300000 : 10 * i), static_cast<char>('a' + i % 26));
        auto f = proto::encode_frame(OpMsg{.lsn = static_cast<uint64_t>(i), .kind = OpKind::write, .path = "f",
                                           .extents = {proto::make_extent(0, data, false)}});
        EXPECT_TRUE(f);
        all += *f;
    }
    return all;
}

TEST(FrameReader, FramesComeOutWholeForEveryCut) {
    auto bytes = stream_of(24);
    std::vector<uint64_t> expected;
    for (uint64_t i = 1; i <= 24; ++i) expected.push_back(i);
    for (size_t step : {size_t{1} << 30, size_t{65536}, size_t{4099}, size_t{13}, size_t{1}}) {
        if (step == 1) bytes = stream_of(6);  // byte by byte: fewer, smaller
        FrameReader r;
        auto got = feed(r, bytes, step);
        std::vector<uint64_t> want(expected.begin(), expected.begin() + static_cast<long>(step == 1 ? 6 : 24));
        EXPECT_EQ(got, want) << "receives of " << step;
        EXPECT_EQ(r.buffered(), 0u);
    }
}

TEST(FrameReader, OversizeAndBadHeadersRefusedBeforeTheBody) {
    std::string big(5000, 'x');
    auto frame = proto::encode_frame(OpMsg{.lsn = 1, .kind = OpKind::write, .path = "f",
                                           .extents = {proto::make_extent(0, big, false)}});
    ASSERT_TRUE(frame);
    FrameReader r;
    size_t room = 0;
    char* dst = r.space(room);
    std::memcpy(dst, frame->data(), proto::kHeaderBytes);  // the header alone
    r.received(proto::kHeaderBytes);
    auto f = r.next(4096);
    ASSERT_FALSE(f);
    EXPECT_NE(f.error().message.find("5"), std::string::npos) << f.error().message;

    FrameReader junk;
    dst = junk.space(room);
    std::memcpy(dst, "GET / HTTP/1.1\r\n", 16);
    junk.received(16);
    auto g = junk.next(proto::kMaxFrameBody);
    ASSERT_FALSE(g);
    EXPECT_NE(g.error().message.find("magic"), std::string::npos) << g.error().message;
}

}  // namespace
}  // namespace iz::replicator
