#pragma once
// The length of a new fanotify group's event queue.
//
// The kernel gives a group the queue length that the sysctl
// fs.fanotify.max_queued_events says at the moment fanotify_init makes it
// (16384 by default: about 70 ms of a create/write/unlink churn, less than
// one stall of the agent behind a slow journal disk). There is no
// per-group setting, and FAN_UNLIMITED_QUEUE would let a stopped agent's
// queue take the machine's memory. So the agent raises the sysctl for the
// moment of its fanotify_init and puts the administrator's value back,
// holding a lock on the sysctl file so that agents starting together
// restore the right value.
#include <cstdint>
#include <functional>
#include <string>

namespace iz::agent {

struct QueueLength {
    int fd = -1;             // what `init` returned (-1 with errno set when it failed)
    uint32_t events = 0;     // its queue length (the kernel's value when it was not raised)
    std::string note;        // why it was not raised, when it was wanted and could not be
};

// Runs `init` (which makes the fanotify group) with the queue length set to
// `wanted` events; 0 leaves the system's value.
QueueLength with_queue_length(uint32_t wanted, const std::function<int()>& init);

}  // namespace iz::agent
