#pragma once
// Opening a kernel file handle (name_to_handle_at / fanotify FID) again.
// Written once here because three places need it: the agent reading an
// entry that moved before its event, the agent locating a directory, and
// the shipper reading data at ship time.
#include <cstdint>
#include <string_view>

namespace iz {

// open_by_handle_at for a handle of `type` with `bytes`, relative to any
// descriptor on the filesystem (it must not be O_PATH). Returns the new
// descriptor, or -1 with errno set like the syscall's (ESTALE also for a
// handle too short or too long to be one).
int open_by_handle(int mount_fd, int32_t type, std::string_view bytes, int flags);

}  // namespace iz
