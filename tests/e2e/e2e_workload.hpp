#pragma once
// Workloads that change a source tree the way programs do, through plain
// syscalls, so the agent sees real events.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace iz::test::e2e {

// One of every operation the replication carries: create, mkdir, symlink,
// hard link, unlink, rmdir, renames (in one directory, across directories,
// replacing a file, a directory with children), chmod, chown, utimes,
// pwrite at offsets, truncate (shrink and grow), xattr set and remove.
void every_operation(const std::filesystem::path& dir);

// `count` operations drawn from a seeded generator over a tree it keeps
// track of. The same seed gives the same operations. Each operation done is
// appended to `log` when given, to trace a divergence back to its cause.
void random_operations(const std::filesystem::path& dir, uint32_t seed, int count, std::string* log = nullptr);

// What a workload did, one line per operation with its outcome; other
// threads (a kill, a sync) may add their lines in between.
class OpLog {
public:
    void add(const std::string& line) {
        std::lock_guard lock(mutex_);
        text_ += line;
        text_ += '\n';
        ++lines_;
    }
    std::string text() const {
        std::lock_guard lock(mutex_);
        return text_;
    }
    size_t lines() const {
        std::lock_guard lock(mutex_);
        return lines_;
    }

private:
    mutable std::mutex mutex_;
    std::string text_;
    size_t lines_ = 0;
};

// `count` operations drawn from a seeded generator over every interface a
// program can change a file or the namespace through, not only the ones the
// capture is known to see: renameat2 (RENAME_EXCHANGE, RENAME_NOREPLACE,
// RENAME_WHITEOUT), writes through a shared mmap (with and without msync),
// libaio and io_uring (buffered and O_DIRECT), O_TMPFILE + linkat,
// copy_file_range, FICLONE/FICLONERANGE, fallocate in every mode,
// splice/vmsplice/sendfile into a file, truncate up and down, sparse files
// with large holes, paths deeper than PATH_MAX, xattrs and ACLs, hard links,
// fifos, character and block devices and bound unix sockets, besides the
// plain write/rename/unlink/chmod/chown/utimes/symlink/mkdir/rmdir. Some
// operations are meant to fail (a fallocate mode the filesystem refuses,
// RENAME_NOREPLACE onto an existing name, an unaligned O_DIRECT write, a
// clone on ext4): they are done all the same and their failure logged. An
// operation that fails otherwise throws, naming it. The same seed gives the
// same operations on the same filesystem type.
//
// `kinds` narrows the draw, to find which kind of operation makes a replica
// diverge: by name (create, write, mkdir, rename, rename-dir, exchange,
// noreplace, whiteout, mmap, aio, aio-direct, uring, uring-direct, tmpfile, copy-range, clone,
// fallocate, fallocate-refused, splice, sendfile, truncate, sparse, deep, xattr, acl, link,
// special, unlink, chmod, chown, utimes, symlink, rmdir), `only` those
// (plus create) or all but those in `skip`. `pace` is slept after each
// operation, for a workload that lasts while something else happens.
struct OperationKinds {
    std::vector<std::string> only;
    std::vector<std::string> skip;
    // From IZ_E2E_ONLY_OPS / IZ_E2E_SKIP_OPS, comma-separated.
    static OperationKinds from_environment();
};
void random_interface_operations(const std::filesystem::path& dir, uint32_t seed, int count, OpLog& log,
                                 OperationKinds kinds = {}, std::chrono::microseconds pace = {});

// `count` changes to whatever is beneath `dir` already, the way a person
// works on a tree while no agent watches it: files and directories renamed
// into other directories (over files, into each other's old names, two
// directories swapped), trees removed, files deleted and linked, chmod,
// chown, xattrs set and removed, content changed, new entries. Seeded like
// random_operations, each change appended to `log` when given.
void changes_to_existing(const std::filesystem::path& dir, uint32_t seed, int count, std::string* log = nullptr);

// `files` files of `size` bytes of pseudo-random content under dir/bulk.
void bulk_files(const std::filesystem::path& dir, int files, size_t size, uint32_t seed);

}  // namespace iz::test::e2e
