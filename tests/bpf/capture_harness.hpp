#pragma once
// A scratch filesystem with BpfCapture watching it, and the small helpers
// the capture tests share: collecting events for one inode and their ranges.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bpf/bpf_capture.hpp"
#include "journal/record.hpp"
#include "support/scratch_fs.hpp"

namespace iz::test {

// A range the programs report. Write ranges are compared merged the way
// the agent merges them, by journal::coalesce().
using Range = journal::ByteRange;

// Every event waiting in the ring buffer (the programs emit inside the
// syscall, so everything a finished syscall caused is already there).
std::vector<agent::DirtyRangeEvent> drain(agent::BpfCapture& capture);

std::vector<agent::DirtyRangeEvent> of_inode(const std::vector<agent::DirtyRangeEvent>& events, uint64_t ino);
std::vector<Range> ranges_of(const std::vector<agent::DirtyRangeEvent>& events, agent::DirtyKind kind);

uint64_t inode_of(int fd);
std::string own_comm();

}  // namespace iz::test

namespace iz::journal {
void PrintTo(const ByteRange& r, std::ostream* os);
}  // namespace iz::journal
