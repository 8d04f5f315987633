#pragma once
// One message of every type, with every field set to something other than
// its default, so a field lost by encoding or decoding shows up.
#include <string>
#include <vector>

#include "replicator/wire/protocol.hpp"

namespace iz::test {

inline std::vector<replicator::proto::Message> sample_messages() {
    namespace p = replicator::proto;
    std::string nonce_a(p::kNonceBytes, 'a'), nonce_b(p::kNonceBytes, '\xb0');
    p::OpMsg op{.lsn = 0x0102030405060708ull,
                .kind = p::OpKind::content_begin,
                .path = "dir/sub/file.txt",
                .target = "other/\xff\x01name",
                .mode = 0100755u,
                .uid = 1234u,
                .gid = 5678u,
                .atime_ns = -1'500'000'000,
                .mtime_ns = 1'700'000'000'123'456'789,
                .size = 1ull << 40,
                .rdev = 0x0801,
                .replaced = true,
                .xattr_name = "user.note",
                .xattr_value = std::string("v\0al", 4),
                .extents = {p::make_extent(0, "plain bytes", false),
                            p::make_extent(4096, std::string(8192, 'z'), true)},
                .base = p::ContentBase::existing,
                .parent_mtime_ns = 42,
                .target_parent_mtime_ns = -42,
                .more = true,
                .holes = {{1ull << 20, 4096}, {1ull << 30, 1ull << 30}}};
    return {
        p::Hello{.min_version = 1, .max_version = 3, .agent_id = "agent-1", .fileset = "home.docs", .client_nonce = nonce_a},
        p::Challenge{.version = 1, .server_nonce = nonce_b, .server_proof = std::string(p::kProofBytes, '\x07')},
        p::Auth{.client_proof = std::string(p::kProofBytes, '\x09')},
        p::Welcome{.durable_lsn = 77, .resume_lsn = 99, .server_host = "replica-a"},
        p::ErrorMsg{.message = "no such fileset"},
        op,
        p::Commit{.lsn = 123456789},
        p::Ack{.lsn = 987654321},
        p::HashRequest{.id = 5, .path = "a/b"},
        p::HashReply{.id = 6, .exists = true, .size = 1 << 20, .block_size = 65536, .hashes = std::string(32, '\x5a'), .hole_blocks = "\x02"},
        p::ConflictMsg{.lsn = 8, .path = "x", .conflict_copy = "x.conflict-h-t", .server_host = "h", .message = "modified"},
        p::Ping{.id = 11},
        p::Pong{.id = 12},
        p::RejectedMsg{.lsn = 9, .path = "a/b", .message = "File name too long"},
        p::TreeRequest{.id = 13, .path = "a/b", .fresh = true, .list = true, .start = 7, .excludes = {"*.tmp", "cache"}},
        p::TreeReply{.id = 14,
                     .error = "refused",
                     .found = true,
                     .self = {.name = "b", .meta = std::string("d\0\1", 3), .hash = std::string(16, '\x11')},
                     .children = {{.name = "c", .meta = "f", .hash = std::string(16, '\x22')},
                                  {.name = "d", .meta = "l", .hash = std::string(16, '\x33')}},
                     .more = true},
        p::Subscribe{.cursor = 4242},
        p::Forward{.origin = "desk", .origin_lsn = 77, .op = op},
        p::HeadRequest{.id = 15},
        p::HeadReply{.id = 15, .lsn = 4343},
        p::SubscribeRefused{.fileset = "docs", .message = "fileset 'docs' is send-only for agent laptop"},
        p::RejectedReplay{.id = 16},
        p::RejectedReplayed{.id = 16, .count = 2},
        p::RejectedKept{.lsn = 9, .path = "a/b"},
        p::SubscribeRanges{.cursor = 4242, .whole_through = 4300},
        p::SubscribeAllowed{.fileset = "docs", .message = "fileset 'docs' is read-write for agent laptop again"},
    };
}

}  // namespace iz::test
