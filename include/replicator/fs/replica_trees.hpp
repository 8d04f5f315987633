#pragma once
// The server's side of a verification: the hash tree of one fileset's
// replica (tree_hash.hpp), walked when the agent asks for it afresh and kept
// so that the agent's later questions about the directories that differ are
// answered without walking again.
//
// Promises:
//  - A request's path is checked like any path from the wire and resolved
//    beneath the replica root; one that is refused is answered with the
//    reason (the connection stays).
//  - Thread-safe: one walk at a time; it reads the replica and changes
//    nothing, so operations may be applied meanwhile.
//  - Content hashes are kept by inode, size, mtime and ctime: a file is read
//    again only when it changed (any write moves its ctime).
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

#include "common/unique_fd.hpp"
#include "replicator/fs/tree_hash.hpp"
#include "replicator/wire/protocol.hpp"

namespace iz::replicator {

class ReplicaTrees {
public:
    // `cache_file`: where content hashes are kept between walks (tree_hash.hpp
    // HashCache), so that a file unchanged since the last walk is not read
    // again; "" for none.
    ReplicaTrees(std::filesystem::path root, std::string reserved_top, std::string cache_file = {});
    proto::TreeReply answer(const proto::TreeRequest& req);

private:
    std::filesystem::path root_;
    std::string reserved_top_;
    std::mutex mu_;
    UniqueFd root_fd_;
    struct Walk {
        std::string path;
        std::vector<std::string> excludes;
        std::optional<tree::Node> node;
    };
    std::optional<Walk> last_;
    tree::HashCache cache_;
};

// A reply of at most about this many bytes of children; the rest follow on request.
inline constexpr size_t kTreeReplyBudget = 8u << 20;

}  // namespace iz::replicator
