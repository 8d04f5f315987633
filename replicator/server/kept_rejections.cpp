#include "kept_rejections.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>

#include "replicator/wire/rejections_file.hpp"

namespace iz::replicator {

namespace {

// The first line of the file (rejections_file.hpp): not the agent's, whose
// list of rejections has the same format.
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
    auto kept = read_rejections_file(out->file_, kMagic, [&](const std::string& why) { return damaged(out->file_, why); });
    if (!kept) return fail(kept.error());
    out->kept_ = std::move(*kept);
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

Status KeptRejections::save() { return write_rejections_file(file_, kMagic, kept_); }

}  // namespace iz::replicator
