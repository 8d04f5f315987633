#include "unit_tree.hpp"

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace iz::test {

namespace fs = std::filesystem;

TempDir::TempDir(const std::string& tag) {
    std::string pattern = (fs::temp_directory_path() / fmt::format("iz-{}-XXXXXX", tag)).string();
    if (!::mkdtemp(pattern.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path_ = pattern;
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);  // never follows symlinks
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error(fmt::format("cannot read '{}'", p.string()));
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const fs::path& p, const std::string& content, unsigned mode) {
    {
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        if (!out) throw std::runtime_error(fmt::format("cannot write '{}'", p.string()));
        out << content;
    }
    fs::permissions(p, static_cast<fs::perms>(mode));
}

int64_t mtime_ns(const fs::path& p) {
    struct stat st{};
    if (::lstat(p.c_str(), &st) != 0) return -1;
    return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

std::string xattr(const fs::path& p, const std::string& name) {
    char buf[65536];
    ssize_t n = ::lgetxattr(p.c_str(), name.c_str(), buf, sizeof buf);
    return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

namespace {

std::string user_xattrs(const fs::path& p) {
    char names[65536];
    ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
    if (n <= 0) return {};
    std::map<std::string, std::string> found;
    for (ssize_t off = 0; off < n;) {
        std::string name(names + off);
        off += static_cast<ssize_t>(name.size()) + 1;
        // user.* and POSIX ACLs: what a source's owner sets (security.*
        // labels follow each host's policy; XFS's trusted.SGI_ACL_* are
        // its private copy of the ACLs).
        if (name.starts_with("user.") || name.starts_with("system.posix_acl_")) found[name] = xattr(p, name);
    }
    std::string out;
    for (auto& [k, v] : found) out += fmt::format(" {}={:?}", k, v);
    return out;
}

std::string describe(const fs::path& p, const std::string& rel) {
    struct stat st{};
    if (::lstat(p.c_str(), &st) != 0) return fmt::format("{} <gone>", rel);
    char type = S_ISDIR(st.st_mode) ? 'd' : S_ISREG(st.st_mode) ? 'f' : S_ISLNK(st.st_mode) ? 'l' : S_ISFIFO(st.st_mode) ? 'p' : '?';
    int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    std::string line = fmt::format("{} {} mode={:04o} uid={} gid={} mtime={} nlink={}", rel, type, st.st_mode & 07777,
                                   st.st_uid, st.st_gid, mtime, st.st_nlink);
    if (S_ISREG(st.st_mode)) {
        std::string data = read_file(p);
        line += fmt::format(" size={} xxh={:016x}", data.size(), XXH3_64bits(data.data(), data.size()));
    } else if (S_ISLNK(st.st_mode)) {
        line += fmt::format(" -> {}", fs::read_symlink(p).string());
    }
    return line + user_xattrs(p);
}

}  // namespace

std::string manifest(const fs::path& root, const std::string& skip_top) {
    std::vector<std::string> lines{describe(root, ".")};
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
        auto rel = it->path().lexically_relative(root);
        if (!skip_top.empty() && *rel.begin() == skip_top) {
            if (it->is_directory() && !it->is_symlink()) it.disable_recursion_pending();
            continue;
        }
        lines.push_back(describe(it->path(), rel.string()));
    }
    std::sort(lines.begin(), lines.end());
    std::string out;
    for (auto& l : lines) out += l + "\n";
    return out;
}

std::string listing(const fs::path& root) {
    std::vector<std::string> names;
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it)
        names.push_back(it->path().lexically_relative(root).string());
    std::sort(names.begin(), names.end());
    std::string out;
    for (auto& n : names) out += n + "\n";
    return out;
}

}  // namespace iz::test
