#pragma once
// Replacing a small file so that after a crash it holds either the old or
// the new content, and the new one survives: write a temporary, fsync it,
// rename it over, fsync the directory. Without the directory's fsync the
// rename itself may be lost, and the file comes back with its old content
// (or not at all) although its writer was told it was durable.
//
// Every failure is a Status naming the step, the path and the errno text
// (a temporary left by a failure is truncated by the next write).
#include <sys/types.h>

#include <filesystem>
#include <string_view>

#include "common/error.hpp"

namespace iz {

// The temporary is `path` + ".tmp", in the same directory.
Status write_file_durably(const std::filesystem::path& path, std::string_view content, mode_t mode = 0600);
// With the temporary named by the caller (it must be in path's directory):
// for a directory whose readers skip names of a certain shape.
Status write_file_durably(const std::filesystem::path& path, std::string_view content, mode_t mode,
                          const std::filesystem::path& temp);

// fsync of a directory (after creating or renaming entries in it).
Status fsync_dir(const std::filesystem::path& dir);

namespace durable_seam {
// Every fsync above goes through this function (::fsync unless replaced),
// so a test can see which descriptors are synced, or make a sync fail.
// Returns the previous one; nullptr restores ::fsync. Not thread-safe:
// replace it only while nothing writes durably.
using FsyncFn = int (*)(int fd);
FsyncFn set_fsync(FsyncFn fn);
}  // namespace durable_seam

}  // namespace iz
