#include "support/scratch_fs.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdlib>
#include <system_error>

#include "support/process.hpp"

namespace iz::test {

std::string fs_name(FsType type) {
    switch (type) {
        case FsType::ext4: return "ext4";
        case FsType::xfs: return "xfs";
        case FsType::tmpfs: return "tmpfs";
    }
    return "unknown";
}

Result<std::unique_ptr<ScratchFs>> ScratchFs::make(FsType type, uint64_t size_mib, const std::string& tag,
                                                   const std::vector<std::string>& mkfs_options) {
    std::unique_ptr<ScratchFs> fs(new ScratchFs());
    fs->type_ = type;
    static int counter = 0;
    std::string name = fmt::format("iz-{}-{}-{}-{}", tag, fs_name(type), getpid(), counter++);
    fs->mount_point_ = std::filesystem::temp_directory_path() / name;
    std::error_code ec;
    std::filesystem::create_directories(fs->mount_point_, ec);
    if (ec) return fail(make_error(fmt::format("mkdir '{}': {}", fs->mount_point_.string(), ec.message())));

    if (type == FsType::tmpfs) {
        std::string opts = fmt::format("size={}m", size_mib);
        if (::mount("tmpfs", fs->mount_point_.c_str(), "tmpfs", 0, opts.c_str()) != 0)
            return fail(sys_error("mount tmpfs on", fs->mount_point_.string(), errno));
    } else {
        fs->image_ = std::filesystem::path("/dev/shm") / (name + ".img");
        int fd = ::open(fs->image_.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
        if (fd < 0) return fail(sys_error("create image", fs->image_.string(), errno));
        int rc = ::ftruncate(fd, static_cast<off_t>(size_mib) << 20);
        int err = errno;
        ::close(fd);
        if (rc != 0) return fail(sys_error("size image", fs->image_.string(), err));
        std::vector<std::string> mkfs = type == FsType::ext4
                                            ? std::vector<std::string>{"mkfs.ext4", "-q", "-F", fs->image_.string()}
                                            : std::vector<std::string>{"mkfs.xfs", "-q", "-f", fs->image_.string()};
        mkfs.insert(mkfs.end() - 1, mkfs_options.begin(), mkfs_options.end());
        auto made = run_process(mkfs);
        if (made.exit_code != 0)
            return fail(make_error(fmt::format("{} '{}' failed: {}", mkfs[0], fs->image_.string(), made.err)));
        auto mounted = run_process({"mount", "-o", "loop", fs->image_.string(), fs->mount_point_.string()});
        if (mounted.exit_code != 0)
            return fail(make_error(fmt::format("mount -o loop '{}' failed: {}", fs->image_.string(), mounted.err)));
    }
    fs->mounted_ = true;
    struct stat st{};
    if (::stat(fs->mount_point_.c_str(), &st) != 0)
        return fail(sys_error("stat", fs->mount_point_.string(), errno));
    fs->dev_ = st.st_dev;
    return fs;
}

ScratchFs::~ScratchFs() {
    if (mounted_) {
        // A lazy unmount still frees the loop device once the last user
        // (a killed daemon's open fd) is gone; autoclear detaches it.
        if (::umount2(mount_point_.c_str(), 0) != 0) ::umount2(mount_point_.c_str(), MNT_DETACH);
    }
    std::error_code ec;
    if (!mount_point_.empty()) std::filesystem::remove(mount_point_, ec);
    if (!image_.empty()) std::filesystem::remove(image_, ec);
}

}  // namespace iz::test
