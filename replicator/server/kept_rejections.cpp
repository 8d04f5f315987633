#include "kept_rejections.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <iterator>
#include <string_view>

#include "common/durable_file.hpp"

namespace iz::replicator {

namespace {

// A line saying what the file is, then each rejection as the wire frame it
// was sent in: the protocol's values never change meaning, and its decoder
// checks every size.
constexpr std::string_view kMagic = "intermezzo server rejections 1\n";

Error damaged(const std::filesystem::path& file, const std::string& why) {
    return make_error(fmt::format("the rejections kept for the agent in '{}' cannot be read ({}): remove the file to "
                                  "forget them, then run `izwatch verify` on the agent to find what the replica lacks",
                                  file.string(), why));
}

}  // namespace

std::filesystem::path KeptRejections::file_in(const std::filesystem::path& state_dir) { return state_dir / "rejected"; }

Result<std::unique_ptr<KeptRejections>> KeptRejections::open(std::filesystem::path file) {
    std::unique_ptr<KeptRejections> out(new KeptRejections(std::move(file)));
    std::ifstream in(out->file_, std::ios::binary);
    if (!in) {
        if (errno == ENOENT) return out;
        return fail(sys_error("open", out->file_.string(), errno));
    }
    std::string bytes(std::istreambuf_iterator<char>(in), {});
    if (in.bad()) return fail(sys_error("read", out->file_.string(), EIO));
    std::string_view rest(bytes);
    if (!rest.starts_with(kMagic)) return fail(damaged(out->file_, "not a file of rejections"));
    rest.remove_prefix(kMagic.size());
    while (!rest.empty()) {
        if (rest.size() < proto::kHeaderBytes) return fail(damaged(out->file_, "cut short"));
        auto header = proto::parse_header(rest.substr(0, proto::kHeaderBytes));
        if (!header) return fail(damaged(out->file_, header.error().message));
        if (header->type != proto::MsgType::rejected) return fail(damaged(out->file_, "a frame of another kind"));
        rest.remove_prefix(proto::kHeaderBytes);
        if (rest.size() < header->length) return fail(damaged(out->file_, "cut short"));
        auto m = proto::decode_body(header->type, rest.substr(0, header->length));
        if (!m) return fail(damaged(out->file_, m.error().message));
        out->kept_.push_back(std::get<proto::RejectedMsg>(*m));
        rest.remove_prefix(header->length);
    }
    return out;
}

Status KeptRejections::keep(const proto::RejectedMsg& r) {
    std::lock_guard lock(mu_);
    auto same = std::find_if(kept_.begin(), kept_.end(),
                             [&](const proto::RejectedMsg& k) { return k.lsn == r.lsn && k.path == r.path; });
    if (same != kept_.end()) {
        if (same->message == r.message) return {};  // kept as it is already
        same->message = r.message;
    } else {
        kept_.push_back(r);
        if (kept_.size() > kMaxKept) kept_.erase(kept_.begin());
    }
    return save();
}

Result<bool> KeptRejections::forget(uint64_t lsn, const std::string& path) {
    std::lock_guard lock(mu_);
    auto gone = std::erase_if(kept_, [&](const proto::RejectedMsg& k) { return k.lsn == lsn && k.path == path; });
    if (gone == 0) return false;
    if (auto ok = save(); !ok) return fail(ok.error());
    return true;
}

std::vector<proto::RejectedMsg> KeptRejections::all() const {
    std::lock_guard lock(mu_);
    return kept_;
}

Status KeptRejections::save() {
    std::error_code ec;
    if (kept_.empty()) {
        bool removed = std::filesystem::remove(file_, ec);
        if (ec) return fail(sys_error("remove", file_.string(), ec.value()));
        if (!removed) return {};
        return fsync_dir(file_.parent_path());
    }
    std::filesystem::create_directories(file_.parent_path(), ec);
    if (ec) return fail(sys_error("create directory", file_.parent_path().string(), ec.value()));
    std::string bytes(kMagic);
    for (auto& r : kept_) {
        auto frame = proto::encode_frame(proto::Message{r});
        if (!frame) return fail(frame.error());
        bytes += *frame;
    }
    return write_file_durably(file_, bytes, 0600);
}

}  // namespace iz::replicator
