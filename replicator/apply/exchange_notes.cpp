#include "exchange_notes.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string_view>

#include "common/durable_file.hpp"

namespace iz::replicator {

namespace {

// Names may hold any byte but NUL and '/': stored as hex, one note a line.
// Appended to `out`: a note is made for every rename and removal, and a
// formatted string per byte cost more than the rest of the note.
void append_hex(std::string& out, std::string_view s) {
    if (s.empty()) {
        out += '-';  // a field of its own
        return;
    }
    static constexpr char kDigits[] = "0123456789abcdef";
    size_t at = out.size();
    out.resize(at + 2 * s.size());
    for (unsigned char c : s) {
        out[at++] = kDigits[c >> 4];
        out[at++] = kDigits[c & 15];
    }
}

std::optional<std::string> from_hex(const std::string& h) {
    if (h == "-") return std::string();
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
    // Written whole and renamed into place, other notes appended: a line
    // that does not parse is damage (or a note cut short by a crash), and
    // the note it held is lost (its operation then runs again on a replay:
    // the state before notes were kept).
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
        // Optional, after the four every note has (older notes lack it).
        if (std::string d; fields >> d) {
            if (auto displaced = from_hex(d)) note.displaced = std::move(*displaced);
        }
        ++n.lines_in_file_;
        n.notes_[note.lsn] = std::move(note);
    }
    return n;
}

std::optional<ExchangeNote> ExchangeNotes::find(uint64_t lsn, const std::string& path, const std::string& target) const {
    auto it = notes_.find(lsn);
    if (it == notes_.end() || it->second.path != path || it->second.target != target) return std::nullopt;
    return it->second;
}

std::vector<std::string> ExchangeNotes::placed_after(uint64_t lsn, const std::string& name) const {
    std::vector<std::string> placed;
    for (auto it = notes_.upper_bound(lsn); it != notes_.end(); ++it) {
        const auto& n = it->second;
        if (n.target == name && n.at_path != "-") placed.push_back(n.at_path);
        // A rename's (or link's) at_target is "-": only an exchange moves
        // what its target held to its first name.
        if (n.path == name && n.at_target != "-") placed.push_back(n.at_target);
    }
    return placed;
}

namespace {

std::string note_line(const ExchangeNote& n) {
    std::string line = fmt::format_int(n.lsn).str();
    line.reserve(line.size() +
                 2 * (n.path.size() + n.target.size() + n.at_path.size() + n.at_target.size() + n.displaced.size()) + 8);
    for (const std::string* field : {&n.path, &n.target, &n.at_path, &n.at_target}) {
        line += ' ';
        append_hex(line, *field);
    }
    if (!n.displaced.empty()) {
        line += ' ';
        append_hex(line, n.displaced);
    }
    line += '\n';
    return line;
}

}  // namespace

Status ExchangeNotes::rewrite(bool durably) {
    std::string text;
    for (auto& [lsn, n] : notes_) text += note_line(n);
    // The file is replaced: appends go to the new one.
    append_fd_.reset();
    lines_in_file_ = notes_.size();
    if (durably) return write_file_durably(file_, text);
    // Only the page cache: renamed into place, so that a kill leaves the old
    // notes or the new ones.
    auto temp = file_;
    temp += ".new";
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return fail(sys_error("create", temp.string(), errno));
    UniqueFd out(fd);
    if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
        return fail(sys_error("write", temp.string(), errno));
    if (::rename(temp.c_str(), file_.c_str()) != 0) return fail(sys_error("rename into place", file_.string(), errno));
    return {};
}

Status ExchangeNotes::add(ExchangeNote note, uint64_t durable_lsn) {
    notes_.erase(notes_.begin(), notes_.upper_bound(durable_lsn));
    notes_[note.lsn] = std::move(note);
    return rewrite(true);
}

Status ExchangeNotes::add_quick(ExchangeNote note, uint64_t durable_lsn) {
    if (note.lsn <= durable_lsn) return {};  // never replayed
    auto line = note_line(note);
    notes_[note.lsn] = std::move(note);
    if (!append_fd_.valid()) {
        int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) return fail(sys_error("open", file_.string(), errno));
        append_fd_.reset(fd);
    }
    // One write: a kill leaves the line whole or absent.
    if (::write(append_fd_.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        return fail(sys_error("append a note to", file_.string(), errno));
    ++lines_in_file_;
    return {};
}

Status ExchangeNotes::committed(uint64_t durable_lsn) {
    if (notes_.empty() || notes_.begin()->first > durable_lsn) return {};
    notes_.erase(notes_.begin(), notes_.upper_bound(durable_lsn));
    // Notes of operations a commit covers are harmless where they are (no
    // replay goes back that far); the file is rewritten once they are most
    // of it, not at every commit.
    if (lines_in_file_ < 256 || lines_in_file_ < 2 * notes_.size()) return {};
    return rewrite(false);
}

std::string identity_of(const FileHandle& handle) {
    std::string id = "h";
    id += fmt::format_int(handle.type).c_str();
    id += ':';
    append_hex(id, handle.bytes);
    return id;
}

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
