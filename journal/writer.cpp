#include "journal/writer.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>

#include "journal/codec.hpp"
#include "segment_format.hpp"
#include "segment_scan.hpp"
#include "segment_writer.hpp"

namespace iz::journal {

namespace {

int64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct Tail {
    uint64_t next_lsn = 1;
    std::optional<format::SegmentFile> active;  // last segment, to continue
    uint64_t active_offset = 0;
};

// Finds where appending continues; cuts a torn last batch.
Result<Tail> recover_tail(const std::filesystem::path& dir) {
    Tail tail;
    // Segments that never made it to their final name held nothing durable.
    std::error_code ec;
    for (auto& entry : std::filesystem::directory_iterator(dir, ec))
        if (entry.path().filename().string().starts_with(".new-")) std::filesystem::remove(entry.path(), ec);
    auto listed = format::list_segments(dir);
    if (!listed) return fail(listed.error());
    auto segments = std::move(*listed);
    while (!segments.empty()) {
        auto& last = segments.back();
        auto seg = MappedSegment::open(last.path);
        if (!seg) {
            // A crash while creating a segment leaves it without a valid
            // header and without records: it never held anything durable.
            struct stat st{};
            if (::stat(last.path.c_str(), &st) == 0 &&
                static_cast<uint64_t>(st.st_size) <= format::kSegmentHeaderBytes) {
                if (::unlink(last.path.c_str()) != 0)
                    return fail(sys_error("remove half-created journal segment", last.path.string(), errno));
                segments.pop_back();
                continue;
            }
            return fail(seg.error());
        }
        auto scan = scan_frames(*seg, format::kSegmentHeaderBytes, last.base_lsn);
        if (scan.corrupt) return fail(corruption_error(*seg, scan));
        if (scan.damaged) {
            // Torn last batch: it was never reported durable. Zero it in
            // place (punching keeps the size, so a reader's mapping stays valid).
            int fd = ::open(last.path.c_str(), O_WRONLY | O_CLOEXEC);
            if (fd < 0) return fail(sys_error("open journal segment to cut its torn tail", last.path.string(), errno));
            auto len = static_cast<off_t>(seg->mapped_bytes() - scan.end_offset);
            int rc = ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(scan.end_offset), len);
            if (rc != 0) rc = ::ftruncate(fd, static_cast<off_t>(scan.end_offset));
            if (rc != 0 || ::fsync(fd) != 0) {
                int err = errno;
                ::close(fd);
                return fail(sys_error("cut torn tail of journal segment", last.path.string(), err));
            }
            ::close(fd);
        }
        tail.next_lsn = scan.entries.empty() ? last.base_lsn : scan.entries.back().lsn + 1;
        tail.active = last;
        tail.active_offset = scan.end_offset;
        break;
    }
    return tail;
}

class WriterImpl final : public Writer {
public:
    explicit WriterImpl(WriterOptions o) : opts_(std::move(o)) {}
    ~WriterImpl() override { (void)close(); }

    Status start() {
        std::error_code ec;
        std::filesystem::create_directories(opts_.dir, ec);
        if (ec) return fail(Error{fmt::format("create journal directory '{}': {}", opts_.dir.string(), ec.message()), ec.value()});
        dir_fd_ = ::open(opts_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd_ < 0) return fail(sys_error("open journal directory", opts_.dir.string(), errno));
        auto lock_path = opts_.dir / "journal.lock";
        lock_fd_ = ::open(lock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0640);
        if (lock_fd_ < 0) return fail(sys_error("open journal lock", lock_path.string(), errno));
        if (auto ok = take_lock(lock_path); !ok) return ok;
        auto tail = recover_tail(opts_.dir);
        if (!tail) return fail(tail.error());
        if (auto ok = seg_.init_ring(); !ok) return ok;
        if (tail->active) {
            if (auto ok = seg_.adopt(tail->active->path, tail->active_offset); !ok) return ok;
            segment_bases_.push_back(tail->active->base_lsn);
        }
        auto listed = format::list_segments(opts_.dir);
        if (listed) {
            segment_bases_.clear();
            for (auto& s : *listed) segment_bases_.push_back(s.base_lsn);
        }
        next_lsn_ = tail->next_lsn;
        head_.store(next_lsn_ - 1);
        durable_.store(next_lsn_ - 1);
        committer_ = std::thread([this] {
            // Named for top -H and perf: which thread costs what.
            pthread_setname_np(pthread_self(), "iz-journal");
            commit_loop();
        });
        return {};
    }

    // The flock on journal.lock, waiting up to opts_.lock_wait for a
    // writer that holds it to go (see WriterOptions::lock_wait).
    Status take_lock(const std::filesystem::path& lock_path) {
        auto deadline = std::chrono::steady_clock::now() + opts_.lock_wait;
        for (;;) {
            if (::flock(lock_fd_, LOCK_EX | LOCK_NB) == 0) return {};
            if (errno == EINTR) continue;
            if (errno != EWOULDBLOCK) return fail(sys_error("lock journal", lock_path.string(), errno));
            if (std::chrono::steady_clock::now() >= deadline) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (opts_.lock_wait.count() == 0)
            return fail(Error{fmt::format("journal '{}' is already open by another writer", opts_.dir.string()), EWOULDBLOCK});
        return fail(Error{fmt::format("journal '{}' is still open by another writer after waiting {:.1f} s for it to "
                                      "let go (is another izwatch writing to it?)",
                                      opts_.dir.string(), opts_.lock_wait.count() / 1000.0),
                          EWOULDBLOCK});
    }

    Result<uint64_t> append(Record rec) override { return append(std::move(rec), nullptr); }

    Result<uint64_t> append(Record rec, DurableCallback cb) override {
        if (rec.time_ns == 0) rec.time_ns = now_ns();
        // The frame header carries the LSN; the payload is encoded before
        // the LSN is known so that encoding stays outside the lock.
        rec.lsn = 0;
        thread_local std::string payload;
        payload.clear();
        encode_record(rec, payload);
        if (payload.size() > format::kMaxPayloadBytes)
            return fail(make_error(fmt::format("record for '{}' is too large for the journal ({} bytes)", rec.path, payload.size())));

        std::unique_lock lk(mu_);
        if (pending_.size() >= opts_.max_pending_bytes && committer_idle_) work_cv_.notify_one();
        space_cv_.wait(lk, [&] { return pending_.size() < opts_.max_pending_bytes || failure_ || closing_; });
        if (failure_) return fail(*failure_);
        if (closing_) return fail(make_error(fmt::format("journal '{}' is closed", opts_.dir.string())));
        uint64_t lsn = next_lsn_++;
        if (pending_offsets_.empty()) pending_first_lsn_ = lsn;
        pending_offsets_.push_back(pending_.size());
        pending_times_.push_back(rec.time_ns);
        format::append_frame(pending_, lsn, rec.time_ns, static_cast<uint8_t>(rec.op), 0, payload);
        if (cb) pending_cbs_.emplace_back(lsn, std::move(cb));
        head_.store(lsn, std::memory_order_release);
        if (committer_idle_ && (!holding_ || pending_.size() >= opts_.max_batch_bytes)) work_cv_.notify_one();
        return lsn;
    }

    void hold() override {
        std::lock_guard lk(mu_);
        holding_ = true;
    }

    void release() override {
        std::lock_guard lk(mu_);
        holding_ = false;
        if (committer_idle_ && !pending_.empty()) work_cv_.notify_one();
    }

    Status wait_durable(uint64_t lsn) override { return wait_durable_for(lsn, std::chrono::milliseconds::max()); }

    Status wait_durable_for(uint64_t lsn, std::chrono::milliseconds timeout) override {
        std::unique_lock lk(mu_);
        if (committer_idle_ && !pending_.empty()) work_cv_.notify_one();  // held back by hold()
        auto ready = [&] { return durable_.load() >= lsn || failure_.has_value(); };
        if (timeout == std::chrono::milliseconds::max()) durable_cv_.wait(lk, ready);
        else if (!durable_cv_.wait_for(lk, timeout, ready))
            return fail(make_error(fmt::format("journal '{}': LSN {} not durable after {} ms", opts_.dir.string(), lsn, timeout.count())));
        if (durable_.load() >= lsn) return {};
        return fail(*failure_);
    }

    Status flush() override { return wait_durable(head_.load()); }

    uint64_t head_lsn() const override { return head_.load(std::memory_order_acquire); }
    uint64_t durable_lsn() const override { return durable_.load(std::memory_order_acquire); }

    WriterStats stats() const override {
        std::lock_guard lk(mu_);
        return stats_;
    }

    std::optional<Error> failure() const override {
        std::lock_guard lk(mu_);
        return failure_;
    }

    Result<size_t> drop_segments_below(uint64_t lsn, int64_t older_than_ns) override {
        std::lock_guard lk(segments_mu_);
        size_t dropped = 0;
        // Segment i holds [base_i, base_{i+1}) and its records are no newer
        // than the first record of segment i+1; the last one always stays.
        while (segment_bases_.size() > 1 && segment_bases_[1] <= lsn) {
            if (older_than_ns != INT64_MAX) {
                auto next = MappedSegment::open(opts_.dir / format::segment_file_name(segment_bases_[1]));
                if (!next) return fail(next.error());
                if (next->header().first_time_ns >= older_than_ns) break;
            }
            auto path = opts_.dir / format::segment_file_name(segment_bases_.front());
            if (::unlink(path.c_str()) != 0 && errno != ENOENT)
                return fail(sys_error("remove journal segment", path.string(), errno));
            segment_bases_.pop_front();
            ++dropped;
        }
        if (dropped && ::fsync(dir_fd_) != 0) return fail(sys_error("fsync journal directory", opts_.dir.string(), errno));
        return dropped;
    }

    Result<size_t> apply_retention(const RetentionPolicy& policy) override {
        auto horizon = retention_horizon(opts_.dir);
        if (!horizon) return fail(horizon.error());
        if (!*horizon) return size_t{0};
        int64_t cutoff = policy.history.count() > 0 ? now_ns() - policy.history.count() * 1'000'000'000ll : INT64_MAX;
        return drop_segments_below(**horizon, cutoff);
    }

    Status close() override {
        {
            std::lock_guard lk(mu_);
            if (closed_) return {};
            closing_ = true;
            work_cv_.notify_all();
            space_cv_.notify_all();
        }
        if (committer_.joinable()) committer_.join();
        seg_.close_file();
        if (lock_fd_ >= 0) ::close(lock_fd_);
        if (dir_fd_ >= 0) ::close(dir_fd_);
        lock_fd_ = dir_fd_ = -1;
        std::lock_guard lk(mu_);
        closed_ = true;
        if (failure_) return fail(*failure_);
        return {};
    }

private:
    using Callbacks = std::vector<std::pair<uint64_t, DurableCallback>>;

    void commit_loop() {
        std::string batch;
        std::vector<uint64_t> offsets;
        std::vector<int64_t> times;
        Callbacks cbs;
        for (;;) {
            uint64_t first_lsn = 0;
            {
                std::unique_lock lk(mu_);
                committer_idle_ = true;
                work_cv_.wait(lk, [&] { return !pending_.empty() || closing_; });
                committer_idle_ = false;
                if (pending_.empty()) break;
                batch.swap(pending_);
                offsets.swap(pending_offsets_);
                times.swap(pending_times_);
                cbs.swap(pending_cbs_);
                first_lsn = pending_first_lsn_;
                space_cv_.notify_all();
            }
            Status st = failure() ? fail(*failure()) : write_batch_caught(batch, offsets, times, first_lsn);
            uint64_t last_lsn = first_lsn + offsets.size() - 1;
            {
                std::lock_guard lk(mu_);
                if (st) {
                    durable_.store(last_lsn, std::memory_order_release);
                    stats_.records += offsets.size();
                    stats_.bytes += batch.size();
                } else if (!failure_) {
                    failure_ = make_error(fmt::format("{}; records {}..{} and later are not in the journal",
                                                      st.error().message, first_lsn, last_lsn));
                    failure_->sys_errno = st.error().sys_errno;
                    space_cv_.notify_all();
                }
                durable_cv_.notify_all();
            }
            // No exception may leave this thread (it would end the
            // process): a callback's is its owner's business, and the
            // others are still told.
            if (st && opts_.on_durable) {
                try {
                    opts_.on_durable(last_lsn);
                } catch (...) {
                }
            }
            Status outcome = st ? Status{} : fail(*failure());
            for (auto& [lsn, cb] : cbs) {
                try {
                    cb(lsn, outcome);
                } catch (...) {
                }
            }
            batch.clear();
            offsets.clear();
            times.clear();
            cbs.clear();
        }
    }

    // write_batch, with an exception (a failed allocation) made the
    // journal's failure rather than the end of the committer thread.
    Status write_batch_caught(std::string& batch, const std::vector<uint64_t>& offsets,
                              const std::vector<int64_t>& times, uint64_t first_lsn) {
        try {
            return write_batch(batch, offsets, times, first_lsn);
        } catch (const std::exception& e) {
            return fail(make_error(fmt::format("journal '{}': write a batch: internal error: {}", opts_.dir.string(), e.what())));
        } catch (...) {
            return fail(make_error(fmt::format("journal '{}': write a batch: internal error", opts_.dir.string())));
        }
    }

    // Writes the frames in `batch` (starting at the given offsets) to the
    // active segment, rolling to new segments as they fill. Each write is
    // one sync unit whose first frame carries the batch-start flag.
    Status write_batch(std::string& batch, const std::vector<uint64_t>& offsets, const std::vector<int64_t>& times,
                       uint64_t first_lsn) {
        size_t i = 0;
        while (i < offsets.size()) {
            uint64_t frame_len = (i + 1 < offsets.size() ? offsets[i + 1] : batch.size()) - offsets[i];
            bool full = seg_.is_open() && seg_.offset() > format::kSegmentHeaderBytes &&
                        seg_.offset() + frame_len > opts_.segment_bytes;
            if (!seg_.is_open() || full) {
                if (auto ok = roll_segment(first_lsn + i, times[i]); !ok) return ok;
            }
            // Take frames while they fit in the segment and the write size.
            size_t j = i + 1;
            uint64_t end = i + 1 < offsets.size() ? offsets[i + 1] : batch.size();
            while (j < offsets.size()) {
                uint64_t next_end = j + 1 < offsets.size() ? offsets[j + 1] : batch.size();
                if (next_end - offsets[i] > opts_.max_batch_bytes ||
                    seg_.offset() + (next_end - offsets[i]) > opts_.segment_bytes)
                    break;
                end = next_end;
                ++j;
            }
            format::mark_batch_start(batch.data() + offsets[i]);
            std::string_view chunk(batch.data() + offsets[i], end - offsets[i]);
            if (auto ok = seg_.write_durably(chunk, opts_.sync); !ok) return ok;
            std::lock_guard lk(mu_);
            ++stats_.batches;
            if (opts_.sync) ++stats_.syncs;
            i = j;
        }
        return {};
    }

    Status roll_segment(uint64_t base_lsn, int64_t first_time_ns) {
        // The sealed segment is already durable (every write was synced), so
        // damage found in it later is corruption, never a torn tail.
        if (seg_.is_open() && !opts_.sync) {
            if (auto ok = seg_.sync_now(); !ok) return ok;
        }
        if (auto ok = seg_.create(opts_.dir, dir_fd_, base_lsn, first_time_ns, opts_.segment_bytes, opts_.preallocate); !ok)
            return ok;
        std::lock_guard lk(segments_mu_);
        if (segment_bases_.empty() || segment_bases_.back() != base_lsn) segment_bases_.push_back(base_lsn);
        return {};
    }

    WriterOptions opts_;
    int dir_fd_ = -1;
    int lock_fd_ = -1;
    SegmentWriter seg_;  // committer thread only
    std::thread committer_;

    mutable std::mutex mu_;
    std::condition_variable work_cv_, space_cv_, durable_cv_;
    std::string pending_;
    std::vector<uint64_t> pending_offsets_;
    std::vector<int64_t> pending_times_;
    Callbacks pending_cbs_;
    uint64_t pending_first_lsn_ = 0;
    uint64_t next_lsn_ = 1;
    bool committer_idle_ = false;
    bool holding_ = false;     // hold(): appends leave the committer asleep
    bool closing_ = false;
    bool closed_ = false;
    std::optional<Error> failure_;
    WriterStats stats_;
    std::atomic<uint64_t> head_{0};
    std::atomic<uint64_t> durable_{0};

    std::mutex segments_mu_;
    std::deque<uint64_t> segment_bases_;
};

}  // namespace

Result<std::unique_ptr<Writer>> Writer::open(WriterOptions options) {
    if (options.dir.empty()) return fail(make_error("journal directory not set"));
    if (options.segment_bytes < format::kSegmentHeaderBytes * 2)
        return fail(make_error(fmt::format("segment size {} is too small", options.segment_bytes)));
    auto w = std::make_unique<WriterImpl>(std::move(options));
    if (auto ok = w->start(); !ok) return fail(ok.error());
    return std::unique_ptr<Writer>(std::move(w));
}

}  // namespace iz::journal
