#include "rejection_store.hpp"

#include <fmt/format.h>

#include <string_view>

#include "replicator/wire/rejections_file.hpp"

namespace iz::replicator {

namespace {

// The first line of the file (rejections_file.hpp): not the server's, whose
// list of rejections has the same format.
constexpr std::string_view kMagic = "intermezzo rejections 1\n";

Error damaged(const std::filesystem::path& file, const std::string& why) {
    return make_error(fmt::format("the rejections kept in '{}' cannot be read ({}): remove the file to forget them, "
                                  "then run `izwatch verify` to find what the replica lacks",
                                  file.string(), why));
}

}  // namespace

std::filesystem::path rejections_file(const std::filesystem::path& state_dir, const ServerEndpoint& ep) {
    return state_dir / "rejected" / consumer_name(ep);
}

Result<std::vector<RejectedRecord>> load_rejections(const std::filesystem::path& file) {
    return read_rejections_file(file, kMagic, [&](const std::string& why) { return damaged(file, why); });
}

Status save_rejections(const std::filesystem::path& file, const std::vector<RejectedRecord>& kept) {
    return write_rejections_file(file, kMagic, kept);
}

}  // namespace iz::replicator
