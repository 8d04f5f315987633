#pragma once
// What the loader needs to know about the running kernel before it loads
// anything: which filesystem a device holds and which tracepoints exist.
#include <sys/types.h>

#include <string>

#include "common/error.hpp"

namespace iz::agent::bpf {

// The filesystem type ("ext4", "xfs", ...) mounted from `dev`, from
// /proc/self/mountinfo.
Result<std::string> filesystem_type(dev_t dev);

// The tracefs events directory, mounting tracefs on /sys/kernel/tracing
// when it is nowhere to be found (libbpf attaches tracepoints through it).
Result<std::string> tracefs_events_dir();

// Whether "category/name" exists under the events directory.
bool tracepoint_exists(const std::string& events_dir, const std::string& category_and_name);

// The name of the backing device whose writeback `dev` uses ("7:0": the
// whole disk of a partition), as the writeback tracepoints report it;
// empty when `dev` has no block device (a network or virtual filesystem).
std::string backing_device_name(dev_t dev);

// The tracepoint dev_t encoding (major << 20 | minor) of a userspace st_dev.
unsigned int kernel_dev(dev_t dev);

}  // namespace iz::agent::bpf
