// Exact dirty byte ranges from ext4 and XFS tracepoints, filtered in the
// kernel to the one watched filesystem, with who did it.
//
// Only tracepoint programs, their context fields and basic helpers: that is
// what a kernel in lockdown confidentiality mode still allows (no kprobes,
// no fentry, no bpf_probe_read_kernel).
//
// Two ways to learn a range:
//  - direct: the filesystem's tracepoint carries (dev, ino, offset, length):
//    ext4 write_end/fallocate/punch/zero/collapse/insert, XFS file writes
//    (and ext4 direct writes, from two iomap tracepoints of one thread).
//  - bracketed: the syscall tracepoint knows the range or the new size but
//    only an fd or a path; a filesystem tracepoint fired inside the same
//    syscall names the inode; the syscall's exit emits the event once the
//    call succeeded. Used for truncate (both filesystems), open with O_TRUNC
//    and XFS fallocate, whose tracepoints carry no offsets. A bracketed
//    call that fails after a filesystem tracepoint named its inode may have
//    changed the file all the same (ext4 moves the mtime of a fallocate it
//    then refuses): that is an IZ_DIRTY_UNKNOWN event.
//
// And a safety net for content no range tracepoint sees, stores through a
// shared mapping: XFS reports its write faults; on ext4 every folio the
// page cache marks dirty is reported by writeback_dirty_folio, and those a
// write_end just announced (or a truncate or fallocate in progress on the
// same thread) are dropped here, in the kernel. The rest become
// IZ_DIRTY_UNKNOWN. A store into a folio a write left dirty dirties
// nothing: files faulted in through a mapping are reported at each
// writeback too (and `izwatch sync` has the kernel write back first).
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "capture_events.h"
#include "tracepoint_contexts.h"

// The watched filesystem, in the tracepoints' dev_t encoding
// (major << 20 | minor), set by the loader before load.
const volatile __u32 target_dev = 0;
// Its backing device's name ("7:0"), which the writeback tracepoints carry
// instead of a dev_t; empty: the safety net stays off.
const volatile char target_bdi[32] = {};
// The agent's own process (0: none), whose mappings are reads of its own
// journal: see mapping_fault.
const volatile __u32 own_tgid = 0;

// 16 MiB: about 230,000 events. A burst of tiny writes fills it in a
// fraction of a second; ordinary I/O leaves a busy agent many seconds.
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 16 << 20);
} events SEC(".maps");

__u64 dropped = 0;  // events lost to a full ring buffer

// A program of a tracepoint whose class shares one handler: the section
// names the tracepoint the loader attaches it to.
#define IZ_PROGRAM(section, name, handler) \
    SEC(section)                           \
    int name(void* ctx) { return handler(ctx); }

// ---- emitting ------------------------------------------------------------

// Waking the agent for an event costs the thread that raised it an
// interrupt and a wakeup, and the agent a context switch: for a stream of
// small writes, more than the event itself. Most events need none: a
// write's range is followed, in the same call, by the fanotify event the
// agent wakes for, and reads the ring buffer after; a process's exit only
// names the processes of events read with it. Those are submitted quietly
// (the agent also reads the ring buffer whenever it wakes, at least once a
// second, which is what a range no fanotify event follows, libaio's, is
// left to: such a range is journaled after a second unclaimed anyway).
// Unless the ring buffer fills up: past IZ_WAKE_ABOVE unread, every event
// wakes the agent, far before the 16 MiB would drop any.
#define IZ_WAKE_ABOVE (1 << 20)

static __always_inline void emit_as(__u64 ino, __u32 kind, __u64 offset, __u64 length, int quiet) {
    struct iz_dirty_event* e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        __sync_fetch_and_add(&dropped, 1);
        return;
    }
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u64 uid_gid = bpf_get_current_uid_gid();
    e->ino = ino;
    e->offset = offset;
    e->length = length;
    e->time_ns = bpf_ktime_get_ns();
    e->pid = pid_tgid >> 32;
    e->uid = (__u32)uid_gid;
    e->gid = uid_gid >> 32;
    e->kind = kind;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    __u64 flags = 0;
    if (quiet) flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > IZ_WAKE_ABOVE ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
    bpf_ringbuf_submit(e, flags);
}

// An event nothing else brings to the agent's attention: wakes it.
static __always_inline void emit(__u64 ino, __u32 kind, __u64 offset, __u64 length) {
    emit_as(ino, kind, offset, length, 0);
}

// A range of a write, which a fanotify modify event follows.
static __always_inline void emit_quiet(__u64 ino, __u32 kind, __u64 offset, __u64 length) {
    emit_as(ino, kind, offset, length, 1);
}

static __always_inline void emit_if_watched(__u32 dev, __u64 ino, __u32 kind, __s64 offset, __s64 length) {
    if (dev != target_dev || offset < 0 || length <= 0) return;
    emit_quiet(ino, kind, offset, length);
}

// ---- direct: ext4 ----------------------------------------------------------
// What a write just announced, for the safety net below:
// ext4's write_end fires once per folio, just before that folio is marked
// dirty on the same thread: each CPU remembers the last one, and the dirty
// folio it names is explained, once. A thread moved to another CPU between
// the two finds no match and reports its folio as unknown: the agent then
// compares the whole file, which costs time, never correctness. (XFS needs
// none of this: its write faults have a tracepoint of their own.)
struct recent_write {
    __u64 ino;
    __u64 first;  // page indexes of the range
    __u64 last;
    __u64 time_ns;
    __u32 tid;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct recent_write);
} recent_writes SEC(".maps");

// A folio may start before the write's first page (large folios): up to 2 MiB.
#define IZ_MAX_FOLIO_PAGES 512
// Between write_end and the folio's dirtying: microseconds, unless the
// writer is preempted in between. A write_end into a folio already dirty
// dirties nothing and leaves its slot set: the bound keeps that slot from
// explaining a store through a mapping much later.
#define IZ_RECENT_WRITE_NS 10000000ULL

static __always_inline void remember_write(__u32 dev, __u64 ino, __s64 offset, __s64 length) {
    if (dev != target_dev || offset < 0 || length <= 0 || !target_bdi[0]) return;
    __u32 zero = 0;
    struct recent_write* w = bpf_map_lookup_elem(&recent_writes, &zero);
    if (!w) return;
    w->ino = ino;
    w->first = (__u64)offset >> 12;
    w->last = ((__u64)offset + (__u64)length - 1) >> 12;
    w->time_ns = bpf_ktime_get_ns();
    w->tid = (__u32)bpf_get_current_pid_tgid();
}

// write_end rather than write_begin: it fires once per folio with the bytes
// actually copied, so the ranges neither overlap nor overstate a short write.
static __always_inline int ext4_write_end(struct trace_event_raw_ext4__write_end___iz* ctx) {
    __u32 dev = ctx->dev;
    __u64 ino = ctx->ino;
    __s64 pos = ctx->pos;
    __s64 copied = ctx->copied;
    emit_if_watched(dev, ino, IZ_DIRTY_WRITE, pos, copied);
    remember_write(dev, ino, pos, copied);
    return 0;
}

IZ_PROGRAM("tracepoint/ext4/ext4_da_write_end", ext4_da_write_end, ext4_write_end)

IZ_PROGRAM("tracepoint/ext4/ext4_write_end", ext4_nodelalloc_write_end, ext4_write_end)

IZ_PROGRAM("tracepoint/ext4/ext4_journalled_write_end", ext4_journalled_write_end, ext4_write_end)

// Each also names the inode of the fallocate(2) in progress (bracketed
// below), so that a call refused after it started is still reported.
static __always_inline int bind_fallocate_direct(__u32 dev, __u64 ino);

// A range one of these tracepoints carries, emitted at once.
static __always_inline int ext4_range(__u32 dev, __u64 ino, __u32 kind, __s64 offset, __s64 len) {
    emit_if_watched(dev, ino, kind, offset, len);
    return bind_fallocate_direct(dev, ino);
}

#define IZ_EXT4_RANGE(tracepoint, name, context, kind)                                  \
    SEC("tracepoint/ext4/" tracepoint)                                                  \
    int name(struct context* ctx) { return ext4_range(ctx->dev, ctx->ino, kind, ctx->offset, ctx->len); }

IZ_EXT4_RANGE("ext4_fallocate_enter", ext4_fallocate, trace_event_raw_ext4__fallocate_mode___iz, IZ_DIRTY_FALLOCATE)

IZ_EXT4_RANGE("ext4_punch_hole", ext4_punch_hole, trace_event_raw_ext4__fallocate_mode___iz, IZ_DIRTY_PUNCH_HOLE)

IZ_EXT4_RANGE("ext4_zero_range", ext4_zero_range, trace_event_raw_ext4__fallocate_mode___iz, IZ_DIRTY_ZERO_RANGE)

IZ_EXT4_RANGE("ext4_collapse_range", ext4_collapse_range, trace_event_raw_ext4_collapse_range___iz, IZ_DIRTY_COLLAPSE_RANGE)

IZ_EXT4_RANGE("ext4_insert_range", ext4_insert_range, trace_event_raw_ext4_insert_range___iz, IZ_DIRTY_INSERT_RANGE)

// ext4 direct I/O bypasses write_begin/write_end and goes through iomap.
// iomap_dio_rw_begin has the whole range but fires for reads too, and the
// iocb's write flag is not set there; the first iomap_iter of the same
// thread says which it is (IOMAP_WRITE|IOMAP_DIRECT, stable flag values).
// The loader attaches these only on ext4: XFS has its own direct-write
// tracepoint.
#define IZ_IOMAP_WRITE (1 << 0)
#define IZ_IOMAP_DIRECT (1 << 4)

struct direct_io {
    __u64 ino;
    __u64 offset;
    __u64 length;
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u32);
    __type(value, struct direct_io);
} direct_ios SEC(".maps");

SEC("tracepoint/iomap/iomap_dio_rw_begin")
int iomap_direct_begin(struct trace_event_raw_iomap_dio_rw_begin___iz* ctx) {
    if (ctx->dev != target_dev) return 0;
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct direct_io io = {.ino = ctx->ino, .offset = ctx->pos, .length = ctx->count};
    bpf_map_update_elem(&direct_ios, &tid, &io, BPF_ANY);
    return 0;
}

SEC("tracepoint/iomap/iomap_iter")
int iomap_direct_iter(struct trace_event_raw_iomap_iter___iz* ctx) {
    if (ctx->dev != target_dev) return 0;
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct direct_io* p = bpf_map_lookup_elem(&direct_ios, &tid);
    if (!p) return 0;
    struct direct_io io = *p;
    bpf_map_delete_elem(&direct_ios, &tid);
    unsigned int flags = ctx->flags;
    if (io.ino != ctx->ino || (flags & (IZ_IOMAP_WRITE | IZ_IOMAP_DIRECT)) != (IZ_IOMAP_WRITE | IZ_IOMAP_DIRECT))
        return 0;
    if ((__s64)io.offset >= 0 && io.length > 0) emit_quiet(io.ino, IZ_DIRTY_WRITE, io.offset, io.length);
    return 0;
}

// ---- direct: XFS -----------------------------------------------------------

static __always_inline int xfs_file_write(struct trace_event_raw_xfs_file_class___iz* ctx) {
    emit_if_watched(ctx->dev, ctx->ino, IZ_DIRTY_WRITE, ctx->offset, ctx->count);
    return 0;
}

IZ_PROGRAM("tracepoint/xfs/xfs_file_buffered_write", xfs_buffered_write, xfs_file_write)

IZ_PROGRAM("tracepoint/xfs/xfs_file_direct_write", xfs_direct_write, xfs_file_write)

IZ_PROGRAM("tracepoint/xfs/xfs_file_dax_write", xfs_dax_write, xfs_file_write)

// FICLONERANGE, FIDEDUPERANGE and copy_file_range within XFS share extents
// instead of writing: no write tracepoint fires, and the fanotify modify
// event merges with a write's in the same open. The remap names the range.
SEC("tracepoint/xfs/xfs_reflink_remap_range")
int xfs_remap_range(struct trace_event_raw_xfs_double_io_class___iz* ctx) {
    if (ctx->dev != target_dev) return 0;
    __u64 ino = ctx->dest_ino;
    __s64 offset = ctx->dest_offset;
    __s64 len = ctx->len;
    if (offset >= 0 && len > 0) emit_quiet(ino, IZ_DIRTY_WRITE, offset, len);
    else emit(ino, IZ_DIRTY_UNKNOWN, 0, 0);
    return 0;
}

// ---- bracketed: syscall enter, inode from the filesystem, syscall exit ----

enum pending_op {
    OP_TRUNCATE = 1,    // truncate(2), ftruncate(2): new size known at entry
    OP_OPEN_TRUNC = 2,  // open with O_TRUNC: new size 0, if it truncates at all
    OP_FALLOCATE = 3,   // fallocate(2): mode and range known at entry
};

struct pending {
    __u64 offset;
    __u64 length;
    __u64 ino;  // 0 until a tracepoint of the watched filesystem names it
    __u32 op;
    __u32 mode;
    // Bound by a tracepoint that emitted the range itself (ext4 fallocate):
    // the exit adds nothing when the call succeeded.
    __u32 direct;
    __u32 pad;
};

// Keyed by thread id. LRU: a thread that never reaches the exit tracepoint
// must not leak an entry forever.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u32);
    __type(value, struct pending);
} pending_ops SEC(".maps");

// Per operation, at least the number of entries in pending_ops: counted
// up before an entry goes in, down when end() takes one out (an entry the
// LRU evicts, or one a thread's next call replaces, leaves it higher,
// never lower). Only a thread's own entry is ever looked up, and that
// thread counted it up itself, so a thread that reads 0 has none: the hot
// tracepoints that look for the call in progress (every ext4 journal
// handle, every open's exit, every dirtied folio) skip the hash lookup
// while no bracketed call is in flight anywhere, which is nearly always.
// Per operation, because a tracepoint that binds only some operations
// need look only while one of those is in flight: every O_TRUNC open (a
// program that creates its files with O_TRUNC, as most do) is one in
// flight, and ext4's journal handles, which bind truncates, fire several
// times in each of those opens.
__u64 pending_by_op[4] = {};

static __always_inline void count_pending(__u32 op, __s64 by) {
    if (op < 4) __sync_fetch_and_add(&pending_by_op[op], by);
}

static __always_inline int begin(__u32 op, __u64 offset, __u64 length, __u32 mode) {
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct pending p = {.offset = offset, .length = length, .op = op, .mode = mode};
    count_pending(op, 1);
    bpf_map_update_elem(&pending_ops, &tid, &p, BPF_ANY);
    return 0;
}

// Whether a call of one of these operations may be in flight.
static __always_inline int any_pending(__u32 op_mask) {
    return ((op_mask & (1u << OP_TRUNCATE)) && pending_by_op[OP_TRUNCATE]) ||
           ((op_mask & (1u << OP_OPEN_TRUNC)) && pending_by_op[OP_OPEN_TRUNC]) ||
           ((op_mask & (1u << OP_FALLOCATE)) && pending_by_op[OP_FALLOCATE]);
}

#define IZ_ALL_OPS ((1u << OP_TRUNCATE) | (1u << OP_OPEN_TRUNC) | (1u << OP_FALLOCATE))

static __always_inline struct pending* pending_of(__u32 tid) {
    if (!any_pending(IZ_ALL_OPS)) return 0;
    return bpf_map_lookup_elem(&pending_ops, &tid);
}

// The first inode of the watched filesystem that the syscall touches, for
// the operations this tracepoint can name.
static __always_inline int bind_as(__u32 dev, __u64 ino, __u32 op_mask, __u32 direct) {
    if (!any_pending(op_mask) || dev != target_dev) return 0;
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct pending* p = bpf_map_lookup_elem(&pending_ops, &tid);
    if (!p || p->ino || !((1u << p->op) & op_mask)) return 0;
    p->ino = ino;
    p->direct = direct;
    return 0;
}

static __always_inline int bind(__u32 dev, __u64 ino, __u32 op_mask) { return bind_as(dev, ino, op_mask, 0); }

#define IZ_FALLOC_FL_PUNCH_HOLE 0x02
#define IZ_FALLOC_FL_COLLAPSE_RANGE 0x08
#define IZ_FALLOC_FL_ZERO_RANGE 0x10
#define IZ_FALLOC_FL_INSERT_RANGE 0x20

static __always_inline __u32 fallocate_kind(__u32 mode) {
    if (mode & IZ_FALLOC_FL_PUNCH_HOLE) return IZ_DIRTY_PUNCH_HOLE;
    if (mode & IZ_FALLOC_FL_ZERO_RANGE) return IZ_DIRTY_ZERO_RANGE;
    if (mode & IZ_FALLOC_FL_COLLAPSE_RANGE) return IZ_DIRTY_COLLAPSE_RANGE;
    if (mode & IZ_FALLOC_FL_INSERT_RANGE) return IZ_DIRTY_INSERT_RANGE;
    return IZ_DIRTY_FALLOCATE;
}

static __always_inline int end(struct syscall_exit_ctx* ctx) {
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct pending* p = pending_of(tid);
    if (!p) return 0;
    struct pending done = *p;
    if (bpf_map_delete_elem(&pending_ops, &tid) == 0) count_pending(done.op, -1);
    if (!done.ino) return 0;
    if (ctx->ret < 0) {
        // Refused, but maybe after the filesystem changed something.
        emit(done.ino, IZ_DIRTY_UNKNOWN, 0, 0);
        return 0;
    }
    if (done.direct) return 0;
    if (done.op == OP_FALLOCATE) {
        if ((__s64)done.offset >= 0 && (__s64)done.length > 0)
            emit(done.ino, fallocate_kind(done.mode), done.offset, done.length);
    } else {
        emit(done.ino, IZ_DIRTY_TRUNCATE, done.offset, 0);
    }
    return 0;
}

#define IZ_O_TRUNC 01000

SEC("tracepoint/syscalls/sys_enter_ftruncate")
int enter_ftruncate(struct syscall_enter_ctx* ctx) { return begin(OP_TRUNCATE, ctx->args[1], 0, 0); }
IZ_PROGRAM("tracepoint/syscalls/sys_exit_ftruncate", exit_ftruncate, end)

SEC("tracepoint/syscalls/sys_enter_truncate")
int enter_truncate(struct syscall_enter_ctx* ctx) { return begin(OP_TRUNCATE, ctx->args[1], 0, 0); }
IZ_PROGRAM("tracepoint/syscalls/sys_exit_truncate", exit_truncate, end)

SEC("tracepoint/syscalls/sys_enter_fallocate")
int enter_fallocate(struct syscall_enter_ctx* ctx) {
    return begin(OP_FALLOCATE, ctx->args[2], ctx->args[3], (__u32)ctx->args[1]);
}
IZ_PROGRAM("tracepoint/syscalls/sys_exit_fallocate", exit_fallocate, end)

SEC("tracepoint/syscalls/sys_enter_openat")
int enter_openat(struct syscall_enter_ctx* ctx) {
    if (!(ctx->args[2] & IZ_O_TRUNC)) return 0;
    return begin(OP_OPEN_TRUNC, 0, 0, 0);
}
IZ_PROGRAM("tracepoint/syscalls/sys_exit_openat", exit_openat, end)

SEC("tracepoint/syscalls/sys_enter_open")
int enter_open(struct syscall_enter_ctx* ctx) {
    if (!(ctx->args[1] & IZ_O_TRUNC)) return 0;
    return begin(OP_OPEN_TRUNC, 0, 0, 0);
}
IZ_PROGRAM("tracepoint/syscalls/sys_exit_open", exit_open, end)

SEC("tracepoint/syscalls/sys_enter_creat")
int enter_creat(struct syscall_enter_ctx* ctx) { return begin(OP_OPEN_TRUNC, 0, 0, 0); }
IZ_PROGRAM("tracepoint/syscalls/sys_exit_creat", exit_creat, end)

// ext4: a size change always starts a journal handle on the inode, growing
// or shrinking (and the first handle a truncate starts is on that inode).
// Only a real truncation calls ext4_truncate, which is what tells an O_TRUNC
// open of a non-empty file from the creation of a new one (which starts
// handles on the directory and dirties the new inode but truncates
// nothing). Journal handles on an inode are a quarter of the inode
// dirtyings a create/write/unlink makes (2 against 8), and this program
// costs every one of them, truncate in flight or not.
SEC("tracepoint/ext4/ext4_journal_start_inode")
int ext4_bind_truncate(struct trace_event_raw_ext4_journal_start_inode___iz* ctx) {
    return bind(ctx->dev, ctx->ino, 1u << OP_TRUNCATE);
}

// Kernels before 6.4 have no handle tracepoint that names the inode: every
// size change also dirties the inode (the loader attaches this one only
// where ext4_journal_start_inode is absent).
SEC("tracepoint/ext4/ext4_mark_inode_dirty")
int ext4_bind_truncate_dirty(struct trace_event_raw_ext4_mark_inode_dirty___iz* ctx) {
    return bind(ctx->dev, ctx->ino, 1u << OP_TRUNCATE);
}

SEC("tracepoint/ext4/ext4_truncate_enter")
int ext4_bind_open_trunc(struct trace_event_raw_ext4__truncate___iz* ctx) {
    return bind(ctx->dev, ctx->ino, 1u << OP_OPEN_TRUNC);
}

// XFS: every size change goes through xfs_setattr_size.
SEC("tracepoint/xfs/xfs_setattr")
int xfs_bind_truncate(struct trace_event_raw_xfs_inode_class___iz* ctx) {
    return bind(ctx->dev, ctx->ino, (1u << OP_TRUNCATE) | (1u << OP_OPEN_TRUNC));
}

static __always_inline int bind_fallocate_direct(__u32 dev, __u64 ino) {
    return bind_as(dev, ino, 1u << OP_FALLOCATE, 1);
}

// XFS fallocate: one of these starts every mode; none carries the range.
static __always_inline int xfs_bind_fallocate(struct trace_event_raw_xfs_inode_class___iz* ctx) {
    return bind(ctx->dev, ctx->ino, 1u << OP_FALLOCATE);
}

IZ_PROGRAM("tracepoint/xfs/xfs_alloc_file_space", xfs_bind_alloc, xfs_bind_fallocate)

IZ_PROGRAM("tracepoint/xfs/xfs_free_file_space", xfs_bind_free, xfs_bind_fallocate)

IZ_PROGRAM("tracepoint/xfs/xfs_zero_file_space", xfs_bind_zero, xfs_bind_fallocate)

IZ_PROGRAM("tracepoint/xfs/xfs_collapse_file_space", xfs_bind_collapse, xfs_bind_fallocate)

IZ_PROGRAM("tracepoint/xfs/xfs_insert_file_space", xfs_bind_insert, xfs_bind_fallocate)

// XFS moves the times of a fallocate before it checks the range (a
// collapse it then refuses as unaligned has changed the mtime): the time
// update names the inode first. Runs at most once per write that moves a
// time, and finds no pending call there.
IZ_PROGRAM("tracepoint/xfs/xfs_update_time", xfs_bind_time, xfs_bind_fallocate)

// ---- the safety net: folios dirtied where no range tracepoint fired --------

// Inodes of the watched filesystem that a mapping has faulted in or that a
// store through a mapping has dirtied. A store into a folio already dirty
// raises nothing at all: no fault when its page table entry is writable
// already, and when it is not (a fresh mapping, or one write-protected by
// the last writeback) ext4's page_mkwrite finds the folio dirty and marks
// nothing. That is the case of a store into a page a write(2), or the
// zeroing of a truncate, has just left dirty: write_end explained the
// folio's dirtying, and nothing ever reports the store. What is always true
// is that such a folio is dirty, so it is written back some time after the
// store: every writeback of an inode in this map, when it starts and when
// it ends, is reported as content unknown. The end matters: a store made
// while a writeback pass was already under way (the start already
// reported, perhaps read by the agent already) lands in a folio that pass
// has not cleaned yet (a folio it has cleaned is write-protected, and the
// store then dirties it anew, which is reported), so that folio's write
// completes before the inode's writeback ends.
// No tracepoint says when the last mapping of a file goes (munmap names no
// file), but a mapping holds a reference to its inode: an inode the kernel
// evicts has none left, and is forgotten then (an unlinked file at its last
// close or unmap, a linked one when the inode cache lets it go). Forgetting
// by age would lose the store through a mapping made long ago, which is the
// very case this map is for. Beyond that the LRU bounds it: past
// IZ_MAPPED_FILES inodes, the least recently faulted goes. A file only read
// through a mapping costs a whole-file compare per writeback only when it
// is also written. Files written by write(2) alone never enter the map: the
// ordinary write path pays nothing more.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, IZ_MAPPED_FILES);
    __type(key, __u64);
    __type(value, __u8);
} mapped_files SEC(".maps");

static __always_inline void remember_mapped(__u64 ino) {
    // A lookup marks the entry recently used as an update would, without
    // the update's lock: the common case, a fault on a file already known.
    if (bpf_map_lookup_elem(&mapped_files, &ino)) return;
    __u8 one = 1;
    bpf_map_update_elem(&mapped_files, &ino, &one, BPF_ANY);
}

// Every eviction of the watched filesystem's inodes (one per unlinked
// file) comes here; few were ever mapped. The lookup takes no lock, the
// delete takes the map's.
static __always_inline int forget_mapped(__u32 dev, __u64 ino) {
    if (dev == target_dev && bpf_map_lookup_elem(&mapped_files, &ino)) bpf_map_delete_elem(&mapped_files, &ino);
    return 0;
}

SEC("tracepoint/ext4/ext4_evict_inode")
int ext4_forget_evicted(struct trace_event_raw_ext4_evict_inode___iz* ctx) { return forget_mapped(ctx->dev, ctx->ino); }

SEC("tracepoint/xfs/xfs_destroy_inode")
int xfs_forget_evicted(struct trace_event_raw_xfs_inode_class___iz* ctx) { return forget_mapped(ctx->dev, ctx->ino); }

static __always_inline int mapped_store(__u64 ino) {
    remember_mapped(ino);
    emit(ino, IZ_DIRTY_UNKNOWN, 0, 0);
    return 0;
}

// ext4 (the loader decides): a page of a file entered a mapping. Every page
// a process can store into through a mapping got there by one of these two
// (fork copies no page table entry of a shared file mapping, and mremap
// moves only entries already filled). Both only remember the file: neither
// tracepoint says whether the fault is a read or a write (filemap_fault
// carries the inode and the page index, nothing of the fault's flags), and
// reporting every fault made each file read through a mapping a whole-file
// compare. A write fault needs no report of its own: into a clean folio it
// dirties it (reported by the dirty-folio net below), into a folio already
// dirty it is reported when that folio is written back, which a sync has
// done at once.
//
// The agent maps only its own journal, read-only, to ship it: were its
// segments remembered, every group commit's writeback of the journal would
// come back as a change of unknown content to a file outside the tree
// (woken for twice, looked for in vain each time). A store through a
// mapping is made by the process that maps, which faults in its own page
// table entries, so another process's mapping of any file is remembered
// all the same.
static __always_inline int fault_of_agent(void) {
    return own_tgid && (__u32)(bpf_get_current_pid_tgid() >> 32) == own_tgid;
}

SEC("tracepoint/filemap/mm_filemap_fault")
int mapping_fault(struct trace_event_raw_mm_filemap_fault___iz* ctx) {
    if (ctx->s_dev != target_dev || fault_of_agent()) return 0;
    remember_mapped(ctx->i_ino);
    return 0;
}

SEC("tracepoint/filemap/mm_filemap_map_pages")
int mapping_fault_around(struct trace_event_raw_mm_filemap_op_page_cache_range___iz* ctx) {
    if (ctx->s_dev != target_dev || fault_of_agent()) return 0;
    remember_mapped(ctx->i_ino);
    return 0;
}

// Context fields are read at constant offsets only (the verifier refuses a
// moved context pointer): the comparison is unrolled. Device names ("7:0",
// "259:12") are far shorter than 16.
static __always_inline int is_target_bdi(struct writeback_folio_ctx* ctx) {
#pragma unroll
    for (int i = 0; i < 16; ++i) {
        char c = target_bdi[i];
        if (ctx->name[i] != c) return 0;
        if (!c) return 1;
    }
    return 0;
}

// Attached on ext4 only (the loader decides).
SEC("tracepoint/writeback/writeback_dirty_folio")
int dirty_folio(struct writeback_folio_ctx* ctx) {
    if (!target_bdi[0]) return 0;
    if (!is_target_bdi(ctx)) return 0;
    __u64 ino = ctx->ino;
    // ext4's metadata (bitmaps, inode tables, directories) lives in the
    // block device's own page cache, whose inode number is its dev_t.
    if (ino == target_dev) return 0;
    __u64 index = ctx->index;
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 tid = (__u32)pid_tgid;
    __u32 zero = 0;
    struct recent_write* w = bpf_map_lookup_elem(&recent_writes, &zero);
    if (w && w->tid == tid && w->ino == ino && index <= w->last && index + IZ_MAX_FOLIO_PAGES > w->first) {
        w->tid = 0;  // one folio per write_end
        if (bpf_ktime_get_ns() - w->time_ns < IZ_RECENT_WRITE_NS) return 0;
    }
    // Zeroing by a truncate or fallocate in progress: its exit explains it.
    if (pending_of(tid)) return 0;
    return mapped_store(ino);
}

// XFS says so itself, for every write fault, also on a folio already dirty.
SEC("tracepoint/xfs/xfs_write_fault")
int xfs_write_fault(struct trace_event_raw_xfs_fault_class___iz* ctx) {
    if (ctx->dev != target_dev) return 0;
    return mapped_store(ctx->ino);
}

static __always_inline int mapped_writeback(struct trace_event_raw_writeback_inode_template___iz* ctx) {
    if (ctx->dev != target_dev) return 0;
    __u64 ino = ctx->ino;
    if (!bpf_map_lookup_elem(&mapped_files, &ino)) return 0;
    emit(ino, IZ_DIRTY_UNKNOWN, 0, 0);
    return 0;
}

IZ_PROGRAM("tracepoint/writeback/sb_mark_inode_writeback", mapped_writeback_start, mapped_writeback)

IZ_PROGRAM("tracepoint/writeback/sb_clear_inode_writeback", mapped_writeback_end, mapped_writeback)

// ---- attribution -----------------------------------------------------------
// One event per process exit, system-wide: rare next to file I/O, and the
// only way to name the process behind a namespace event whose pid has
// already vanished from /proc by the time the agent reads fanotify.

SEC("tracepoint/sched/sched_process_exit")
int iz_process_exit(void* ctx) {
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    if ((__u32)pid_tgid != (__u32)(pid_tgid >> 32)) return 0;  // a thread, not the process
    emit_quiet(0, IZ_PROCESS_EXIT, 0, 0);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
