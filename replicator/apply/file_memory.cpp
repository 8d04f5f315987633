#include "file_memory.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/path_tree.hpp"
#include "common/durable_file.hpp"

namespace iz::replicator {

namespace {

constexpr char kMagic[8] = {'I', 'Z', 'M', 'E', 'M', '0', '1', '\n'};
constexpr size_t kHeaderBytes = 16;  // magic + generation
constexpr uint64_t kCompactBytes = 8ull << 20;

void put64(std::string& out, uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put32(std::string& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get64(const char* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(p[i]);
    return v;
}
uint32_t get32(const char* p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(p[i]);
    return v;
}

std::string header(uint64_t generation) {
    std::string h(kMagic, sizeof kMagic);
    put64(h, generation);
    return h;
}

// Appends one entry to `out`: its length, the payload, the payload's hash.
// Returns the bytes appended.
size_t append_entry(std::string& out, uint8_t kind, const std::string& a, const std::string& b, uint64_t ino,
                    uint64_t size, int64_t mtime) {
    size_t start = out.size();
    size_t payload = 1 + 8 + 8 + 8 + 4 + a.size() + 4 + b.size();
    out.reserve(start + 4 + payload + 8);
    put32(out, static_cast<uint32_t>(payload));
    out.push_back(static_cast<char>(kind));
    put64(out, ino);
    put64(out, size);
    put64(out, static_cast<uint64_t>(mtime));
    put32(out, static_cast<uint32_t>(a.size()));
    out += a;
    put32(out, static_cast<uint32_t>(b.size()));
    out += b;
    put64(out, XXH64(out.data() + start + 4, payload, 0));
    return out.size() - start;
}

Result<std::string> read_all(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return std::string();
        return fail(sys_error("open", path.string(), errno));
    }
    std::string data;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            return fail(sys_error("read", path.string(), err));
        }
        if (n == 0) break;
        data.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return data;
}

using PathMap = std::map<std::string, uint64_t>;


// Removes `path` and everything beneath it, handing each to `take`.
template <class F>
void take_subtree(PathMap& paths, const std::string& path, F&& take) {
    if (auto it = paths.find(path); it != paths.end()) {
        take(it->first, it->second);
        paths.erase(it);
    }
    auto [first, last] = subtree_range(paths, path);
    for (auto it = first; it != last; ++it) take(it->first, it->second);
    paths.erase(first, last);
}

}  // namespace

Result<std::unique_ptr<FileMemory>> FileMemory::open(const std::filesystem::path& dir) {
    std::unique_ptr<FileMemory> m(new FileMemory());
    m->dir_ = dir;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail(Error{fmt::format("create state directory '{}': {}", dir.string(), ec.message()), ec.value()});

    // Entries after a torn or damaged one are dropped: the memory only ever
    // errs towards "unknown", which adopts rather than raising conflicts.
    auto load = [&](const std::filesystem::path& file, std::optional<uint64_t> want_gen) -> Result<std::optional<uint64_t>> {
        auto data = read_all(file);
        if (!data) return fail(data.error());
        if (data->size() < kHeaderBytes || std::memcmp(data->data(), kMagic, sizeof kMagic) != 0)
            return std::optional<uint64_t>{};
        uint64_t gen = get64(data->data() + 8);
        if (want_gen && gen != *want_gen) return std::optional<uint64_t>{};
        size_t off = kHeaderBytes;
        while (off + 4 <= data->size()) {
            uint32_t len = get32(data->data() + off);
            if (len < 33 || off + 4 + len + 8 > data->size()) break;
            const char* p = data->data() + off + 4;
            if (XXH64(p, len, 0) != get64(p + len)) break;
            uint8_t kind = static_cast<uint8_t>(p[0]);
            uint64_t ino = get64(p + 1), size = get64(p + 9);
            int64_t mtime = static_cast<int64_t>(get64(p + 17));
            uint32_t alen = get32(p + 25);
            if (29ull + alen + 4 > len) break;
            std::string a(p + 29, alen);
            uint32_t blen = get32(p + 29 + alen);
            if (33ull + alen + blen != len) break;
            std::string b(p + 33 + alen, blen);
            m->replay(static_cast<Kind>(kind), a, b, ino, size, mtime);
            off += 4 + len + 8;
        }
        return std::optional<uint64_t>(gen);
    };
    auto snap = load(dir / "files.snapshot", std::nullopt);
    if (!snap) return fail(snap.error());
    m->generation_ = snap->value_or(0);
    auto logged = load(dir / "files.log", m->generation_);
    if (!logged) return fail(logged.error());
    // A log of another generation predates the snapshot: start a fresh one.
    if (auto ok = m->open_log(!logged->has_value()); !ok) return fail(ok.error());
    return m;
}

Status FileMemory::open_log(bool fresh) {
    auto path = dir_ / "files.log";
    if (fresh) {
        if (auto ok = write_file_durably(path, header(generation_)); !ok) return ok;
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return fail(sys_error("open file memory log", path.string(), errno));
    log_fd_.reset(fd);
    struct stat st{};
    ::fstat(fd, &st);
    log_bytes_ = static_cast<uint64_t>(st.st_size);
    log_failed_ = false;
    return {};
}

std::optional<std::string> FileMemory::changed(const std::string& path, const struct stat& st) const {
    auto it = paths_.find(path);
    if (it == paths_.end()) return std::nullopt;
    if (static_cast<uint64_t>(st.st_ino) != it->second)
        return fmt::format("it was replaced by another file (inode {}, the replicator left inode {})", st.st_ino, it->second);
    auto seen = inodes_.find(it->second);
    if (seen == inodes_.end()) return std::nullopt;
    int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    if (static_cast<uint64_t>(st.st_size) != seen->second.size || mtime != seen->second.mtime_ns)
        return fmt::format("it was modified (size {} -> {}, mtime {} -> {})", seen->second.size, st.st_size,
                           seen->second.mtime_ns, mtime);
    return std::nullopt;
}

bool FileMemory::ours(const std::string& path, const struct stat& st) const {
    auto it = paths_.find(path);
    if (it == paths_.end() || it->second != static_cast<uint64_t>(st.st_ino)) return false;
    auto seen = inodes_.find(it->second);
    int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    return seen != inodes_.end() && seen->second.size == static_cast<uint64_t>(st.st_size) &&
           seen->second.mtime_ns == mtime;
}

void FileMemory::replay(Kind kind, const std::string& a, const std::string& b, uint64_t ino, uint64_t size,
                        int64_t mtime) {
    switch (kind) {
        case Kind::remember:
            paths_[a] = ino;
            inodes_[ino] = Seen{size, mtime};
            break;
        case Kind::doubt: inodes_.erase(ino); break;
        case Kind::alias: paths_[a] = ino; break;
        case Kind::forget: take_subtree(paths_, a, [](const std::string&, uint64_t) {}); break;
        case Kind::move: {
            if (a == b) break;
            std::vector<std::pair<std::string, uint64_t>> moved;
            take_subtree(paths_, a, [&](const std::string& p, uint64_t i) { moved.emplace_back(b + p.substr(a.size()), i); });
            replay(Kind::forget, b, {}, 0, 0, 0);
            for (auto& [p, i] : moved) paths_[p] = i;
            break;
        }
        case Kind::exchange: {
            if (a == b) break;
            std::vector<std::pair<std::string, uint64_t>> moved;
            take_subtree(paths_, a, [&](const std::string& p, uint64_t i) { moved.emplace_back(b + p.substr(a.size()), i); });
            take_subtree(paths_, b, [&](const std::string& p, uint64_t i) { moved.emplace_back(a + p.substr(b.size()), i); });
            for (auto& [p, i] : moved) paths_[p] = i;
            break;
        }
    }
}

void FileMemory::log(Kind kind, const std::string& a, const std::string& b, uint64_t ino, uint64_t size, int64_t mtime) {
    // Entries may wait for the next one that must not be lost, for
    // flush(), for sync(), or for 64 KiB of company; a tree copy or a
    // delete made one write per file otherwise. That is safe for:
    //  - A first record (a path the memory knows nothing of, naming an
    //    inode it knows nothing of, or another name of a known one): lost
    //    in a crash, the file is adopted when seen again.
    //  - A forget. Lost together with a later first record of the same
    //    path, the old record would come back and call the replicator's new
    //    file a change behind its back, but the applier flushes before it
    //    records progress past an operation (AppliedState::progress_due),
    //    so whatever is lost belongs to operations the agent sends again,
    //    replayed with conflicts off until the next commit; their replay
    //    forgets and remembers anew.
    //  - A record of an inode that is unknown (never seen, or doubted before
    //    it was changed) under a path that is unknown or already names it:
    //    lost, the path still names that inode or nothing, and the inode is
    //    adopted when seen again. A setattr or a write in place is one.
    // Doubts (before an inode is changed), records that give a known path
    // another inode, moves and exchanges are written at once.
    bool may_wait = kind == Kind::forget;
    if (kind == Kind::remember || kind == Kind::alias) {
        auto named = paths_.find(a);
        if (named == paths_.end()) may_wait = kind == Kind::alias || !inodes_.count(ino);
        else may_wait = kind == Kind::remember && named->second == ino && !inodes_.count(ino);
    }
    size_t known = paths_.size();
    replay(kind, a, b, ino, size, mtime);
    if (kind == Kind::forget && paths_.size() == known) return;  // nothing at or beneath it: nothing to log
    if (log_failed_ || !log_fd_.valid()) return;
    log_bytes_ += append_entry(waiting_, static_cast<uint8_t>(kind), a, b, ino, size, mtime);
    if (holding_) return;
    if (!may_wait || waiting_.size() >= (64u << 10)) write_waiting();
}

void FileMemory::write_waiting() {
    if (waiting_.empty()) return;
    // No fsync here: a process crash keeps the page cache; sync() makes it
    // durable together with the applied LSN.
    if (::write(log_fd_.get(), waiting_.data(), waiting_.size()) != static_cast<ssize_t>(waiting_.size())) log_failed_ = true;
    waiting_.clear();
}

void FileMemory::doubt(uint64_t ino) { log(Kind::doubt, {}, {}, ino, 0, 0); }

void FileMemory::remember(const std::string& path, const struct stat& st) {
    int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    log(Kind::remember, path, {}, static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size), mtime);
}

void FileMemory::alias(const std::string& path, uint64_t ino) { log(Kind::alias, path, {}, ino, 0, 0); }

void FileMemory::forget(const std::string& path) { log(Kind::forget, path, {}, 0, 0, 0); }

void FileMemory::move(const std::string& from, const std::string& to) { log(Kind::move, from, to, 0, 0, 0); }

void FileMemory::exchange(const std::string& a, const std::string& b) { log(Kind::exchange, a, b, 0, 0, 0); }

std::optional<UniqueFd> FileMemory::begin_sync() {
    if (log_failed_ || log_bytes_ > kCompactBytes || !log_fd_.valid()) return std::nullopt;
    int fd = ::dup(log_fd_.get());
    if (fd < 0) return std::nullopt;
    write_waiting();
    holding_ = true;
    return UniqueFd(fd);
}

void FileMemory::release() {
    holding_ = false;
    write_waiting();
}

Status FileMemory::sync() {
    holding_ = false;
    write_waiting();
    if (log_failed_ || log_bytes_ > kCompactBytes) return compact();
    if (::fdatasync(log_fd_.get()) != 0) return fail(sys_error("fdatasync", (dir_ / "files.log").string(), errno));
    return {};
}

Status FileMemory::compact() {
    std::string snap = header(generation_ + 1);
    for (auto& [path, ino] : paths_) {
        auto seen = inodes_.find(ino);
        if (seen != inodes_.end()) {
            append_entry(snap, static_cast<uint8_t>(Kind::remember), path, {}, ino, seen->second.size, seen->second.mtime_ns);
        } else {
            append_entry(snap, static_cast<uint8_t>(Kind::remember), path, {}, ino, 0, 0);
            append_entry(snap, static_cast<uint8_t>(Kind::doubt), {}, {}, ino, 0, 0);
        }
    }
    if (auto ok = write_file_durably(dir_ / "files.snapshot", snap); !ok) return ok;
    waiting_.clear();  // in the snapshot
    ++generation_;
    // Inodes no path refers to any more are dropped with the old log.
    std::unordered_map<uint64_t, Seen> live;
    for (auto& [path, ino] : paths_)
        if (auto it = inodes_.find(ino); it != inodes_.end()) live.emplace(ino, it->second);
    inodes_ = std::move(live);
    return open_log(true);
}

}  // namespace iz::replicator
