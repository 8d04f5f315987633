#include "replicator/wire/rejections_file.hpp"

#include <cerrno>
#include <fstream>
#include <iterator>

#include "common/durable_file.hpp"

namespace iz::replicator {

Result<std::vector<proto::RejectedMsg>> read_rejections_file(const std::filesystem::path& file,
                                                             std::string_view first_line,
                                                             const DamagedRejections& damaged) {
    std::vector<proto::RejectedMsg> out;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        if (errno == ENOENT) return out;
        return fail(sys_error("open", file.string(), errno));
    }
    std::string bytes(std::istreambuf_iterator<char>(in), {});
    if (in.bad()) return fail(sys_error("read", file.string(), EIO));
    std::string_view rest(bytes);
    if (!rest.starts_with(first_line)) return fail(damaged("not a file of rejections"));
    rest.remove_prefix(first_line.size());
    while (!rest.empty()) {
        if (rest.size() < proto::kHeaderBytes) return fail(damaged("cut short"));
        auto header = proto::parse_header(rest.substr(0, proto::kHeaderBytes));
        if (!header) return fail(damaged(header.error().message));
        if (header->type != proto::MsgType::rejected) return fail(damaged("a frame of another kind"));
        rest.remove_prefix(proto::kHeaderBytes);
        if (rest.size() < header->length) return fail(damaged("cut short"));
        auto m = proto::decode_body(header->type, rest.substr(0, header->length));
        if (!m) return fail(damaged(m.error().message));
        out.push_back(std::get<proto::RejectedMsg>(*m));
        rest.remove_prefix(header->length);
    }
    return out;
}

Status write_rejections_file(const std::filesystem::path& file, std::string_view first_line,
                             const std::vector<proto::RejectedMsg>& kept) {
    std::error_code ec;
    if (kept.empty()) {
        bool removed = std::filesystem::remove(file, ec);
        if (ec) return fail(sys_error("remove", file.string(), ec.value()));
        if (!removed) return {};  // there was none
        return fsync_dir(file.parent_path());
    }
    std::filesystem::create_directories(file.parent_path(), ec);
    if (ec) return fail(sys_error("create directory", file.parent_path().string(), ec.value()));
    std::string bytes(first_line);
    for (auto& r : kept) {
        auto frame = proto::encode_frame(proto::Message{r});
        if (!frame) return fail(frame.error());
        bytes += *frame;
    }
    return write_file_durably(file, bytes, 0600);
}

}  // namespace iz::replicator
