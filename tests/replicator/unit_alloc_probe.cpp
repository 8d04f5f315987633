// Replaces the global operator new of the unit test executable: it only
// records sizes (thread-locally, while an AllocProbe is alive) and then
// allocates as usual.
#include "unit_alloc_probe.hpp"

#include <cstdlib>
#include <new>

namespace {
thread_local int probes = 0;
thread_local size_t largest_seen = 0;

void* allocate(size_t n) {
    if (probes > 0 && n > largest_seen) largest_seen = n;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
}  // namespace

namespace iz::test {
AllocProbe::AllocProbe() {
    ++probes;
    largest_seen = 0;
}
AllocProbe::~AllocProbe() { --probes; }
size_t AllocProbe::largest() const { return largest_seen; }
}  // namespace iz::test

void* operator new(size_t n) { return allocate(n); }
void* operator new[](size_t n) { return allocate(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
    try {
        return allocate(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
    try {
        return allocate(n);
    } catch (...) {
        return nullptr;
    }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
