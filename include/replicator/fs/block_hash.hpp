#pragma once
// Block hashes for finding what changed inside a file when the dirty ranges
// are unknown: both sides hash fixed-size blocks with XXH3-128 and only the
// blocks that differ travel.
#include <cstdint>
#include <string>

#include "common/error.hpp"

namespace iz::replicator {

inline constexpr uint32_t kMinBlockSize = 64u << 10;
inline constexpr uint32_t kMaxBlockSize = 64u << 20;
// Keeps a hash reply well under the frame limit (16 bytes per block).
inline constexpr uint64_t kMaxBlocks = 1u << 19;

// The block size used for a file of `size` bytes.
uint32_t block_size_for(uint64_t size);

// 16 bytes, canonical (big-endian) XXH3-128 of `data`.
std::string block_hash(const void* data, size_t len);

struct BlockHashes {
    std::string hashes;       // 16 bytes per block
    std::string hole_blocks;  // a bit per block, set when it is all hole (proto::HashReply)
};

// Hashes of every block of an open file (`size` bytes from offset 0),
// concatenated. A block that is all hole is hashed as zeros without being
// read (a sparse file of gigabytes costs nothing to hash) and marked in
// hole_blocks. `what` names the file in errors.
Result<BlockHashes> hash_file_blocks(int fd, uint64_t size, uint32_t block_size, const std::string& what);

}  // namespace iz::replicator
