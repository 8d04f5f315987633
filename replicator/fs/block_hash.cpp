#include "replicator/fs/block_hash.hpp"

#include <unistd.h>

#include <xxhash.h>

#include <cerrno>

#include "replicator/fs/file_extents.hpp"

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

Result<BlockHashes> hash_file_blocks(int fd, uint64_t size, uint32_t block_size, const std::string& what) {
    auto extents = data_extents(fd, 0, size, what);
    if (!extents) return fail(extents.error());
    BlockHashes result;
    std::string& out = result.hashes;
    result.hole_blocks.assign(((size + block_size - 1) / block_size + 7) / 8, '\0');
    std::string buf(block_size, '\0');
    std::string zero_hash;  // of a whole block of zeros, made once
    for (uint64_t off = 0; off < size; off += block_size) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(block_size, size - off));
        if (!has_data(*extents, off, off + want)) {
            uint64_t k = off / block_size;
            result.hole_blocks[k / 8] = static_cast<char>(result.hole_blocks[k / 8] | (1 << (k % 8)));
            if (want == block_size) {
                if (zero_hash.empty()) zero_hash = block_hash(std::string(block_size, '\0').data(), block_size);
                out += zero_hash;
            } else {
                out += block_hash(std::string(want, '\0').data(), want);
            }
            continue;
        }
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
    // Cut short (the file shrank): the map covers the blocks hashed.
    result.hole_blocks.resize((out.size() / 16 + 7) / 8);
    return result;
}

}  // namespace iz::replicator
