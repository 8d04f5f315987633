#include "source_reader.hpp"

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "replicator/fs/beneath.hpp"
#include "common/file_handle.hpp"

namespace iz::replicator {

namespace {

// Opens a record's handle (any descriptor on the filesystem serves as the
// mount reference). nullopt when the inode no longer exists.
Result<std::optional<SourceFile>> open_handle(int mount_fd, const journal::FileHandle& h, const std::string& what) {
    if (h.bytes.empty()) return std::optional<SourceFile>{};
    // Reading for replication is no access by anyone: O_NOATIME keeps the
    // source's atime, and spares a journaled inode update per file read
    // (relatime updates the atime of a file read for the first time since
    // it was written). Only its owner or CAP_FOWNER may ask for it.
    int fd = open_by_handle(mount_fd, h, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = open_by_handle(mount_fd, h, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ESTALE || errno == ENOENT) return std::optional<SourceFile>{};
        return fail(sys_error("open by file handle", what, errno));
    }
    SourceFile f;
    f.fd.reset(fd);
    if (::fstat(fd, &f.st) != 0) return fail(sys_error("stat", what, errno));
    // Unlinked but still open somewhere: as good as gone.
    if (!S_ISREG(f.st.st_mode) || f.st.st_nlink == 0) return std::optional<SourceFile>{};
    return std::optional<SourceFile>(std::move(f));
}

}  // namespace

Result<SourceTree> SourceTree::open(const std::filesystem::path& root) {
    SourceTree t;
    t.path_ = root;
    int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail(sys_error("open watched root", root.string(), errno));
    t.root_.reset(fd);
    return t;
}

Result<std::optional<SourceFile>> SourceTree::open_file(const std::string& path, const journal::FileHandle& handle) const {
    // With a handle the answer is always the handle's inode (when the path
    // names it too, it is the same file): opening it directly saves the
    // path lookup, a second stat and the reopen, per file shipped.
    if (!handle.empty()) return open_handle(root_.get(), handle, path);
    auto node = open_beneath(root_.get(), path, O_PATH | O_NOFOLLOW);
    if (!node) {
        int err = node.error().sys_errno;
        if (err != ENOENT && err != ENOTDIR && !is_refusal(node.error()) && !is_rejection(node.error()))
            return fail(node.error());
        return open_handle(root_.get(), handle, path);
    }
    struct stat st{};
    if (::fstat(node->get(), &st) != 0) return fail(sys_error("stat", path, errno));
    // Only regular files are opened for reading: opening a device or FIFO
    // has side effects.
    if (!S_ISREG(st.st_mode)) return std::optional<SourceFile>{};
    int fd = ::open(fd_path(node->get()).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(sys_error("open for reading", path, errno));
    SourceFile f;
    f.fd.reset(fd);
    f.st = st;
    return std::optional<SourceFile>(std::move(f));
}

std::optional<int64_t> SourceTree::parent_mtime(const std::string& path) const {
    auto [parent, name] = split_parent(path);
    (void)name;
    auto fd = open_beneath(root_.get(), parent, O_PATH | O_DIRECTORY);
    if (!fd) return std::nullopt;
    struct stat st{};
    if (::fstat(fd->get(), &st) != 0) return std::nullopt;
    return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

namespace {

// The object itself, whatever its type, without following it.
UniqueFd open_handle_path(int mount_fd, const journal::FileHandle& handle) {
    return UniqueFd(open_by_handle(mount_fd, handle, O_PATH | O_NOFOLLOW | O_CLOEXEC));
}

}  // namespace

bool SourceTree::is_directory(const journal::FileHandle& handle) const {
    if (handle.empty()) return false;
    auto fd = open_handle_path(root_.get(), handle);
    struct stat st{};
    return fd.get() >= 0 && ::fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::optional<uint32_t> SourceTree::file_type(const journal::FileHandle& handle) const {
    if (handle.empty()) return std::nullopt;
    auto fd = open_handle_path(root_.get(), handle);
    struct stat st{};
    if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) return std::nullopt;
    return static_cast<uint32_t>(st.st_mode & S_IFMT);
}

bool SourceTree::names_other_than_a_file(const std::string& path, const journal::FileHandle& handle) const {
    UniqueFd fd;
    if (!handle.empty()) {
        fd = open_handle_path(root_.get(), handle);
    } else if (auto node = open_beneath(root_.get(), path, O_PATH | O_NOFOLLOW)) {
        fd = std::move(*node);
    }
    struct stat st{};
    return fd.get() >= 0 && ::fstat(fd.get(), &st) == 0 && st.st_nlink > 0 && !S_ISREG(st.st_mode);
}

std::optional<std::string> SourceTree::link_target(const journal::FileHandle& handle) const {
    auto fd = open_handle_path(root_.get(), handle);
    if (fd.get() < 0) return std::nullopt;
    char buf[PATH_MAX];
    ssize_t n = ::readlinkat(fd.get(), "", buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
}

bool SourceTree::holds(const std::string& path, const journal::FileHandle& handle) const {
    if (handle.empty() || path.empty()) return false;
    auto [parent, name] = split_parent(path);
    auto dir = open_beneath(root_.get(), parent, O_PATH | O_DIRECTORY);
    if (!dir) return false;
    auto now = handle_of(dir->get(), std::string(name), path);
    return now && *now == handle;
}

std::optional<struct stat> SourceTree::stat_object(const journal::FileHandle& handle) const {
    if (handle.empty()) return std::nullopt;
    auto fd = open_handle_path(root_.get(), handle);
    struct stat st{};
    if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0 || st.st_nlink == 0) return std::nullopt;
    return st;
}

std::map<std::string, std::string> SourceTree::xattrs(const journal::FileHandle& handle) const {
    std::map<std::string, std::string> out;
    if (handle.empty()) return out;
    auto fd = open_handle_path(root_.get(), handle);
    if (fd.get() < 0) return out;
    // Through the descriptor's /proc link, which the *xattr calls follow to
    // the object itself (an O_PATH descriptor has no f*xattr of its own).
    auto via = fd_path(fd.get());
    std::string names(65536, '\0');
    ssize_t n = ::listxattr(via.c_str(), names.data(), names.size());
    for (ssize_t i = 0; i < n;) {
        std::string name(names.data() + i);
        i += static_cast<ssize_t>(name.size()) + 1;
        if (!name.starts_with("user.") && !name.starts_with("system.posix_acl_")) continue;
        std::string value(65536, '\0');
        ssize_t v = ::getxattr(via.c_str(), name.c_str(), value.data(), value.size());
        if (v < 0) continue;
        value.resize(static_cast<size_t>(v));
        out[name] = std::move(value);
    }
    return out;
}

Result<std::string> read_range(int fd, uint64_t offset, size_t len, const std::string& what) {
    // Read straight into the string's storage: no zero-filling first.
    std::string buf;
    int err = 0;
    buf.resize_and_overwrite(len, [&](char* p, size_t n) {
        // `len`, not `n`: libstdc++ 12 passes the capacity it grew the
        // string to (twice the 15 bytes a short string holds for a request
        // of 16 to 29), and reading that much gave bytes nobody asked for.
        size_t want = std::min(n, len);
        size_t got = 0;
        while (got < want) {
            ssize_t r = ::pread(fd, p + got, want - got, static_cast<off_t>(offset + got));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                err = errno;
                break;
            }
            if (r == 0) break;
            got += static_cast<size_t>(r);
        }
        return got;
    });
    if (err) return fail(sys_error(fmt::format("read {} bytes at offset {} of", len, offset), what, err));
    return buf;
}

namespace {
constexpr uint64_t kSmallFileBytes = 64u << 10;
}  // namespace

Result<std::vector<DataExtent>> file_data(const SourceFile& f, uint64_t from, uint64_t to, const std::string& what,
                                          uint64_t* end) {
    uint64_t size = static_cast<uint64_t>(f.st.st_size);
    if (from < to && size <= kSmallFileBytes && static_cast<uint64_t>(f.st.st_blocks) * 512 >= size) {
        // Dense by its blocks, which may still hide a hole: blocks counted
        // beyond the data (preallocated past the end, a copy-on-write
        // reservation after a clone, an xattr block) made a file with a
        // hole look dense, and its zeros then travelled as data and took
        // blocks on the replica. One SEEK_HOLE says; a short read finds it
        // if the file shrank.
        off_t hole = ::lseek(f.fd.get(), static_cast<off_t>(from), SEEK_HOLE);
        if (hole >= 0 && static_cast<uint64_t>(hole) >= to) {
            if (end) *end = to;
            return std::vector<DataExtent>{{from, to - from}};
        }
    }
    return data_extents(f.fd.get(), from, to, what, end);
}

Result<SparseRead> read_sparse(int fd, const std::vector<DataExtent>& extents, uint64_t from, uint64_t to, size_t chunk,
                               const std::string& what, const SparseOut& out, std::optional<std::string_view> block) {
    // A hole is held until what follows it is known, so adjacent ones
    // (a gap, then a chunk of zeros) travel as one.
    uint64_t hole_at = 0, hole_len = 0;
    auto flush_hole = [&] {
        bool go = hole_len == 0 || out.hole(hole_at, hole_len);
        hole_len = 0;
        return go;
    };
    auto add_hole = [&](uint64_t off, uint64_t len) {
        if (hole_len && hole_at + hole_len == off) {
            hole_len += len;
            return true;
        }
        bool go = flush_hole();
        hole_at = off;
        hole_len = len;
        return go;
    };
    auto stop = [&](uint64_t end) { return SparseRead{end, true}; };
    uint64_t at = from;  // everything before it has been given out
    auto first = std::upper_bound(extents.begin(), extents.end(), from,
                                  [](uint64_t off, const DataExtent& e) { return off < e.end(); });
    for (auto e = first; e != extents.end() && e->offset < to; ++e) {
        uint64_t start = std::max(e->offset, from), end = std::min(e->end(), to);
        if (start > at && !add_hole(at, start - at)) return stop(at);
        for (uint64_t off = start; off < end;) {
            size_t want = static_cast<size_t>(std::min<uint64_t>(chunk, end - off));
            std::string bytes;
            if (block) {
                uint64_t in = off - from;
                if (in < block->size()) bytes.assign(block->substr(in, want));
            } else {
                auto got = read_range(fd, off, want, what);
                if (!got) return fail(got.error());
                bytes = std::move(*got);
            }
            size_t got = bytes.size();
            if (all_zero(bytes.data(), got)) {
                if (got && !add_hole(off, got)) return stop(off);
            } else if (!flush_hole() || !out.data(off, std::move(bytes))) {
                return stop(off);
            }
            off += got;
            if (got < want) {
                if (!flush_hole()) return stop(off);
                return SparseRead{off, false};
            }
        }
        at = end;
    }
    if (at < to && !add_hole(at, to - at)) return stop(at);
    if (!flush_hole()) return stop(to);
    return SparseRead{to, false};
}

}  // namespace iz::replicator
