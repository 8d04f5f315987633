#pragma once
// zstd contexts kept for the life of a thread.
//
// Creating a context allocates and initialises its tables, which costs more
// than compressing a typical extent. Each shipping worker and each server
// I/O thread handles one extent at a time, so one compression and one
// decompression context per thread, made on first use and reset (not
// rebuilt) for every extent, serve every connection that thread carries.
#include <zstd.h>

#include <cstddef>

namespace iz::replicator::proto {

// This thread's compression context; nullptr only when zstd cannot allocate.
ZSTD_CCtx* thread_cctx();
// This thread's decompression context; nullptr only when zstd cannot allocate.
ZSTD_DCtx* thread_dctx();
// A scratch buffer of at least `bytes`, reused by this thread (uninitialised).
char* thread_scratch(size_t bytes);

}  // namespace iz::replicator::proto
