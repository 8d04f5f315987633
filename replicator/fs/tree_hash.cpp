#include "replicator/fs/tree_hash.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "replicator/fs/beneath.hpp"

namespace iz::replicator::tree {

namespace {

// ---- encoding ------------------------------------------------------------

void put_u64(std::string& out, uint64_t v) {
    for (int s = 56; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
}
void put_str(std::string& out, std::string_view s) {
    put_u64(out, s.size());
    out.append(s);
}

struct Cursor {
    std::string_view in;
    bool ok = true;
    uint64_t u64() {
        if (in.size() < 8) {
            ok = false;
            return 0;
        }
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v = v << 8 | static_cast<unsigned char>(in[static_cast<size_t>(i)]);
        in.remove_prefix(8);
        return v;
    }
    std::string str() {
        uint64_t n = u64();
        if (!ok || n > in.size()) {
            ok = false;
            return {};
        }
        std::string s(in.substr(0, n));
        in.remove_prefix(n);
        return s;
    }
};

std::string hash128(std::string_view data) {
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(data.data(), data.size()));
    return std::string(reinterpret_cast<const char*>(c.digest), sizeof c.digest);
}

std::string hex(std::string_view bytes) {
    std::string out;
    for (unsigned char c : bytes) out += fmt::format("{:02x}", c);
    return out;
}

// ---- reading one entry -----------------------------------------------------

char type_of(mode_t m) {
    if (S_ISDIR(m)) return 'd';
    if (S_ISREG(m)) return 'f';
    if (S_ISLNK(m)) return 'l';
    if (S_ISFIFO(m)) return 'p';
    if (S_ISCHR(m)) return 'c';
    if (S_ISBLK(m)) return 'b';
    if (S_ISSOCK(m)) return 's';
    return '?';
}

int64_t ns_of(const struct timespec& ts) { return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec; }

bool xattr_compared(std::string_view name) {
    // user.* and POSIX ACLs: what a source's owner sets. security.* labels
    // follow each host's policy, trusted.* are the filesystem's own.
    return name.starts_with("user.") || name.starts_with("system.posix_acl_");
}

// xattrs through a path ("/proc/self/fd/N" of an O_PATH descriptor, which
// listxattr follows to the file itself).
Status read_xattrs(const std::string& via, const std::string& rel, std::map<std::string, std::string>& out) {
    std::string names(4096, '\0');
    ssize_t n;
    for (;;) {
        n = ::listxattr(via.c_str(), names.data(), names.size());
        if (n >= 0) break;
        if (errno == ENOTSUP) return {};
        if (errno != ERANGE) return fail(sys_error("list xattrs of", rel, errno));
        names.resize(names.size() * 4);
        if (names.size() > (16u << 20)) return fail(sys_error("list xattrs of", rel, E2BIG));
    }
    for (size_t off = 0; off < static_cast<size_t>(n);) {
        std::string name(names.data() + off);
        off += name.size() + 1;
        if (!xattr_compared(name)) continue;
        std::string value(256, '\0');
        for (;;) {
            ssize_t v = ::getxattr(via.c_str(), name.c_str(), value.data(), value.size());
            if (v >= 0) {
                value.resize(static_cast<size_t>(v));
                break;
            }
            if (errno == ENODATA) {
                value.clear();
                break;
            }
            if (errno != ERANGE || value.size() > (1u << 20)) return fail(sys_error("read xattr " + name + " of", rel, errno));
            value.resize(value.size() * 16);
        }
        out[name] = std::move(value);
    }
    return {};
}

class Walker {
public:
    Walker(const WalkOptions& o, WalkStats* stats) : o_(o), stats_(stats), started_(std::chrono::steady_clock::now()) {}

    // The entry `name` in `dirfd`, whose path is `rel`. nullopt when gone.
    Result<std::optional<Node>> entry(int dirfd, const std::string& name, const std::string& rel) {
        if (o_.cancel && o_.cancel->load()) return fail(make_error("cancelled"));
        int pfd = ::openat(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (pfd < 0) {
            if (errno == ENOENT) return std::optional<Node>{};
            return std::optional<Node>(broken(rel.empty() ? name : leaf(rel), sys_error("open", rel, errno).message));
        }
        UniqueFd node(pfd);
        struct stat st{};
        if (::fstat(node.get(), &st) != 0) return std::optional<Node>(broken(leaf(rel), sys_error("stat", rel, errno).message));
        if (stats_) ++stats_->entries;
        Node n;
        n.name = leaf(rel);
        auto& m = n.meta;
        m.type = type_of(st.st_mode);
        m.mode = st.st_mode & 07777;
        m.uid = st.st_uid;
        m.gid = st.st_gid;
        m.mtime_ns = ns_of(st.st_mtim);
        if (m.type != 'd') m.nlink = static_cast<uint32_t>(st.st_nlink);
        if (m.type == 'c' || m.type == 'b') m.rdev = st.st_rdev;
        if (m.type == 'l') {
            std::string buf(PATH_MAX + 1, '\0');
            ssize_t len = ::readlinkat(node.get(), "", buf.data(), buf.size());
            if (len < 0) return std::optional<Node>(broken(n.name, sys_error("read symlink", rel, errno).message));
            buf.resize(static_cast<size_t>(len));
            m.target = std::move(buf);
        } else if (auto ok = read_xattrs(fd_path(node.get()), rel, m.xattrs); !ok) {
            return std::optional<Node>(broken(n.name, ok.error().message));
        }
        if (m.type == 'f') {
            m.size = static_cast<uint64_t>(st.st_size);
            if (o_.content) {
                auto h = content_hash(node.get(), st, rel);
                if (!h) return std::optional<Node>(broken(n.name, h.error().message));
                m.content = std::move(*h);
            }
        }
        if (m.type != 'd') {
            if (m.type == 'f' && st.st_nlink > 1) {
                n.dev = st.st_dev;
                n.ino = st.st_ino;
                groups_.try_emplace({n.dev, n.ino}, rel);  // the first met leads
            }
            return std::optional<Node>(std::move(n));
        }
        int dfd = ::openat(node.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) return std::optional<Node>(broken(n.name, sys_error("open directory", rel, errno).message));
        UniqueFd dir(dfd);
        // One descriptor per level of a deep tree, not two.
        node.reset();
        auto names = list(dir.get(), rel);
        if (!names) return std::optional<Node>(broken(n.name, names.error().message));
        for (auto& child : *names) {
            std::string child_rel = rel.empty() ? child : rel + "/" + child;
            if (rel.empty() && !o_.reserved_top.empty() && child == o_.reserved_top) continue;
            if ((!o_.conflict_copies && is_conflict_copy(child)) || path_excluded(o_.excludes, child_rel)) continue;
            auto c = entry(dir.get(), child, child_rel);
            if (!c) return fail(c.error());
            if (*c) n.children.push_back(std::move(**c));
        }
        return std::optional<Node>(std::move(n));
    }

    // Once the whole walk is done: every file's link group, then the hashes,
    // children before their directories.
    void finish(Node& n, const std::string& rel) {
        if (n.ino != 0) {
            auto it = groups_.find({n.dev, n.ino});
            if (it != groups_.end() && it->second != rel) n.meta.link_group = it->second;
        }
        if (n.meta.type != 'd') {
            n.hash = hash128(encode(n.meta));
            return;
        }
        for (auto& c : n.children) finish(c, rel.empty() ? c.name : rel + "/" + c.name);
        n.hash = dir_hash(n);
    }

    static std::string dir_hash(const Node& n) {
        std::string all = encode(n.meta);
        for (auto& c : n.children) {
            put_str(all, c.name);
            all += c.hash;
        }
        return hash128(all);
    }

private:
    static std::string leaf(const std::string& rel) {
        auto slash = rel.rfind('/');
        return slash == std::string::npos ? rel : rel.substr(slash + 1);
    }

    static Node broken(const std::string& name, std::string why) {
        Node n;
        n.name = name;
        n.meta.type = '!';
        n.meta.target = std::move(why);
        n.hash = hash128(encode(n.meta));
        return n;
    }

    Result<std::vector<std::string>> list(int dirfd, const std::string& rel) {
        int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return fail(sys_error("open directory", rel, errno));
        DIR* d = ::fdopendir(fd);
        if (!d) {
            int err = errno;
            ::close(fd);
            return fail(sys_error("read directory", rel, err));
        }
        std::vector<std::string> names;
        errno = 0;
        while (auto* e = ::readdir(d)) {
            std::string_view nm(e->d_name);
            if (nm != "." && nm != "..") names.emplace_back(nm);
        }
        int err = errno;
        ::closedir(d);
        if (err != 0) return fail(sys_error("read directory", rel, err));
        std::sort(names.begin(), names.end());
        return names;
    }

    Result<std::string> content_hash(int pfd, const struct stat& st, const std::string& rel) {
        if (o_.cache) {
            if (auto h = o_.cache->find(st)) return *h;
        }
        int fd = ::open(fd_path(pfd).c_str(), O_RDONLY | O_NOATIME | O_CLOEXEC);
        if (fd < 0 && errno == EPERM) fd = ::open(fd_path(pfd).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return fail(sys_error("open to hash", rel, errno));
        UniqueFd file(fd);
        XXH3_state_t* state = XXH3_createState();
        if (!state) return fail(make_error("out of memory for a hash state"));
        XXH3_128bits_reset(state);
        buf_.resize(256u << 10);
        uint64_t off = 0;
        for (;;) {
            ssize_t n = ::pread(file.get(), buf_.data(), buf_.size(), static_cast<off_t>(off));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                int err = errno;
                XXH3_freeState(state);
                return fail(sys_error("read to hash", rel, err));
            }
            if (n == 0) break;
            XXH3_128bits_update(state, buf_.data(), static_cast<size_t>(n));
            off += static_cast<uint64_t>(n);
            pace(static_cast<uint64_t>(n));
        }
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_digest(state));
        XXH3_freeState(state);
        std::string h(reinterpret_cast<const char*>(c.digest), sizeof c.digest);
        if (stats_) stats_->bytes_hashed += off;
        // Bytes read that do not match the size it had: it changed under us.
        struct stat after{};
        if (o_.cache && off == static_cast<uint64_t>(st.st_size) && ::fstat(file.get(), &after) == 0 &&
            after.st_size == st.st_size && ns_of(after.st_mtim) == ns_of(st.st_mtim) && ns_of(after.st_ctim) == ns_of(st.st_ctim))
            o_.cache->put(st, h);
        return h;
    }

    // Sleeps as long as reading has got ahead of max_bytes_per_s.
    void pace(uint64_t n) {
        if (o_.max_bytes_per_s == 0) return;
        read_ += n;
        auto due = started_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                  std::chrono::duration<double>(static_cast<double>(read_) / static_cast<double>(o_.max_bytes_per_s)));
        auto now = std::chrono::steady_clock::now();
        if (due > now) std::this_thread::sleep_for(due - now);
    }

    const WalkOptions& o_;
    WalkStats* stats_;
    std::string buf_;
    std::map<std::pair<uint64_t, uint64_t>, std::string> groups_;  // (dev, ino) -> first path met
    std::chrono::steady_clock::time_point started_;
    uint64_t read_ = 0;
};

}  // namespace

std::string encode(const EntryMeta& m) {
    std::string out;
    out.push_back(m.type);
    put_u64(out, m.mode);
    put_u64(out, m.uid);
    put_u64(out, m.gid);
    put_u64(out, static_cast<uint64_t>(m.mtime_ns));
    put_u64(out, m.size);
    put_str(out, m.content);
    put_str(out, m.target);
    put_u64(out, m.nlink);
    put_u64(out, m.rdev);
    put_u64(out, m.xattrs.size());
    for (auto& [k, v] : m.xattrs) {
        put_str(out, k);
        put_str(out, v);
    }
    put_str(out, m.link_group);
    return out;
}

Result<EntryMeta> decode(std::string_view bytes) {
    if (bytes.empty()) return fail(make_error("empty entry manifest"));
    EntryMeta m;
    m.type = bytes[0];
    Cursor c{bytes.substr(1)};
    m.mode = static_cast<uint32_t>(c.u64());
    m.uid = static_cast<uint32_t>(c.u64());
    m.gid = static_cast<uint32_t>(c.u64());
    m.mtime_ns = static_cast<int64_t>(c.u64());
    m.size = c.u64();
    m.content = c.str();
    m.target = c.str();
    m.nlink = static_cast<uint32_t>(c.u64());
    m.rdev = c.u64();
    uint64_t n = c.u64();
    if (!c.ok || n > c.in.size() / 16) return fail(make_error("malformed entry manifest"));
    for (uint64_t i = 0; i < n && c.ok; ++i) {
        auto k = c.str();
        m.xattrs[k] = c.str();
    }
    m.link_group = c.str();
    if (!c.ok || !c.in.empty()) return fail(make_error("malformed entry manifest"));
    return m;
}

namespace {
std::string type_name(char t) {
    switch (t) {
        case 'd': return "directory";
        case 'f': return "regular file";
        case 'l': return "symlink";
        case 'p': return "FIFO";
        case 'c': return "character device";
        case 'b': return "block device";
        case 's': return "socket";
        case '!': return "unreadable entry";
    }
    return "entry of unknown type";
}

std::string time_text(int64_t ns) {
    std::time_t secs = static_cast<std::time_t>(ns / 1'000'000'000);
    struct tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return fmt::format("{}.{:09d}Z", buf, ns % 1'000'000'000);
}

std::string printable(std::string_view v) {
    bool text = std::all_of(v.begin(), v.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
    if (text && v.size() <= 64) return fmt::format("\"{}\"", v);
    if (v.size() <= 32) return "0x" + hex(v);
    return fmt::format("{} bytes", v.size());
}
}  // namespace

std::vector<std::string> describe_differences(const EntryMeta& s, const EntryMeta& r) {
    std::vector<std::string> out;
    if (s.type != r.type) {
        out.push_back(fmt::format("type: {} on the source, {} on the replica{}", type_name(s.type), type_name(r.type),
                                  r.type == '!' ? " (" + r.target + ")" : s.type == '!' ? " (" + s.target + ")" : ""));
        return out;
    }
    if (s.type == '!') {
        if (s.target != r.target) out.push_back(fmt::format("unreadable: {} / {}", s.target, r.target));
        return out;
    }
    if (s.mode != r.mode) out.push_back(fmt::format("mode: {:04o} on the source, {:04o} on the replica", s.mode, r.mode));
    if (s.uid != r.uid || s.gid != r.gid)
        out.push_back(fmt::format("owner: {}:{} on the source, {}:{} on the replica", s.uid, s.gid, r.uid, r.gid));
    if (s.size != r.size) out.push_back(fmt::format("size: {} on the source, {} on the replica", s.size, r.size));
    if (s.content != r.content)
        out.push_back(fmt::format("content: XXH3-128 {} on the source, {} on the replica", hex(s.content), hex(r.content)));
    if (s.target != r.target)
        out.push_back(fmt::format("symlink target: '{}' on the source, '{}' on the replica", s.target, r.target));
    if (s.rdev != r.rdev)
        out.push_back(fmt::format("device: {}:{} on the source, {}:{} on the replica", major(s.rdev), minor(s.rdev),
                                  major(r.rdev), minor(r.rdev)));
    if (s.nlink != r.nlink)
        out.push_back(fmt::format("hard links: {} on the source, {} on the replica", s.nlink, r.nlink));
    if (s.link_group != r.link_group) {
        auto group = [](const std::string& g) { return g.empty() ? std::string("none") : "'" + g + "'"; };
        out.push_back(fmt::format("hard-link group (its first name): {} on the source, {} on the replica", group(s.link_group),
                                  group(r.link_group)));
    }
    for (auto& [k, v] : s.xattrs) {
        auto it = r.xattrs.find(k);
        if (it == r.xattrs.end()) out.push_back(fmt::format("xattr {}: {} on the source, absent on the replica", k, printable(v)));
        else if (it->second != v)
            out.push_back(fmt::format("xattr {}: {} on the source, {} on the replica", k, printable(v), printable(it->second)));
    }
    for (auto& [k, v] : r.xattrs)
        if (!s.xattrs.count(k)) out.push_back(fmt::format("xattr {}: absent on the source, {} on the replica", k, printable(v)));
    if (s.mtime_ns != r.mtime_ns)
        out.push_back(fmt::format("mtime: {} on the source, {} on the replica", time_text(s.mtime_ns), time_text(r.mtime_ns)));
    return out;
}

// ---- the cache -------------------------------------------------------------

HashCache::HashCache(std::string file) : file_(std::move(file)) {
    if (file_.empty()) return;
    std::ifstream in(file_, std::ios::binary);
    if (!in) return;
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    constexpr size_t kRow = 5 * 8 + 16;
    if (data.size() % kRow != 0) return;
    for (size_t off = 0; off < data.size(); off += kRow) {
        Cursor c{std::string_view(data).substr(off, kRow)};
        Key k{c.u64(), c.u64(), c.u64(), static_cast<int64_t>(c.u64()), static_cast<int64_t>(c.u64())};
        loaded_[k] = std::string(c.in.substr(0, 16));
    }
}

HashCache::Key HashCache::key_of(const struct stat& st) {
    return Key{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size),
               ns_of(st.st_mtim), ns_of(st.st_ctim)};
}

std::optional<std::string> HashCache::find(const struct stat& st) const {
    auto k = key_of(st);
    std::lock_guard lock(mu_);
    auto it = loaded_.find(k);
    if (it == loaded_.end()) return std::nullopt;
    used_[k] = it->second;
    return it->second;
}

void HashCache::put(const struct stat& st, const std::string& hash) {
    std::lock_guard lock(mu_);
    used_[key_of(st)] = hash;
}

Status HashCache::save(bool prune) {
    if (file_.empty()) return {};
    std::string data;
    {
        std::lock_guard lock(mu_);
        if (!prune) used_.insert(loaded_.begin(), loaded_.end());
        for (auto& [k, h] : used_) {
            put_u64(data, k.dev);
            put_u64(data, k.ino);
            put_u64(data, k.size);
            put_u64(data, static_cast<uint64_t>(k.mtime));
            put_u64(data, static_cast<uint64_t>(k.ctime));
            data += h;
        }
        loaded_ = std::move(used_);
        used_.clear();
    }
    // No fsync, on purpose: losing this file in a crash is harmless. What a
    // crash can leave is the previous file (its entries are still right: a
    // key holds the ctime, which every change of content moves, so an entry
    // only ever matches the state it was hashed in), or an empty, short or
    // zero-filled one (not a whole number of rows: ignored when loaded;
    // zeroed rows name inode 0, which no file has). Either way the cost is
    // reading files again, never a wrong hash.
    std::string tmp = file_ + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return fail(sys_error("create", tmp, errno));
    UniqueFd f(fd);
    for (size_t off = 0; off < data.size();) {
        ssize_t n = ::write(f.get(), data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(sys_error("write", tmp, errno));
        off += static_cast<size_t>(n);
    }
    if (::rename(tmp.c_str(), file_.c_str()) != 0) return fail(sys_error("rename into place", file_, errno));
    return {};
}

// ---- walking ---------------------------------------------------------------

Result<std::optional<Node>> hash_path(int root_fd, const std::string& rel, const WalkOptions& options, WalkStats* stats) {
    auto parent = open_parent(root_fd, rel);
    if (!parent) {
        int err = parent.error().sys_errno;
        if (err == ENOENT || err == ENOTDIR) return std::optional<Node>{};
        return fail(parent.error());
    }
    Walker w(options, stats);
    auto node = w.entry(parent->dir.get(), parent->name, rel);
    if (node && *node) w.finish(**node, rel);
    return node;
}

bool path_excluded(const std::vector<std::string>& globs, const std::string& rel) {
    if (rel.empty() || globs.empty()) return false;
    auto slash = rel.rfind('/');
    std::string base = slash == std::string::npos ? rel : rel.substr(slash + 1);
    for (auto& glob : globs) {
        if (::fnmatch(glob.c_str(), rel.c_str(), 0) == 0 || ::fnmatch(glob.c_str(), base.c_str(), 0) == 0) return true;
        for (auto s = rel.find('/'); s != std::string::npos; s = rel.find('/', s + 1))
            if (::fnmatch(glob.c_str(), rel.substr(0, s).c_str(), 0) == 0) return true;
    }
    return false;
}

bool is_conflict_copy(std::string_view name) {
    // NAME.conflict-HOST-YYYYMMDDTHHMMSSZ, perhaps with -N after it.
    auto at = name.rfind(".conflict-");
    if (at == std::string_view::npos) return false;
    auto rest = name.substr(at + 10);
    auto dash = rest.rfind('-');
    while (dash != std::string_view::npos) {
        auto stamp = rest.substr(dash + 1);
        if (stamp.size() == 16 && stamp[8] == 'T' && stamp[15] == 'Z' &&
            std::all_of(stamp.begin(), stamp.begin() + 8, ::isdigit) && std::all_of(stamp.begin() + 9, stamp.begin() + 15, ::isdigit))
            return true;
        if (!std::all_of(stamp.begin(), stamp.end(), ::isdigit) || stamp.empty()) return false;
        rest = rest.substr(0, dash);  // a -N suffix
        dash = rest.rfind('-');
    }
    return false;
}

bool walk_order_less(const std::string& a, const std::string& b) {
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        size_t ai = a.find('/', i), bj = b.find('/', j);
        auto ca = std::string_view(a).substr(i, ai == std::string::npos ? std::string::npos : ai - i);
        auto cb = std::string_view(b).substr(j, bj == std::string::npos ? std::string::npos : bj - j);
        if (ca != cb) return ca < cb;
        if (ai == std::string::npos || bj == std::string::npos) return ai == std::string::npos && bj != std::string::npos;
        i = ai + 1;
        j = bj + 1;
    }
    return a.size() - i < b.size() - j;
}

const Node* find_node(const Node& root, const std::string& root_rel, const std::string& rel) {
    if (rel == root_rel) return &root;
    std::string_view rest(rel);
    if (!root_rel.empty()) {
        if (!rest.starts_with(root_rel) || rest.size() <= root_rel.size() || rest[root_rel.size()] != '/') return nullptr;
        rest.remove_prefix(root_rel.size() + 1);
    }
    const Node* n = &root;
    while (!rest.empty()) {
        auto slash = rest.find('/');
        auto name = rest.substr(0, slash);
        auto it = std::lower_bound(n->children.begin(), n->children.end(), name,
                                   [](const Node& c, std::string_view nm) { return c.name < nm; });
        if (it == n->children.end() || it->name != name) return nullptr;
        n = &*it;
        rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    }
    return n;
}

}  // namespace iz::replicator::tree
