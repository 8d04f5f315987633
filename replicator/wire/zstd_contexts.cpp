#include "zstd_contexts.hpp"

#include <memory>

namespace iz::replicator::proto {

namespace {

struct CCtxFree {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
    void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

struct Scratch {
    std::unique_ptr<char[]> data;
    size_t size = 0;
};

}  // namespace

ZSTD_CCtx* thread_cctx() {
    thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> ctx(ZSTD_createCCtx());
    return ctx.get();
}

ZSTD_DCtx* thread_dctx() {
    thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> ctx(ZSTD_createDCtx());
    return ctx.get();
}

char* thread_scratch(size_t bytes) {
    thread_local Scratch s;
    if (s.size < bytes) {
        // new char[] without () leaves it uninitialised: compression overwrites it.
        s.data.reset(new char[bytes]);
        s.size = bytes;
    }
    return s.data.get();
}

}  // namespace iz::replicator::proto
