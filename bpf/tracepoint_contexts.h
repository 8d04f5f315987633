/* Context layouts of the tracepoints bpf/capture.bpf.c reads. Only the
 * fields used are declared: preserve_access_index makes libbpf relocate
 * each one against the running kernel's trace_event_raw_* type (the
 * ___iz suffix is dropped when matching), from vmlinux or module BTF. That
 * keeps the object independent of whether XFS was built in when vmlinux.h
 * was generated. */
#ifndef IZ_TRACEPOINT_CONTEXTS_H
#define IZ_TRACEPOINT_CONTEXTS_H

/* Classes of the same fields: each name must still be its own, the one of
 * the kernel type it is relocated against. */
#define IZ_INODE_CONTEXT(name, ino_type) \
    struct name {                        \
        dev_t dev;                       \
        ino_type ino;                    \
    } __attribute__((preserve_access_index))

#define IZ_RANGE_CONTEXT(name) \
    struct name {              \
        dev_t dev;             \
        ino_t ino;             \
        loff_t offset;         \
        loff_t len;            \
    } __attribute__((preserve_access_index))

#define IZ_FILEMAP_CONTEXT(name) \
    struct name {                \
        unsigned long i_ino;     \
        dev_t s_dev;             \
    } __attribute__((preserve_access_index))

struct trace_event_raw_ext4__write_end___iz {
    dev_t dev;
    ino_t ino;
    loff_t pos;
    unsigned int copied;
} __attribute__((preserve_access_index));

IZ_RANGE_CONTEXT(trace_event_raw_ext4__fallocate_mode___iz);

IZ_RANGE_CONTEXT(trace_event_raw_ext4_collapse_range___iz);

IZ_RANGE_CONTEXT(trace_event_raw_ext4_insert_range___iz);

IZ_INODE_CONTEXT(trace_event_raw_ext4_mark_inode_dirty___iz, ino_t);

IZ_INODE_CONTEXT(trace_event_raw_ext4_journal_start_inode___iz, unsigned long);

IZ_INODE_CONTEXT(trace_event_raw_ext4_evict_inode___iz, ino_t);

IZ_INODE_CONTEXT(trace_event_raw_ext4__truncate___iz, ino_t);

struct trace_event_raw_iomap_dio_rw_begin___iz {
    dev_t dev;
    ino_t ino;
    loff_t pos;
    size_t count;
} __attribute__((preserve_access_index));

struct trace_event_raw_xfs_file_class___iz {
    dev_t dev;
    unsigned long long ino;
    loff_t offset;
    size_t count;
} __attribute__((preserve_access_index));

IZ_INODE_CONTEXT(trace_event_raw_xfs_inode_class___iz, unsigned long long);

// syscalls/sys_enter_* and sys_exit_*: the layout every syscall tracepoint
// shares (common header, syscall number, then the arguments or the result).
struct syscall_enter_ctx {
    __u64 common;
    __s32 nr;
    __u32 pad;
    __u64 args[6];
};

struct syscall_exit_ctx {
    __u64 common;
    __s32 nr;
    __u32 pad;
    __s64 ret;
};

struct trace_event_raw_iomap_iter___iz {
    dev_t dev;
    u64 ino;
    unsigned int flags;
} __attribute__((preserve_access_index));

// writeback/writeback_dirty_folio: a fixed layout rather than a relocated
// one, because the device name is compared byte by byte and the verifier
// only takes context reads at constant offsets (a relocated array is read
// through a moved context pointer). The layout has not changed since the
// tracepoint was writeback_dirty_page.
struct writeback_folio_ctx {
    __u64 common;
    char name[32];
    __u64 ino;
    __u64 index;
};

IZ_INODE_CONTEXT(trace_event_raw_writeback_inode_template___iz, ino_t);

struct trace_event_raw_xfs_double_io_class___iz {
    dev_t dev;
    unsigned long long src_ino;
    unsigned long long dest_ino;
    loff_t dest_offset;
    long long len;
} __attribute__((preserve_access_index));

IZ_INODE_CONTEXT(trace_event_raw_xfs_fault_class___iz, unsigned long long);

/* Which inode a mapping faulted in (mm_filemap_map_pages is of the class
 * mm_filemap_op_page_cache_range). */
IZ_FILEMAP_CONTEXT(trace_event_raw_mm_filemap_fault___iz);

IZ_FILEMAP_CONTEXT(trace_event_raw_mm_filemap_op_page_cache_range___iz);

#endif
