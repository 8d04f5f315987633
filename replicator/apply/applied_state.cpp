#include "applied_state.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <charconv>
#include <utility>
#include <optional>
#include <fstream>
#include <sstream>

#include "common/durable_file.hpp"

namespace iz::replicator {

namespace {

std::string read_boot_id() {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string id;
    std::getline(in, id);
    return id;
}

std::optional<uint64_t> parse_u64(std::string_view s) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p == s.data()) return std::nullopt;
    return v;
}

// The progress file is one fixed-size line, rewritten in place:
// "PROGRESS BOOT_ID HIGH_WATER" (older lines have no high-water mark).
constexpr size_t kProgressBytes = 128;

}  // namespace

Result<AppliedState> AppliedState::open(const std::filesystem::path& dir) {
    AppliedState st;
    st.dir_ = dir;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail(Error{fmt::format("create state directory '{}': {}", dir.string(), ec.message()), ec.value()});
    st.boot_id_ = read_boot_id();

    auto applied = dir / "applied";
    if (std::filesystem::exists(applied, ec)) {
        std::ifstream in(applied);
        std::string line;
        std::getline(in, line);
        auto v = parse_u64(line);
        if (!v) return fail(make_error(fmt::format("state file '{}' is unreadable ('{}')", applied.string(), line)));
        st.durable_ = *v;
    }

    auto progress = dir / "progress";
    int fd = ::open(progress.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return fail(sys_error("open progress file", progress.string(), errno));
    st.progress_fd_.reset(fd);
    char buf[kProgressBytes + 1] = {};
    ssize_t n = ::pread(fd, buf, kProgressBytes, 0);
    if (n > 0) {
        std::string_view text(buf, static_cast<size_t>(n));
        auto space = text.find(' ');
        auto nl = text.find('\n');
        if (space != std::string_view::npos && nl != std::string_view::npos && nl > space) {
            auto lsn = parse_u64(text.substr(0, space));
            auto rest = text.substr(space + 1, nl - space - 1);
            auto boot = rest.substr(0, rest.find(' '));
            std::optional<uint64_t> high;
            if (auto sp = rest.find(' '); sp != std::string_view::npos) high = parse_u64(rest.substr(sp + 1));
            // Only the same boot's page cache is known to hold what progress says.
            if (lsn && !st.boot_id_.empty() && boot == st.boot_id_) st.progress_ = *lsn;
            st.high_at_open_ = std::max(lsn.value_or(0), high.value_or(0));
            // Work past the durable LSN, from any boot, means it was cut off.
            st.unclean_at_open_ = st.high_at_open_ > st.durable_;
            if (!st.unclean_at_open_) st.high_at_open_ = 0;
        }
    }
    st.written_progress_ = st.progress_;
    st.high_ = st.high_at_open_;
    return st;
}

Status AppliedState::note_progress(uint64_t lsn) {
    progress_ = std::max(progress_, lsn);
    if (progress_written_ || syncing_) return {};
    return write_progress();
}

Status AppliedState::begin_sync(uint64_t lsn) {
    progress_ = std::max(progress_, lsn);
    if (auto ok = write_progress(); !ok) return ok;
    syncing_ = true;
    return {};
}

Status AppliedState::sync_failed() {
    syncing_ = false;
    return write_progress();
}

Status AppliedState::write_progress() {
    if (auto ok = write_line(progress_); !ok) return ok;
    progress_written_ = true;
    return {};
}

Status AppliedState::announce(uint64_t lsn) {
    seen_ = std::max(seen_, lsn);
    if (lsn <= high_) return {};
    high_ = lsn + kAnnounceAhead;
    return write_line(written_progress_);
}

Status AppliedState::write_line(uint64_t progress) {
    auto line = fmt::format("{} {} {}\n", progress, boot_id_, std::max(high_, progress));
    line.resize(kProgressBytes, ' ');
    if (::pwrite(progress_fd_.get(), line.data(), line.size(), 0) != static_cast<ssize_t>(line.size()))
        return fail(sys_error("write progress file", (dir_ / "progress").string(), errno));
    written_progress_ = progress;
    return {};
}

Status AppliedState::make_durable(uint64_t lsn) {
    bool was_syncing = std::exchange(syncing_, false);
    if (lsn <= durable_ && !was_syncing) return {};
    if (lsn > durable_) {
        if (auto ok = write_file_durably(dir_ / "applied", fmt::format("{}\n", lsn)); !ok) return ok;
        durable_ = lsn;
    }
    // Past the durable LSN when operations were applied during a sync.
    progress_ = std::max(progress_, durable_);
    // What was announced ahead comes back to what was applied: a stop now,
    // with nothing applied since, is a clean one.
    high_ = std::max(durable_, seen_);
    if (auto ok = write_progress(); !ok) return ok;
    // The next operation applied starts a new interval and marks it.
    progress_written_ = false;
    return {};
}

}  // namespace iz::replicator
