#include "journal/record.hpp"

#include <algorithm>
#include <array>

namespace iz::journal {

namespace {
// "" for values that name no op.
constexpr std::array<std::string_view, 22> kNames = {
    "",        "create",     "mkdir",   "mknod",       "symlink",     "link",  "unlink",
    "rmdir",   "rename",     "setattr", "write",       "truncate",    "setxattr",
    "removexattr", "close_write", "start", "stop", "overflow", "rescan", "conflict",
    "exchange", "repair",
};
static_assert(kNames.size() == static_cast<size_t>(kLastOp) + 1, "a name for every op");
}  // namespace

bool op_is_valid(uint8_t raw) {
    return raw >= static_cast<uint8_t>(kFirstOp) && raw <= static_cast<uint8_t>(kLastOp) && !kNames[raw].empty();
}

std::string_view op_name(Op op) {
    auto raw = static_cast<uint8_t>(op);
    return op_is_valid(raw) ? kNames[raw] : std::string_view("unknown");
}

std::optional<Op> op_from_name(std::string_view name) {
    for (uint8_t raw = static_cast<uint8_t>(kFirstOp); raw <= static_cast<uint8_t>(kLastOp); ++raw)
        if (!kNames[raw].empty() && kNames[raw] == name) return static_cast<Op>(raw);
    return std::nullopt;
}

std::vector<ByteRange> coalesce(std::vector<ByteRange> ranges) {
    std::erase_if(ranges, [](const ByteRange& r) { return r.length == 0; });
    std::sort(ranges.begin(), ranges.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
    std::vector<ByteRange> out;
    for (auto& r : ranges) {
        if (!out.empty() && r.offset <= out.back().offset + out.back().length) {
            auto end = std::max(out.back().offset + out.back().length, r.offset + r.length);
            out.back().length = end - out.back().offset;
        } else {
            out.push_back(r);
        }
    }
    return out;
}

}  // namespace iz::journal
