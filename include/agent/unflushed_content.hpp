#pragma once
// Files whose page cache still holds dirty pages when the agent starts.
//
// A store through a shared mapping into a page a write left dirty raises
// no event when it is made: the eBPF net reports it when the kernel writes
// that page back, for the files it saw mapped (writeback_flusher.hpp). That
// knowledge lives in the capture programs' maps, and dies with an agent
// killed (or stopped) before the writeback: the next start would find the
// file's size and mtime as the journal left them (a later record read the
// mtime the store had moved) and send nothing, while the replica lacks the
// stored bytes. (A clean stop does not write the tree back either.) So a
// file still dirty at the start that the last run changed (its mtime, as
// the journal left it, or else its ctime now, not older than the last
// run's start) may hold such a store, and its content is compared rather
// than trusted. The ctime counts too: a utimensat after the store took the
// mtime back before the run. Each file is opened by its handle, since a
// rename while no agent ran leaves the saved path naming nothing. A file
// the last run did not change is left alone: a store in that run would
// have moved its ctime past the run's start. A store whose page the
// kernel wrote back while no agent ran is not found this way.
#include "agent/tree_state.hpp"

namespace iz::agent {

// Gives every regular file of `tree` (paths beneath `root_fd`) with an
// mtime in the tree, or a ctime now, at or after `since_ns` whose pages
// are dirty or under writeback now the mtime kUnknownMtime, so that the comparison with a fresh scan
// sends its content. A file that cannot be opened, or a kernel without
// cachestat(2), leaves its entry as it is.
// Returns how many entries were marked.
size_t mark_unflushed_content(int root_fd, Tree& tree, int64_t since_ns);

}  // namespace iz::agent
