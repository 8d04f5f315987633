#pragma once
// Workloads that change a source tree the way programs do, through plain
// syscalls, so the agent sees real events.
#include <cstdint>
#include <filesystem>
#include <string>

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
