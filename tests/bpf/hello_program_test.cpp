// The BPF plumbing end to end: Makefile.bpf built the object and its
// skeleton, and the kernel here loads and runs a tracepoint program.
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "hello.skel.h"

TEST(BpfPlumbing, TracepointProgramLoadsAndCounts) {
    auto* skel = hello__open();
    ASSERT_NE(skel, nullptr);
    skel->rodata->target_tgid = static_cast<__u32>(getpid());
    int err = hello__load(skel);
    ASSERT_EQ(err, 0) << "load: " << strerror(-err);
    err = hello__attach(skel);
    ASSERT_EQ(err, 0) << "attach: " << strerror(-err);
    for (int i = 0; i < 25; ++i) syscall(SYS_getppid);
    EXPECT_EQ(skel->bss->calls, 25u);
    hello__destroy(skel);
}
