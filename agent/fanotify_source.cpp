#include "agent/fanotify_source.hpp"

#include "fanotify_queue.hpp"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace iz::agent {

namespace {

// Every event costs the writer a few microseconds in the kernel, so only
// what the capture uses: FAN_RENAME carries both ends (MOVED_FROM/MOVED_TO
// would repeat it), and a directory's own deletion or move is an event of
// its parent.
constexpr uint64_t kMask =
    FAN_CREATE | FAN_DELETE | FAN_RENAME | FAN_ATTRIB | FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ONDIR;

FileHandle handle_in(const file_handle* fh) {
    return FileHandle{fh->handle_type, std::string(reinterpret_cast<const char*>(fh->f_handle), fh->handle_bytes)};
}

}  // namespace

Result<std::unique_ptr<FanotifySource>> FanotifySource::open(const std::string& dir, uint32_t queue_events) {
    auto queue = with_queue_length(queue_events, [] {
        return fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME_TARGET,
                             O_RDONLY | O_CLOEXEC | O_LARGEFILE);
    });
    int fd = queue.fd;
    if (fd < 0) {
        int err = errno;
        if (err == EPERM) return fail(make_error("fanotify_init: permission denied (izwatch needs root or CAP_SYS_ADMIN)"));
        if (err == EINVAL) return fail(make_error("fanotify_init: this kernel lacks FID/rename reporting (Linux 5.17 or newer is needed)"));
        return fail(sys_error("fanotify_init", err));
    }
    auto src = std::unique_ptr<FanotifySource>(new FanotifySource());
    src->fd_ = fd;
    src->queue_events_ = queue.events;
    src->queue_note_ = queue.note;
    if (fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, kMask, AT_FDCWD, dir.c_str()) != 0) {
        int err = errno;
        if (err == EXDEV || err == EOPNOTSUPP || err == ENODEV)
            return fail(make_error(fmt::format("'{}' is on a filesystem without fanotify file-handle support ({})", dir, std::strerror(err))));
        return fail(sys_error("fanotify_mark filesystem of", dir, err));
    }
    return src;
}

FanotifySource::~FanotifySource() {
    if (fd_ >= 0) ::close(fd_);
}

std::optional<uint64_t> FanotifySource::queued() const {
    int bytes = 0;
    // The kernel answers FAN_EVENT_METADATA_LEN per queued event, whatever
    // information records each will carry when read.
    if (::ioctl(fd_, FIONREAD, &bytes) != 0 || bytes < 0) return std::nullopt;
    return static_cast<uint64_t>(bytes) / FAN_EVENT_METADATA_LEN;
}

Result<size_t> FanotifySource::drain(const std::function<void(const FanEvent&)>& sink) {
    alignas(fanotify_event_metadata) char buf[64 * 1024];
    size_t count = 0;
    for (;;) {
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return count;
            return fail(sys_error("read fanotify events", errno));
        }
        if (n == 0) return count;
        auto* meta = reinterpret_cast<fanotify_event_metadata*>(buf);
        while (FAN_EVENT_OK(meta, n)) {
            FanEvent ev;
            ev.mask = meta->mask;
            ev.pid = meta->pid;
            if (meta->fd >= 0) ::close(meta->fd);
            char* info = reinterpret_cast<char*>(meta) + meta->metadata_len;
            char* end = reinterpret_cast<char*>(meta) + meta->event_len;
            while (info + sizeof(fanotify_event_info_header) <= end) {
                auto* hdr = reinterpret_cast<fanotify_event_info_header*>(info);
                if (hdr->len == 0 || info + hdr->len > end) break;
                if (hdr->info_type == FAN_EVENT_INFO_TYPE_FID || hdr->info_type == FAN_EVENT_INFO_TYPE_DFID_NAME ||
                    hdr->info_type == FAN_EVENT_INFO_TYPE_DFID || hdr->info_type == FAN_EVENT_INFO_TYPE_OLD_DFID_NAME ||
                    hdr->info_type == FAN_EVENT_INFO_TYPE_NEW_DFID_NAME) {
                    auto* fid = reinterpret_cast<fanotify_event_info_fid*>(info);
                    auto* fh = reinterpret_cast<file_handle*>(fid->handle);
                    FileHandle key = handle_in(fh);
                    const char* name = reinterpret_cast<const char*>(fh->f_handle) + fh->handle_bytes;
                    switch (hdr->info_type) {
                        case FAN_EVENT_INFO_TYPE_FID: ev.object_handle = key; break;
                        case FAN_EVENT_INFO_TYPE_DFID: ev.dir_handle = key; break;
                        case FAN_EVENT_INFO_TYPE_DFID_NAME:
                        case FAN_EVENT_INFO_TYPE_OLD_DFID_NAME:
                            ev.dir_handle = key;
                            ev.name = name;
                            break;
                        case FAN_EVENT_INFO_TYPE_NEW_DFID_NAME:
                            ev.new_dir_handle = key;
                            ev.new_name = name;
                            break;
                    }
                    if (ev.name == ".") ev.name.clear();
                }
                info += hdr->len;
            }
            sink(ev);
            ++count;
            meta = FAN_EVENT_NEXT(meta, n);
        }
    }
}

}  // namespace iz::agent
