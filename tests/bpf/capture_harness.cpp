#include "capture_harness.hpp"

#include <algorithm>
#include <fstream>

namespace iz::test {

std::vector<agent::DirtyRangeEvent> drain(agent::BpfCapture& capture) {
    std::vector<agent::DirtyRangeEvent> events;
    // Process exits arrive from the whole system; range tests ignore them.
    auto n = capture.consume([&](const agent::DirtyRangeEvent& ev) {
        if (ev.kind != agent::DirtyKind::process_exit) events.push_back(ev);
    });
    EXPECT_TRUE(n.has_value()) << (n ? "" : n.error().message);
    return events;
}

std::vector<agent::DirtyRangeEvent> of_inode(const std::vector<agent::DirtyRangeEvent>& events, uint64_t ino) {
    std::vector<agent::DirtyRangeEvent> out;
    for (const auto& ev : events)
        if (ev.ino == ino) out.push_back(ev);
    return out;
}

std::vector<Range> ranges_of(const std::vector<agent::DirtyRangeEvent>& events, agent::DirtyKind kind) {
    std::vector<Range> out;
    for (const auto& ev : events)
        if (ev.kind == kind) out.push_back({ev.offset, ev.length});
    return out;
}

uint64_t inode_of(int fd) {
    struct stat st{};
    EXPECT_EQ(::fstat(fd, &st), 0);
    return st.st_ino;
}

std::string own_comm() {
    std::ifstream in("/proc/self/comm");
    std::string comm;
    std::getline(in, comm);
    return comm;
}

}  // namespace iz::test

namespace iz::journal {
void PrintTo(const ByteRange& r, std::ostream* os) { *os << "[" << r.offset << ", +" << r.length << ")"; }
}  // namespace iz::journal
