// Loads bpf/capture.bpf.c, keeps only the programs that fit the watched
// filesystem and exist in this kernel, attaches each on its own and hands
// the ring buffer's records to the agent.
#include "bpf/bpf_capture.hpp"

#include <sys/sysmacros.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "capture.skel.h"
#include "capture_events.h"
#include "kernel_facts.hpp"

static_assert(iz::agent::BpfCapture::kMappedFilesCapacity == IZ_MAPPED_FILES);

namespace iz::agent {

// DirtyKind is the C++ name of the kinds the BPF program writes into
// iz_dirty_event.kind (bpf/capture_events.h, plain C for clang -target bpf):
// the two must agree number for number, or ranges arrive as the wrong kind.
static_assert(static_cast<uint8_t>(DirtyKind::write) == IZ_DIRTY_WRITE);
static_assert(static_cast<uint8_t>(DirtyKind::truncate) == IZ_DIRTY_TRUNCATE);
static_assert(static_cast<uint8_t>(DirtyKind::fallocate) == IZ_DIRTY_FALLOCATE);
static_assert(static_cast<uint8_t>(DirtyKind::punch_hole) == IZ_DIRTY_PUNCH_HOLE);
static_assert(static_cast<uint8_t>(DirtyKind::zero_range) == IZ_DIRTY_ZERO_RANGE);
static_assert(static_cast<uint8_t>(DirtyKind::collapse_range) == IZ_DIRTY_COLLAPSE_RANGE);
static_assert(static_cast<uint8_t>(DirtyKind::insert_range) == IZ_DIRTY_INSERT_RANGE);
static_assert(static_cast<uint8_t>(DirtyKind::process_exit) == IZ_PROCESS_EXIT);
static_assert(static_cast<uint8_t>(DirtyKind::unknown) == IZ_DIRTY_UNKNOWN);

namespace {

// libbpf explains a refusal (verifier log, missing BTF, lockdown) only
// through its print callback: keep the last warnings for the error message.
std::mutex g_log_mutex;
std::string g_libbpf_log;

int keep_libbpf_warnings(enum libbpf_print_level level, const char* format, va_list args) {
    if (level == LIBBPF_DEBUG) return 0;
    char line[1024];
    int n = vsnprintf(line, sizeof line, format, args);
    std::lock_guard lock(g_log_mutex);
    g_libbpf_log.append(line);
    if (g_libbpf_log.size() > 4096) g_libbpf_log.erase(0, g_libbpf_log.size() - 4096);
    return n;
}

std::string take_libbpf_log() {
    std::lock_guard lock(g_log_mutex);
    std::string log;
    log.swap(g_libbpf_log);
    while (!log.empty() && (log.back() == '\n' || log.back() == ' ')) log.pop_back();
    if (log.size() > 600) log = "..." + log.substr(log.size() - 600);
    return log;
}

// "tracepoint/ext4/ext4_da_write_end" -> "ext4/ext4_da_write_end"
std::string tracepoint_of(const bpf_program* prog) {
    std::string section = bpf_program__section_name(prog);
    auto slash = section.find('/');
    return slash == std::string::npos ? section : section.substr(slash + 1);
}

std::string category_of(const std::string& tracepoint) { return tracepoint.substr(0, tracepoint.find('/')); }

// Which tracepoint categories serve which filesystem. Syscall tracepoints
// bracket truncate and fallocate for both; the writeback safety net serves
// both.
bool serves(const std::string& category, const std::string& fs_type) {
    if (category == "syscalls" || category == "sched" || category == "writeback") return true;
    // filemap: which files a mapping faulted in, for ext4's safety net (XFS
    // reports every write fault itself).
    if (fs_type == "ext4") return category == "ext4" || category == "iomap" || category == "filemap";
    if (fs_type == "xfs") return category == "xfs";
    return false;
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
    return out;
}

class BpfCaptureImpl final : public BpfCapture {
public:
    ~BpfCaptureImpl() override {
        if (rb_) ring_buffer__free(rb_);
        for (auto* link : links_) bpf_link__destroy(link);
        if (skel_) capture__destroy(skel_);
    }

    Status init(dev_t dev, pid_t own_pid) {
        libbpf_set_print(keep_libbpf_warnings);
        take_libbpf_log();
        auto fs_type = bpf::filesystem_type(dev);
        if (!fs_type) return fail(fs_type.error());
        if (*fs_type != "ext4" && *fs_type != "xfs")
            return fail(make_error(fmt::format("eBPF dirty ranges: no tracepoints for a {} filesystem (only ext4 and xfs)",
                                               *fs_type)));
        auto events_dir = bpf::tracefs_events_dir();
        if (!events_dir) return fail(events_dir.error());

        skel_ = capture__open();
        if (!skel_) return fail(refusal("open the eBPF capture object", errno));
        skel_->rodata->target_dev = bpf::kernel_dev(dev);
        skel_->rodata->own_tgid = static_cast<uint32_t>(own_pid);
        auto bdi = bpf::backing_device_name(dev);
        std::memcpy(const_cast<char*>(skel_->rodata->target_bdi), bdi.c_str(),
                    std::min(bdi.size(), sizeof skel_->rodata->target_bdi - 1));

        std::vector<std::string> absent;
        // ext4 truncates are tied to their inode by its journal handles;
        // by its (four times as frequent) dirtyings only where the kernel
        // has no tracepoint for the handles (before 6.4).
        bool handle_tracepoint = bpf::tracepoint_exists(*events_dir, "ext4/ext4_journal_start_inode");
        bpf_program* prog = nullptr;
        bpf_object__for_each_program(prog, skel_->obj) {
            std::string tp = tracepoint_of(prog);
            // XFS reports its write faults itself; the dirty-folio net
            // (and its bookkeeping in ext4's write_end) is ext4's.
            bool wanted = serves(category_of(tp), *fs_type) &&
                          !(tp == "writeback/writeback_dirty_folio" && *fs_type != "ext4") &&
                          !(tp == "ext4/ext4_mark_inode_dirty" && handle_tracepoint);
            bool exists = wanted && bpf::tracepoint_exists(*events_dir, tp);
            if (wanted && !exists) absent.push_back(tp);
            bpf_program__set_autoload(prog, exists);
        }
        if (int err = capture__load(skel_); err) return fail(refusal("load the eBPF capture programs", -err));

        std::vector<std::string> attached, failed;
        size_t filesystem_programs = 0;
        bpf_object__for_each_program(prog, skel_->obj) {
            if (!bpf_program__autoload(prog)) continue;
            std::string tp = tracepoint_of(prog);
            bpf_link* link = bpf_program__attach(prog);
            if (!link) {
                failed.push_back(fmt::format("{} ({})", tp, strerror(errno)));
                continue;
            }
            links_.push_back(link);
            attached.push_back(tp);
            if (category_of(tp) != "syscalls" && category_of(tp) != "sched" && category_of(tp) != "writeback")
                ++filesystem_programs;
        }
        if (filesystem_programs == 0)
            return fail(make_error(fmt::format("eBPF dirty ranges: no {} tracepoint could be attached{}", *fs_type,
                                               failed.empty() ? "" : ": " + join(failed))));

        description_ = fmt::format("eBPF on {} {}:{}: {} tracepoints attached ({})", *fs_type, major(dev), minor(dev),
                                   attached.size(), join(attached));
        if (!absent.empty()) description_ += fmt::format("; not in this kernel: {}", join(absent));
        if (!failed.empty()) description_ += fmt::format("; failed to attach: {}", join(failed));

        rb_ = ring_buffer__new(bpf_map__fd(skel_->maps.events), &BpfCaptureImpl::on_sample, this, nullptr);
        if (!rb_) return fail(refusal("create the eBPF ring buffer reader", errno));
        return {};
    }

    int fd() const override { return ring_buffer__epoll_fd(rb_); }

    Result<size_t> consume(const std::function<void(const DirtyRangeEvent&)>& sink) override {
        sink_ = &sink;
        delivered_ = 0;
        int n = ring_buffer__consume(rb_);
        sink_ = nullptr;
        if (n < 0) return fail(sys_error("read the eBPF ring buffer", -n));
        return delivered_;
    }

    BpfCaptureStats stats() const override {
        return {events_, __atomic_load_n(&skel_->bss->dropped, __ATOMIC_RELAXED)};
    }

    size_t mapped_files() const override {
        int fd = bpf_map__fd(skel_->maps.mapped_files);
        size_t n = 0;
        uint64_t key = 0, next = 0;
        for (void* at = nullptr; bpf_map_get_next_key(fd, at, &next) == 0; at = &key) {
            key = next;
            ++n;
        }
        return n;
    }

    std::string description() const override { return description_; }

private:
    // What was refused, the errno text, and what libbpf said about it.
    static Error refusal(std::string_view what, int err) {
        std::string hint;
        if (err == EPERM || err == EACCES)
            hint = " (needs root or CAP_BPF+CAP_PERFMON; kernel lockdown or a security module may forbid eBPF)";
        Error e = sys_error(what, err);
        e.message += hint;
        if (auto log = take_libbpf_log(); !log.empty()) e.message += ": " + log;
        return e;
    }

    static int on_sample(void* ctx, void* data, size_t size) {
        auto* self = static_cast<BpfCaptureImpl*>(ctx);
        if (size < sizeof(iz_dirty_event) || !self->sink_) return 0;
        iz_dirty_event e;
        std::memcpy(&e, data, sizeof e);
        if (e.kind < IZ_DIRTY_WRITE || e.kind > IZ_DIRTY_UNKNOWN) return 0;
        DirtyRangeEvent ev;
        ev.ino = e.ino;
        ev.kind = static_cast<DirtyKind>(e.kind);
        ev.offset = e.offset;
        ev.length = e.length;
        ev.pid = static_cast<int32_t>(e.pid);
        ev.uid = e.uid;
        ev.gid = e.gid;
        ev.comm.assign(e.comm, strnlen(e.comm, sizeof e.comm));
        ev.time_ns = e.time_ns;
        ++self->events_;
        ++self->delivered_;
        (*self->sink_)(ev);
        return 0;
    }

    capture* skel_ = nullptr;
    ring_buffer* rb_ = nullptr;
    std::vector<bpf_link*> links_;
    std::string description_;
    const std::function<void(const DirtyRangeEvent&)>* sink_ = nullptr;
    size_t delivered_ = 0;
    uint64_t events_ = 0;
};

}  // namespace

Result<std::unique_ptr<BpfCapture>> BpfCapture::open(dev_t dev, pid_t own_pid) {
    auto impl = std::make_unique<BpfCaptureImpl>();
    if (auto ok = impl->init(dev, own_pid); !ok) return fail(ok.error());
    return std::unique_ptr<BpfCapture>(std::move(impl));
}

}  // namespace iz::agent
