// The smallest program that proves the BPF build and load path: counts
// getppid() calls made by one process (set by userspace before attaching).
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

const volatile __u32 target_tgid = 0;

__u64 calls = 0;

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_getppid(void* ctx) {
    if ((bpf_get_current_pid_tgid() >> 32) != target_tgid) return 0;
    __sync_fetch_and_add(&calls, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
