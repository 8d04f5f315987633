#include "journal/reader.hpp"

#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "journal/codec.hpp"
#include "segment_format.hpp"
#include "segment_scan.hpp"

namespace iz::journal {

namespace {

// One segment as the reader knows it: its mapping and the offsets of its
// frames (built on first use, extended as the last segment grows).
struct Segment {
    format::SegmentFile file;
    std::optional<MappedSegment> map;
    std::vector<IndexEntry> index;
    uint64_t scanned_to = format::kSegmentHeaderBytes;
    bool at_end = false;  // the scan reached the end of data (so far)
    // Damage found after the indexed frames: reported when a reader gets there.
    std::optional<Error> damage;
    int64_t first_time_ns = 0;
};

class ReaderImpl final : public Reader {
public:
    explicit ReaderImpl(std::filesystem::path dir) : dir_(std::move(dir)) {}
    ~ReaderImpl() override {
        if (inotify_fd_ >= 0) ::close(inotify_fd_);
    }

    Status init() {
        struct stat st{};
        if (::stat(dir_.c_str(), &st) != 0) return fail(sys_error("open journal", dir_.string(), errno));
        if (!S_ISDIR(st.st_mode)) return fail(make_error(fmt::format("open journal '{}': not a directory", dir_.string())));
        if (auto ok = refresh(); !ok) return ok;
        return seek_head();
    }

    Status refresh() override {
        auto listed = format::list_segments(dir_);
        if (!listed) return fail(listed.error());
        std::vector<Segment> fresh;
        for (auto& f : *listed) {
            auto it = std::find_if(segments_.begin(), segments_.end(), [&](auto& s) { return s.file.base_lsn == f.base_lsn; });
            if (it != segments_.end()) fresh.push_back(std::move(*it));
            else fresh.push_back(Segment{.file = f});
        }
        // Keep the position meaningful across the swap.
        uint64_t pos = position_lsn();
        segments_ = std::move(fresh);
        set_position(pos);
        return {};
    }

    std::vector<SegmentInfo> segments() const override {
        std::vector<SegmentInfo> out;
        for (auto& s : segments_) {
            SegmentInfo info;
            info.path = s.file.path;
            info.base_lsn = s.file.base_lsn;
            struct stat st{};
            if (::stat(s.file.path.c_str(), &st) == 0) info.file_bytes = static_cast<uint64_t>(st.st_blocks) * 512;
            info.first_time_ns = s.map ? s.map->header().first_time_ns : 0;
            if (!s.map) {
                if (auto m = MappedSegment::open(s.file.path)) info.first_time_ns = m->header().first_time_ns;
            }
            out.push_back(info);
        }
        return out;
    }

    Status seek_head() override {
        seg_ = 0;
        idx_ = 0;
        return {};
    }

    Status seek_tail() override {
        if (segments_.empty()) return seek_head();
        seg_ = segments_.size() - 1;
        auto ok = index_segment(seg_);
        if (!ok) return fail(ok.error());
        idx_ = segments_[seg_].index.size();
        return {};
    }

    Status seek_lsn(uint64_t lsn) override {
        if (segments_.empty()) return seek_head();
        // The last segment whose base is <= lsn; LSNs inside are contiguous.
        auto it = std::upper_bound(segments_.begin(), segments_.end(), lsn,
                                   [](uint64_t v, const Segment& s) { return v < s.file.base_lsn; });
        if (it == segments_.begin()) return seek_head();
        seg_ = static_cast<size_t>(it - segments_.begin()) - 1;
        auto ok = index_segment(seg_);
        if (!ok) return fail(ok.error());
        idx_ = std::min<uint64_t>(lsn - segments_[seg_].file.base_lsn, segments_[seg_].index.size());
        return {};
    }

    Status seek_time(int64_t t) override {
        if (segments_.empty()) return seek_head();
        // Segments by the time of their first record, then frames inside.
        size_t lo = 0;
        for (size_t i = 0; i < segments_.size(); ++i) {
            if (segments_[i].first_time_ns == 0) {
                auto ok = open_segment(i);
                if (!ok) return fail(ok.error());
            }
            bool before = segments_[i].first_time_ns <= t;
            if (before) lo = i;
            release(i);
            if (!before) break;
        }
        for (size_t i = lo; i < segments_.size(); ++i) {
            auto ok = index_segment(i);
            if (!ok) return fail(ok.error());
            auto& idx = segments_[i].index;
            auto it = std::find_if(idx.begin(), idx.end(), [&](const IndexEntry& e) { return e.time_ns >= t; });
            if (it == idx.end()) release(i);
            if (it != idx.end()) {
                seg_ = i;
                idx_ = static_cast<size_t>(it - idx.begin());
                return {};
            }
        }
        return seek_tail();
    }

    Result<std::optional<Record>> next() override {
        while (seg_ < segments_.size()) {
            // Indexed frames are read without looking at the file again: a
            // segment is only re-examined (fstat, scan) once they run out.
            if (auto& s = segments_[seg_]; s.map && idx_ < s.index.size()) return decode_at(seg_, idx_++);
            auto ok = index_segment(seg_);
            if (!ok) return fail(ok.error());
            auto& s = segments_[seg_];
            if (idx_ < s.index.size()) return decode_at(seg_, idx_++);
            if (s.damage) return fail(*s.damage);
            if (seg_ + 1 >= segments_.size()) break;
            release(seg_++);
            idx_ = 0;
        }
        return std::optional<Record>{};
    }

    Result<std::optional<Record>> prev() override {
        for (;;) {
            if (seg_ >= segments_.size()) {
                if (segments_.empty()) return std::optional<Record>{};
                seg_ = segments_.size() - 1;
                auto ok = index_segment(seg_);
                if (!ok) return fail(ok.error());
                idx_ = segments_[seg_].index.size();
            }
            if (idx_ > 0) {
                auto ok = index_segment(seg_);
                if (!ok) return fail(ok.error());
                // Reading backwards from beyond damage would skip what it hides.
                if (segments_[seg_].damage && idx_ >= segments_[seg_].index.size()) return fail(*segments_[seg_].damage);
                return decode_at(seg_, --idx_);
            }
            if (seg_ == 0) return std::optional<Record>{};
            release(seg_--);
            auto ok = index_segment(seg_);
            if (!ok) return fail(ok.error());
            idx_ = segments_[seg_].index.size();
        }
    }

    Result<bool> wait(std::chrono::milliseconds timeout) override {
        if (inotify_fd_ < 0) {
            inotify_fd_ = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
            if (inotify_fd_ < 0) return fail(sys_error("inotify_init1 to follow journal", dir_.string(), errno));
            if (::inotify_add_watch(inotify_fd_, dir_.c_str(), IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_DELETE) < 0)
                return fail(sys_error("watch journal directory", dir_.string(), errno));
        }
        // Something may have arrived between the caller's last next() and now
        // (and before the watch existed: the first check lists the directory).
        if (grew()) return true;
        watching_ = true;
        pollfd p{inotify_fd_, POLLIN, 0};
        int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(timeout.count(), INT32_MAX)));
        if (rc < 0 && errno != EINTR) return fail(sys_error("wait for journal", dir_.string(), errno));
        char buf[4096];
        bool created = false;
        for (;;) {
            ssize_t n = ::read(inotify_fd_, buf, sizeof buf);
            if (n <= 0) break;
            for (char* p2 = buf; p2 < buf + n;) {
                auto* ev = reinterpret_cast<inotify_event*>(p2);
                // An overflowed queue may have lost a creation.
                if (ev->mask & (IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_Q_OVERFLOW)) created = true;
                p2 += sizeof(inotify_event) + ev->len;
            }
        }
        if (created) {
            if (auto ok = refresh(); !ok) return fail(ok.error());
        }
        return rc > 0 || grew();
    }

private:
    // The LSN the cursor points at (for re-seeking after a refresh).
    uint64_t position_lsn() const {
        if (seg_ < segments_.size()) return segments_[seg_].file.base_lsn + idx_;
        return UINT64_MAX;
    }

    void set_position(uint64_t lsn) {
        if (lsn == UINT64_MAX || segments_.empty()) {
            seg_ = segments_.size();
            idx_ = 0;
            return;
        }
        auto it = std::upper_bound(segments_.begin(), segments_.end(), lsn,
                                   [](uint64_t v, const Segment& s) { return v < s.file.base_lsn; });
        seg_ = it == segments_.begin() ? 0 : static_cast<size_t>(it - segments_.begin()) - 1;
        idx_ = lsn >= segments_[seg_].file.base_lsn ? lsn - segments_[seg_].file.base_lsn : 0;
    }

    // True when the last segment has frames beyond what is indexed, or a new
    // segment appeared.
    bool grew() {
        if (segments_.empty()) {
            (void)refresh();
            return !segments_.empty();
        }
        auto& last = segments_.back();
        size_t before = last.index.size();
        last.at_end = false;
        if (!index_segment(segments_.size() - 1)) return true;  // let next() report it
        if (last.index.size() != before) return true;
        // Once the directory is watched, a new segment arrives as IN_CREATE
        // and wait() refreshes then; listing it at every wait would cost a
        // directory read per idle poll.
        if (watching_) return false;
        auto listed = format::list_segments(dir_);
        if (listed && !listed->empty() && listed->back().base_lsn != last.file.base_lsn) {
            (void)refresh();
            return true;
        }
        return false;
    }

    // Unmaps a segment the cursor left, so a long journal does not hold a
    // descriptor and a mapping per segment. Its first time stays known.
    void release(size_t i) {
        auto& s = segments_[i];
        if (i + 1 == segments_.size()) return;  // the followed one stays
        s.map.reset();
        s.index.clear();
        s.index.shrink_to_fit();
        s.scanned_to = format::kSegmentHeaderBytes;
        s.at_end = false;
        s.damage.reset();
    }

    Status open_segment(size_t i) {
        auto& s = segments_[i];
        if (s.map) return {};
        auto m = MappedSegment::open(s.file.path);
        if (!m) return fail(m.error());
        if (m->header().base_lsn != s.file.base_lsn)
            return fail(make_error(fmt::format("segment '{}' claims base LSN {} but is named for {}",
                                               s.file.path.string(), m->header().base_lsn, s.file.base_lsn)));
        s.first_time_ns = m->header().first_time_ns;
        s.map = std::move(*m);
        return {};
    }

    // Indexes the frames of segment i (more of them, for a growing last one).
    Status index_segment(size_t i) {
        if (auto ok = open_segment(i); !ok) return ok;
        auto& s = segments_[i];
        bool is_last = i + 1 == segments_.size();
        if ((s.at_end && !is_last) || s.damage) return {};
        if (is_last) {
            auto grown = s.map->remap();
            if (!grown) return fail(grown.error());
        }
        uint64_t expected = s.file.base_lsn + s.index.size();
        auto scan = scan_frames(*s.map, s.scanned_to, expected);
        s.index.insert(s.index.end(), scan.entries.begin(), scan.entries.end());
        s.scanned_to = scan.end_offset;
        if (scan.damaged && (scan.corrupt || !is_last)) {
            s.damage = corruption_error(*s.map, scan);
            return {};
        }
        if (!is_last) {
            s.at_end = true;
            uint64_t next_base = segments_[i + 1].file.base_lsn;
            uint64_t end_lsn = s.file.base_lsn + s.index.size();
            if (end_lsn != next_base)
                s.damage = (make_error(fmt::format("journal '{}' is missing records {}..{} between segments '{}' and '{}'",
                                                   dir_.string(), end_lsn, next_base - 1, s.file.path.filename().string(),
                                                   segments_[i + 1].file.path.filename().string())));
        }
        return {};
    }

    Result<std::optional<Record>> decode_at(size_t seg, size_t idx) {
        auto& s = segments_[seg];
        auto& e = s.index[idx];
        FrameRead f = s.map->read_at(e.offset);
        if (f.status != FrameStatus::ok)
            return fail(make_error(fmt::format("corrupt record at LSN {} in segment '{}' at offset {}: {}", e.lsn,
                                               s.file.path.string(), e.offset, f.why)));
        auto rec = decode_record(f.payload);
        if (!rec)
            return fail(make_error(fmt::format("undecodable record at LSN {} in segment '{}': {}", e.lsn,
                                               s.file.path.string(), rec.error().message)));
        rec->lsn = f.header.lsn;
        rec->time_ns = f.header.time_ns;
        rec->op = static_cast<Op>(f.header.op);
        return std::optional<Record>(std::move(*rec));
    }

    std::filesystem::path dir_;
    std::vector<Segment> segments_;
    size_t seg_ = 0;
    size_t idx_ = 0;
    int inotify_fd_ = -1;
    bool watching_ = false;  // the watch has been in place since a full check
};

}  // namespace

Result<std::unique_ptr<Reader>> Reader::open(const std::filesystem::path& dir) {
    auto r = std::make_unique<ReaderImpl>(dir);
    if (auto ok = r->init(); !ok) return fail(ok.error());
    return std::unique_ptr<Reader>(std::move(r));
}

Result<VerifyReport> verify_journal(const std::filesystem::path& dir) {
    VerifyReport report;
    auto listed = format::list_segments(dir);
    if (!listed) return fail(listed.error());
    std::optional<uint64_t> expected;
    for (size_t i = 0; i < listed->size(); ++i) {
        auto& f = (*listed)[i];
        bool is_last = i + 1 == listed->size();
        auto seg = MappedSegment::open(f.path);
        if (!seg) {
            report.first_error = seg.error();
            report.first_bad_lsn = f.base_lsn;
            return report;
        }
        if (expected && *expected != f.base_lsn) {
            report.first_error = make_error(fmt::format("records {}..{} are missing before segment '{}'", *expected,
                                                        f.base_lsn - 1, f.path.string()));
            report.first_bad_lsn = *expected;
            return report;
        }
        auto scan = scan_frames(*seg, format::kSegmentHeaderBytes, f.base_lsn);
        for (auto& e : scan.entries) {
            // Beyond the frame checksum, the payload must decode.
            auto fr = seg->read_at(e.offset);
            if (auto rec = decode_record(fr.payload); !rec) {
                report.first_error = make_error(fmt::format("undecodable record at LSN {} in segment '{}' at offset {}: {}",
                                                            e.lsn, f.path.string(), e.offset, rec.error().message));
                report.first_bad_lsn = e.lsn;
                return report;
            }
            if (report.records == 0) report.first_lsn = e.lsn;
            report.last_lsn = e.lsn;
            ++report.records;
        }
        if (scan.damaged) {
            if (scan.corrupt || !is_last) {
                report.first_error = corruption_error(*seg, scan);
                report.first_bad_lsn = scan.expected_lsn;
                return report;
            }
            report.torn_tail = true;
        }
        expected = f.base_lsn + scan.entries.size();
    }
    return report;
}

}  // namespace iz::journal
