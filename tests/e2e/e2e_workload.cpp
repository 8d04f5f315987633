#include "e2e_workload.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>

#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/posix_acl.hpp"

namespace fs = std::filesystem;

namespace iz::test::e2e {

namespace {

void check(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(fmt::format("{}: {}", what, std::strerror(errno)));
}

std::string random_bytes(std::mt19937& rng, size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
}

void put(const fs::path& p, const std::string& data, int flags = O_WRONLY | O_CREAT | O_TRUNC) {
    int fd = ::open(p.c_str(), flags | O_CLOEXEC, 0644);
    check(fd >= 0, "open " + p.string());
    check(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()), "write " + p.string());
    ::close(fd);
}

void pwrite_at(const fs::path& p, const std::string& data, off_t off) {
    int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
    check(fd >= 0, "open " + p.string());
    check(::pwrite(fd, data.data(), data.size(), off) == static_cast<ssize_t>(data.size()), "pwrite " + p.string());
    ::close(fd);
}

void set_mtime(const fs::path& p, int64_t sec, long nsec) {
    timespec ts[2] = {{sec, nsec}, {sec, nsec}};
    check(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0, "utimensat " + p.string());
}

}  // namespace

void every_operation(const fs::path& dir) {
    std::mt19937 rng(7);
    fs::create_directories(dir / "docs/old");
    put(dir / "docs/readme.txt", "hello, replica\n");
    put(dir / "docs/old/notes", random_bytes(rng, 10000));
    put(dir / "big.bin", random_bytes(rng, 3 << 20));
    pwrite_at(dir / "big.bin", random_bytes(rng, 4096), 1 << 20);
    pwrite_at(dir / "big.bin", random_bytes(rng, 100), (3 << 20) + 5000);  // grows with a hole
    put(dir / "shrink", random_bytes(rng, 50000));
    check(::truncate((dir / "shrink").c_str(), 1234) == 0, "truncate");
    put(dir / "grow", "abc");
    check(::truncate((dir / "grow").c_str(), 1 << 16) == 0, "truncate");
    put(dir / "docs/readme.txt", "appended\n", O_WRONLY | O_APPEND);
    check(::symlink("docs/readme.txt", (dir / "link-to-readme").c_str()) == 0, "symlink");
    check(::symlink("/nonexistent/outside", (dir / "dangling").c_str()) == 0, "symlink");
    check(::link((dir / "docs/old/notes").c_str(), (dir / "notes-hard").c_str()) == 0, "link");
    put(dir / "gone", "temporary");
    check(::unlink((dir / "gone").c_str()) == 0, "unlink");
    fs::create_directories(dir / "empty/inner");
    check(::rmdir((dir / "empty/inner").c_str()) == 0, "rmdir");
    put(dir / "a.txt", "a");
    check(::rename((dir / "a.txt").c_str(), (dir / "b.txt").c_str()) == 0, "rename");
    check(::rename((dir / "b.txt").c_str(), (dir / "docs/b.txt").c_str()) == 0, "rename across");
    put(dir / "victim", "will be replaced");
    put(dir / "winner", "replaces the victim");
    check(::rename((dir / "winner").c_str(), (dir / "victim").c_str()) == 0, "rename over");
    check(::rename((dir / "docs").c_str(), (dir / "documents").c_str()) == 0, "rename dir");
    put(dir / "documents/old/after-move", "written under the new name");
    check(::chmod((dir / "documents/readme.txt").c_str(), 0600) == 0, "chmod");
    check(::chmod((dir / "documents/old").c_str(), 0750) == 0, "chmod dir");
    check(::chown((dir / "notes-hard").c_str(), 1234, 5678) == 0, "chown");
    check(::lchown((dir / "dangling").c_str(), 42, 43) == 0, "lchown");
    check(::setxattr((dir / "grow").c_str(), "user.colour", "blue", 4, 0) == 0, "setxattr");
    check(::setxattr((dir / "grow").c_str(), "user.shape", "round", 5, 0) == 0, "setxattr");
    check(::removexattr((dir / "grow").c_str(), "user.shape") == 0, "removexattr");
    check(::setxattr((dir / "documents").c_str(), "user.dir", "yes", 3, 0) == 0, "setxattr dir");
    check(::mkfifo((dir / "fifo").c_str(), 0640) == 0, "mkfifo");
    // Entries made under a default ACL get ACLs of their own from the kernel.
    auto acl = acl_granting_user(4242);
    fs::create_directories(dir / "shared");
    check(::setxattr((dir / "shared").c_str(), "system.posix_acl_default", acl.data(), acl.size(), 0) == 0,
          "set a default ACL");
    put(dir / "shared/inherits", "an ACL of its own");
    fs::create_directories(dir / "shared/sub");
    set_mtime(dir / "documents/old/notes", 1'000'000'000, 123456789);
    set_mtime(dir / "link-to-readme", 1'100'000'000, 5);
    set_mtime(dir / "empty", 1'200'000'000, 0);
}

void bulk_files(const fs::path& dir, int files, size_t size, uint32_t seed) {
    std::mt19937 rng(seed);
    fs::create_directories(dir / "bulk");
    for (int i = 0; i < files; ++i) put(dir / "bulk" / fmt::format("f{:05}", i), random_bytes(rng, size));
}

void random_operations(const fs::path& dir, uint32_t seed, int count, std::string* log) {
    std::mt19937 rng(seed);
    // Regular files and symlinks apart: content and mode changes go to
    // regular files only (chmod would follow a link, maybe to nowhere).
    std::vector<fs::path> files, links, dirs{dir};
    auto pick = [&](auto& v) -> fs::path& { return v[rng() % v.size()]; };
    auto fresh = [&](const std::string& prefix) {
        static int n = 0;
        // A quarter of new names start with the name of a directory beside
        // them and a byte below '/' ("d5.3", "d5-4"): such names sort between
        // "d5" and "d5/..." and so sit inside the key range of that
        // directory's subtree in any path-ordered map.
        if (dirs.size() > 1 && rng() % 4 == 0) {
            const auto& d = dirs[1 + rng() % (dirs.size() - 1)];
            static constexpr const char* joints[] = {".", "-", " ", "+"};
            return d.parent_path() / fmt::format("{}{}{}{}", d.filename().string(), joints[rng() % 4], prefix, n++);
        }
        return pick(dirs) / fmt::format("{}{}", prefix, n++);
    };
    auto drop = [](auto& v, const fs::path& p) { std::erase(v, p); };
    auto note = [&](const char* what, const fs::path& a, const fs::path& b = {}) {
        if (!log) return;
        auto rel = [&](const fs::path& p) { return p.empty() ? std::string() : p.lexically_relative(dir).string(); };
        *log += fmt::format("{} {} {}\n", what, rel(a), rel(b));
    };
    for (int i = 0; i < count; ++i) {
        unsigned op = rng() % 100;
        if (files.empty() || op < 20) {  // create with content
            auto p = fresh("f");
            put(p, random_bytes(rng, rng() % 3 == 0 ? rng() % 200000 : rng() % 2000));
            files.push_back(p);
            note("create", p);
        } else if (op < 30) {  // append
            auto& p = pick(files);
            put(p, random_bytes(rng, rng() % 5000), O_WRONLY | O_APPEND);
            note("append", p);
        } else if (op < 40) {  // overwrite in place
            auto& p = pick(files);
            auto size = fs::file_size(p);
            pwrite_at(p, random_bytes(rng, 1 + rng() % 3000), static_cast<off_t>(size ? rng() % size : 0));
            note("pwrite", p);
        } else if (op < 45) {  // truncate
            auto& p = pick(files);
            check(::truncate(p.c_str(), static_cast<off_t>(rng() % 4000)) == 0, "truncate " + p.string());
            note("truncate", p);
        } else if (op < 52 && dirs.size() < 200) {  // mkdir
            auto p = fresh("d");
            check(::mkdir(p.c_str(), 0755) == 0, "mkdir " + p.string());
            note("mkdir", p);
            dirs.push_back(p);
        } else if (op < 62) {  // rename a file or link, maybe across directories, maybe over another file
            bool link = !links.empty() && rng() % 5 == 0;
            auto from = link ? pick(links) : pick(files);
            auto to = rng() % 4 == 0 ? pick(files) : fresh("r");
            if (from == to) continue;
            check(::rename(from.c_str(), to.c_str()) == 0, "rename " + from.string());
            note("rename", from, to);
            drop(files, from);
            drop(links, from);
            drop(files, to);
            (link ? links : files).push_back(to);
        } else if (op < 66 && dirs.size() > 1) {  // rename a directory (not into itself)
            auto from = dirs[1 + rng() % (dirs.size() - 1)];
            auto to = fresh("m");
            auto parent = to.parent_path().string();
            if (parent == from.string() || parent.starts_with(from.string() + "/")) continue;
            check(::rename(from.c_str(), to.c_str()) == 0, "rename dir " + from.string());
            note("rename-dir", from, to);
            auto repath = [&](fs::path& p) {
                auto s = p.string();
                if (s == from.string() || s.starts_with(from.string() + "/"))
                    p = to.string() + s.substr(from.string().size());
            };
            for (auto& p : files) repath(p);
            for (auto& p : links) repath(p);
            for (auto& p : dirs) repath(p);
        } else if (op < 76) {  // unlink
            bool link = !links.empty() && rng() % 5 == 0;
            auto p = link ? pick(links) : pick(files);
            check(::unlink(p.c_str()) == 0, "unlink " + p.string());
            note("unlink", p);
            drop(link ? links : files, p);
        } else if (op < 82) {  // chmod
            auto& p = pick(files);
            check(::chmod(p.c_str(), 0600 | (rng() % 0200)) == 0, "chmod");
            note("chmod", p);
        } else if (op < 86) {  // utimes
            timespec ts[2] = {{static_cast<time_t>(1'500'000'000 + rng() % 100'000'000), 0},
                              {static_cast<time_t>(1'500'000'000 + rng() % 100'000'000), static_cast<long>(rng() % 1'000'000'000)}};
            auto& p = pick(files);
            check(::utimensat(AT_FDCWD, p.c_str(), ts, 0) == 0, "utimensat");
            note("utimes", p);
        } else if (op < 90) {  // symlink
            auto p = fresh("s");
            check(::symlink(pick(files).filename().c_str(), p.c_str()) == 0, "symlink");
            note("symlink", p);
            links.push_back(p);
        } else if (op < 94) {  // hard link
            auto from = pick(files);
            auto p = fresh("h");
            check(::link(from.c_str(), p.c_str()) == 0, "link");
            note("link", from, p);
            files.push_back(p);
        } else if (op < 97) {  // xattr
            auto& p = pick(files);
            auto v = fmt::format("v{}", rng() % 1000);
            check(::setxattr(p.c_str(), "user.tag", v.data(), v.size(), 0) == 0, "setxattr");
            note("setxattr", p);
        } else if (dirs.size() > 1) {  // rmdir of an empty directory
            auto p = dirs[1 + rng() % (dirs.size() - 1)];
            if (!fs::is_empty(p)) continue;
            check(::rmdir(p.c_str()) == 0, "rmdir");
            note("rmdir", p);
            drop(dirs, p);
        }
    }
}

void changes_to_existing(const fs::path& dir, uint32_t seed, int count, std::string* log) {
    std::mt19937 rng(seed);
    std::vector<fs::path> files, dirs, links;
    auto walk = [&] {
        files.clear();
        links.clear();
        dirs = {dir};
        for (auto& e : fs::recursive_directory_iterator(dir)) {
            if (e.is_symlink()) links.push_back(e.path());
            else if (e.is_directory()) dirs.push_back(e.path());
            else if (e.is_regular_file()) files.push_back(e.path());
        }
    };
    auto pick = [&](auto& v) -> fs::path { return v[rng() % v.size()]; };
    int n = 0;
    auto fresh = [&](const char* prefix) { return pick(dirs) / fmt::format("{}{}-{}", prefix, seed % 1000, n++); };
    auto inside = [](const fs::path& p, const fs::path& d) {
        auto s = p.string(), ds = d.string();
        return s == ds || s.starts_with(ds + "/");
    };
    auto note = [&](const char* what, const fs::path& a, const fs::path& b = {}) {
        if (!log) return;
        auto rel = [&](const fs::path& p) { return p.empty() ? std::string() : p.lexically_relative(dir).string(); };
        *log += fmt::format("{} {} {}\n", what, rel(a), rel(b));
    };
    for (int i = 0; i < count; ++i) {
        walk();
        unsigned op = rng() % 100;
        if (op < 15 && !files.empty()) {  // a file into another directory, maybe over another file
            auto from = pick(files);
            auto to = rng() % 4 == 0 ? pick(files) : fresh("mv");
            if (from == to) continue;
            check(::rename(from.c_str(), to.c_str()) == 0, "rename " + from.string());
            note("rename", from, to);
        } else if (op < 27 && dirs.size() > 2) {  // a directory into another, or two swapped
            auto a = dirs[1 + rng() % (dirs.size() - 1)];
            auto b = dirs[1 + rng() % (dirs.size() - 1)];
            if (rng() % 4 == 0 && !inside(a, b) && !inside(b, a)) {
                auto aside = dir / fmt::format("swap{}-{}", seed % 1000, n++);
                check(::rename(a.c_str(), aside.c_str()) == 0, "rename " + a.string());
                check(::rename(b.c_str(), a.c_str()) == 0, "rename " + b.string());
                check(::rename(aside.c_str(), b.c_str()) == 0, "rename " + aside.string());
                note("swap-dirs", a, b);
                continue;
            }
            auto to = inside(b, a) ? fresh("md") : b / fmt::format("md{}-{}", seed % 1000, n++);
            if (inside(to.parent_path(), a)) continue;
            check(::rename(a.c_str(), to.c_str()) == 0, "rename dir " + a.string());
            note("rename-dir", a, to);
        } else if (op < 30 && dirs.size() > 2) {  // a whole tree removed
            auto d = dirs[1 + rng() % (dirs.size() - 1)];
            fs::remove_all(d);
            note("rm-rf", d);
        } else if (op < 40 && !files.empty()) {
            auto p = pick(rng() % 5 == 0 && !links.empty() ? links : files);
            check(::unlink(p.c_str()) == 0, "unlink " + p.string());
            note("unlink", p);
        } else if (op < 48) {
            bool dir_too = rng() % 3 == 0 || files.empty();
            auto p = dir_too ? pick(dirs) : pick(files);
            check(::chmod(p.c_str(), (dir_too ? 0700 : 0600) | (rng() % 0100)) == 0, "chmod " + p.string());
            note("chmod", p);
        } else if (op < 56) {
            auto& v = rng() % 3 == 0 ? dirs : (!links.empty() && rng() % 3 == 0) ? links : files;
            if (v.empty()) continue;
            auto p = pick(v);
            check(::lchown(p.c_str(), 1000 + rng() % 5, 2000 + rng() % 5) == 0, "lchown " + p.string());
            note("chown", p);
        } else if (op < 64) {
            auto p = rng() % 4 == 0 || files.empty() ? pick(dirs) : pick(files);
            if (rng() % 3 == 0) {
                if (::removexattr(p.c_str(), "user.tag") != 0) check(errno == ENODATA, "removexattr " + p.string());
                note("removexattr", p);
            } else {
                auto v = fmt::format("w{}", rng() % 1000);
                check(::setxattr(p.c_str(), "user.tag", v.data(), v.size(), 0) == 0, "setxattr " + p.string());
                note("setxattr", p);
            }
        } else if (op < 72 && !files.empty()) {
            auto from = pick(files);
            auto to = fresh("hl");
            check(::link(from.c_str(), to.c_str()) == 0, "link " + from.string());
            note("link", from, to);
        } else if (op < 80) {
            auto p = fresh("nf");
            put(p, random_bytes(rng, rng() % 20000));
            note("create", p);
        } else if (op < 85) {
            auto p = fresh("nd");
            check(::mkdir(p.c_str(), 0755) == 0, "mkdir " + p.string());
            note("mkdir", p);
        } else if (op < 95 && !files.empty()) {
            auto p = pick(files);
            auto size = fs::file_size(p);
            pwrite_at(p, random_bytes(rng, 1 + rng() % 3000), static_cast<off_t>(size ? rng() % size : 0));
            note("pwrite", p);
        } else if (!files.empty()) {
            auto p = pick(files);
            check(::truncate(p.c_str(), static_cast<off_t>(rng() % 4000)) == 0, "truncate " + p.string());
            note("truncate", p);
        }
    }
}

}  // namespace iz::test::e2e
