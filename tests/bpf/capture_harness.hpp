#pragma once
// A scratch filesystem with BpfCapture watching it, and the small helpers
// the capture tests share: collecting events for one inode and merging
// write ranges the way the agent will.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bpf/bpf_capture.hpp"
#include "support/scratch_fs.hpp"

namespace iz::test {

struct Range {
    uint64_t offset = 0;
    uint64_t length = 0;
    bool operator==(const Range&) const = default;
};

void PrintTo(const Range& r, std::ostream* os);

// Sorted, with overlapping and touching ranges joined.
std::vector<Range> merged(std::vector<Range> ranges);

// Every event waiting in the ring buffer (the programs emit inside the
// syscall, so everything a finished syscall caused is already there).
std::vector<agent::DirtyRangeEvent> drain(agent::BpfCapture& capture);

std::vector<agent::DirtyRangeEvent> of_inode(const std::vector<agent::DirtyRangeEvent>& events, uint64_t ino);
std::vector<Range> ranges_of(const std::vector<agent::DirtyRangeEvent>& events, agent::DirtyKind kind);

uint64_t inode_of(int fd);
std::string own_comm();

}  // namespace iz::test
