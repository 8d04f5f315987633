#pragma once
// Writes that reach a file by ways other than write(2): through a shared
// mapping, asynchronous I/O (libaio and io_uring, buffered and O_DIRECT),
// an O_TMPFILE linked into the tree, clones and copy_file_range after a
// write in the same open, and a fallocate that fails. Each fails the test
// (gtest assertions) when the kernel refuses what it needs, except where
// the filesystem has no such operation (clone on ext4): then `false`.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace iz::test::e2e {

// `size` bytes of `fill` written with write(2) and closed.
void put_file(const std::filesystem::path& p, size_t size, char fill);

// Opens `p` (size unchanged), maps it shared, closes the descriptor, then
// stores `fill` into `count` bytes at each of `offsets`, msyncs and unmaps:
// no write syscall, and the file's close_write came before the stores.
void store_through_mapping(const std::filesystem::path& p, const std::vector<uint64_t>& offsets, size_t count,
                           char fill);

// Creates `p` and writes `size` bytes of `fill` at 0 with io_submit (raw
// syscalls, no libaio), buffered or O_DIRECT (size a multiple of 4096).
void write_with_libaio(const std::filesystem::path& p, size_t size, char fill, bool direct);

// Writes `size` bytes of `fill` at `offset` of the open `fd` with io_submit
// and waits for the completion; leaves `fd` open (buffered or O_DIRECT as it
// was opened).
void write_with_libaio_at(int fd, uint64_t offset, size_t size, char fill);

// The same through io_uring (liburing).
void write_with_io_uring(const std::filesystem::path& p, size_t size, char fill, bool direct);

// An O_TMPFILE in `dir`, `size` bytes of `fill` written, then linked in as
// dir/name.
void link_in_tmpfile(const std::filesystem::path& dir, const std::string& name, size_t size, char fill);

// Opens `dst` once: pwrites 4096 bytes of `fill` at 0, then copies `len`
// bytes of `src` at `src_off` to `dst_off`, with FICLONERANGE (`clone`) or
// copy_file_range. Returns false when the filesystem cannot clone.
bool write_then_copy_in_one_open(const std::filesystem::path& src, const std::filesystem::path& dst, uint64_t src_off,
                                 uint64_t len, uint64_t dst_off, char fill, bool clone);

}  // namespace iz::test::e2e
