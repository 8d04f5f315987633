#include "replicator/wire/frame_reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace iz::replicator {

char* FrameReader::space(size_t& available) {
    // Room for the whole pending frame, or for one ordinary receive.
    size_t need = std::max(want_, proto::kHeaderBytes);
    size_t target = std::max(need, kReceiveBytes);
    if (begin_ == end_) begin_ = end_ = 0;
    if (buf_.size() - begin_ < target && begin_ > 0) {
        // Move the partial frame to the front rather than grow.
        std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    if (buf_.size() < target) buf_.resize(target);
    available = buf_.size() - end_;
    return buf_.data() + end_;
}

void FrameReader::received(size_t n) { end_ = std::min(end_ + n, buf_.size()); }

Result<std::optional<FrameView>> FrameReader::next(uint32_t max_body) {
    size_t have = end_ - begin_;
    if (have < proto::kHeaderBytes) return std::optional<FrameView>{};
    auto h = proto::parse_header(std::string_view(buf_.data() + begin_, proto::kHeaderBytes));
    if (!h) return fail(h.error());
    if (h->length > max_body)
        return fail(make_error(fmt::format("{} frame of {} bytes where at most {} are accepted",
                                           proto::msg_type_name(h->type), h->length, max_body)));
    size_t total = proto::kHeaderBytes + h->length;
    if (have < total) {
        want_ = total;
        return std::optional<FrameView>{};
    }
    FrameView f{*h, std::string_view(buf_.data() + begin_ + proto::kHeaderBytes, h->length)};
    begin_ += total;
    want_ = 0;
    return std::optional<FrameView>(f);
}

}  // namespace iz::replicator
