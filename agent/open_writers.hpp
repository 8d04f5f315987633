#pragma once
// Whether a local process holds a file open for writing: a forward must not
// replace (rename over, rewrite, remove) a file under its writer, whose
// later bytes would go into an unlinked file or mix with the forward's
// (receiver.hpp).
//
// Promises:
//  - open_for_writing(path): true when `path` names a regular file that
//    some process (this one included) has open for writing, or mapped
//    shared and writable; false when no process has, or when `path` is no
//    regular file or absent. The test is the kernel's own, exact and cheap:
//    a read lease (fcntl F_SETLEASE F_RDLCK, fcntl(2) "Leases") is refused
//    with EAGAIN exactly then. The lease, when granted, is let go at once.
//  - A failure to tell (a filesystem without leases, EINVAL; not the file's
//    owner and no CAP_LEASE, EACCES; a file that cannot be opened) is an
//    error naming the step, the path and errno's text: the caller decides.
//  - A lease broken while it is held (a writer opens the file in the
//    microseconds between taking and letting go) raises SIGIO in this
//    process, whose default action ends it: a process calling
//    open_for_writing blocks SIGIO first, in every thread
//    (block_lease_signal(), before it starts threads). Nothing here needs
//    the signal; blocked, it is never delivered.
#include <filesystem>

#include "common/error.hpp"

namespace iz::agent {

Result<bool> open_for_writing(const std::filesystem::path& path);

// Blocks SIGIO in the calling thread (and the threads it starts later).
void block_lease_signal();

}  // namespace iz::agent
