#include "exchange_notes.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "common/durable_file.hpp"

namespace iz::replicator {

namespace {

// Names may hold any byte but NUL and '/': stored as hex, one note a line.
std::string to_hex(const std::string& s) {
    std::string out;
    out.reserve(2 * s.size());
    for (unsigned char c : s) out += fmt::format("{:02x}", c);
    return out;
}

std::optional<std::string> from_hex(const std::string& h) {
    if (h.size() % 2) return std::nullopt;
    std::string out;
    for (size_t i = 0; i < h.size(); i += 2) {
        unsigned v = 0;
        for (size_t k = i; k < i + 2; ++k) {
            char c = h[k];
            unsigned d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 16;
            if (d > 15) return std::nullopt;
            v = v * 16 + d;
        }
        out.push_back(static_cast<char>(v));
    }
    return out;
}

}  // namespace

Result<ExchangeNotes> ExchangeNotes::open(const std::filesystem::path& state_dir) {
    ExchangeNotes n;
    n.file_ = state_dir / "exchanges";
    std::error_code ec;
    if (!std::filesystem::exists(n.file_, ec)) {
        if (ec) return fail(Error{fmt::format("look for '{}': {}", n.file_.string(), ec.message()), ec.value()});
        return n;
    }
    std::ifstream in(n.file_);
    if (!in) return fail(sys_error("open", n.file_.string(), errno));
    // Written whole and renamed into place: a line that does not parse is
    // damage, and the notes it held are lost (their exchanges then run
    // again on a replay: the state before this feature).
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        ExchangeNote note;
        std::string p, t, a, b;
        if (!(fields >> note.lsn >> p >> t >> a >> b)) continue;
        auto path = from_hex(p), target = from_hex(t), at_path = from_hex(a), at_target = from_hex(b);
        if (!path || !target || !at_path || !at_target) continue;
        note.path = std::move(*path);
        note.target = std::move(*target);
        note.at_path = std::move(*at_path);
        note.at_target = std::move(*at_target);
        n.notes_.push_back(std::move(note));
    }
    return n;
}

std::optional<ExchangeNote> ExchangeNotes::find(uint64_t lsn, const std::string& path, const std::string& target) const {
    for (auto& n : notes_)
        if (n.lsn == lsn && n.path == path && n.target == target) return n;
    return std::nullopt;
}

Status ExchangeNotes::add(ExchangeNote note, uint64_t durable_lsn) {
    std::erase_if(notes_, [&](const ExchangeNote& n) { return n.lsn <= durable_lsn || n.lsn == note.lsn; });
    notes_.push_back(std::move(note));
    std::string text;
    for (auto& n : notes_)
        text += fmt::format("{} {} {} {} {}\n", n.lsn, to_hex(n.path), to_hex(n.target), to_hex(n.at_path),
                            to_hex(n.at_target));
    return write_file_durably(file_, text);
}

std::string identity_of(const FileHandle& handle) { return fmt::format("h{}:{}", handle.type, to_hex(handle.bytes)); }

Result<std::string> object_identity(int dirfd, const std::string& name, const std::string& path) {
    // A symlink is named as itself (handle_of never follows one).
    auto handle = handle_of(dirfd, name, path);
    if (handle) return identity_of(*handle);
    if (handle.error().sys_errno == ENOENT) return std::string("-");
    if (handle.error().sys_errno != EOPNOTSUPP && handle.error().sys_errno != ENOTSUP) return fail(handle.error());
    struct stat st{};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return std::string("-");
        return fail(sys_error("stat", path, errno));
    }
    return fmt::format("i{}", st.st_ino);
}

}  // namespace iz::replicator
