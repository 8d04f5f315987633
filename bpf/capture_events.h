/* Shared between bpf/capture.bpf.c and its loader (bpf_capture.cpp): one
 * ring-buffer record per dirtied byte range. Plain C with fixed-width
 * fields so that clang -target bpf and g++ agree on the layout. */
#ifndef IZ_CAPTURE_EVENTS_H
#define IZ_CAPTURE_EVENTS_H

/* Values of iz_dirty_event.kind; the same numbers as iz::agent::DirtyKind
 * (bpf/bpf_capture.cpp checks them at build time). */
#define IZ_DIRTY_WRITE 1
#define IZ_DIRTY_TRUNCATE 2 /* offset = new size, length = 0 */
#define IZ_DIRTY_FALLOCATE 3
#define IZ_DIRTY_PUNCH_HOLE 4
#define IZ_DIRTY_ZERO_RANGE 5
#define IZ_DIRTY_COLLAPSE_RANGE 6 /* everything after offset moved down by length */
#define IZ_DIRTY_INSERT_RANGE 7   /* everything after offset moved up by length */
/* Not a range: a process ended (ino, offset and length are 0). fanotify
 * reports only a pid, and a short-lived process (mv, ln, touch) is gone
 * from /proc before the agent reads its events; this carries its name. */
#define IZ_PROCESS_EXIT 8
/* The content or attributes of ino changed in a way no range describes
 * (a store through a shared mapping, a syscall that failed after the
 * kernel had changed the file): the agent compares the whole file and
 * reads its attributes again. offset and length are 0. */
#define IZ_DIRTY_UNKNOWN 9

#define IZ_COMM_LEN 16

/* How many inodes the safety net remembers as mapped (an LRU: past this,
 * the least recently faulted is forgotten). */
#define IZ_MAPPED_FILES 8192

struct iz_dirty_event {
    unsigned long long ino;
    unsigned long long offset;
    unsigned long long length;
    unsigned long long time_ns; /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
    unsigned int pid;           /* thread group id */
    unsigned int uid;
    unsigned int gid;
    unsigned int kind;
    char comm[IZ_COMM_LEN];
};

#endif
