#include "rejection_store.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <string_view>

#include "common/durable_file.hpp"

namespace iz::replicator {

namespace {

// The file is this line, then each rejection as the wire frame the server
// sent it in (RejectedMsg): the protocol's values never change meaning, and
// its decoder checks every size.
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
    std::vector<RejectedRecord> out;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        if (errno == ENOENT) return out;
        return fail(sys_error("open", file.string(), errno));
    }
    std::string bytes(std::istreambuf_iterator<char>(in), {});
    if (in.bad()) return fail(sys_error("read", file.string(), EIO));
    std::string_view rest(bytes);
    if (!rest.starts_with(kMagic)) return fail(damaged(file, "not a file of rejections"));
    rest.remove_prefix(kMagic.size());
    while (!rest.empty()) {
        if (rest.size() < proto::kHeaderBytes) return fail(damaged(file, "cut short"));
        auto header = proto::parse_header(rest.substr(0, proto::kHeaderBytes));
        if (!header) return fail(damaged(file, header.error().message));
        if (header->type != proto::MsgType::rejected) return fail(damaged(file, "a frame of another kind"));
        rest.remove_prefix(proto::kHeaderBytes);
        if (rest.size() < header->length) return fail(damaged(file, "cut short"));
        auto m = proto::decode_body(header->type, rest.substr(0, header->length));
        if (!m) return fail(damaged(file, m.error().message));
        out.push_back(std::get<proto::RejectedMsg>(*m));
        rest.remove_prefix(header->length);
    }
    return out;
}

Status save_rejections(const std::filesystem::path& file, const std::vector<RejectedRecord>& kept) {
    std::error_code ec;
    if (kept.empty()) {
        bool removed = std::filesystem::remove(file, ec);
        if (ec) return fail(sys_error("remove", file.string(), ec.value()));
        if (!removed) return {};  // there was none
        return fsync_dir(file.parent_path());
    }
    std::filesystem::create_directories(file.parent_path(), ec);
    if (ec) return fail(sys_error("create directory", file.parent_path().string(), ec.value()));
    std::string bytes(kMagic);
    for (auto& r : kept) {
        auto frame = proto::encode_frame(proto::Message{r});
        if (!frame) return fail(frame.error());
        bytes += *frame;
    }
    return write_file_durably(file, bytes, 0600);
}

}  // namespace iz::replicator
