#include "block_hash.hpp"

#include <unistd.h>

#include <xxhash.h>

#include <cerrno>

namespace iz::replicator {

uint32_t block_size_for(uint64_t size) {
    uint32_t bs = kMinBlockSize;
    while (bs < kMaxBlockSize && (size + bs - 1) / bs > kMaxBlocks) bs <<= 1;
    return bs;
}

std::string block_hash(const void* data, size_t len) {
    XXH128_hash_t h = XXH3_128bits(data, len);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    return std::string(reinterpret_cast<const char*>(c.digest), sizeof c.digest);
}

Result<std::string> hash_file_blocks(int fd, uint64_t size, uint32_t block_size, const std::string& what) {
    std::string out;
    std::string buf(block_size, '\0');
    for (uint64_t off = 0; off < size; off += block_size) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(block_size, size - off));
        size_t got = 0;
        while (got < want) {
            ssize_t n = ::pread(fd, buf.data() + got, want - got, static_cast<off_t>(off + got));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(sys_error("read for block hashes", what, errno));
            if (n == 0) break;  // shrank under us: hash what is there
            got += static_cast<size_t>(n);
        }
        out += block_hash(buf.data(), got);
        if (got < want) break;
    }
    return out;
}

}  // namespace iz::replicator
