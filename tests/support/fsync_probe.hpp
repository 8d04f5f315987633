#pragma once
// Records every fsync that write_file_durably and fsync_dir make (through
// their seam), as the inode and type of the descriptor synced, so a test
// can say which file and which directory reached the disk. Optionally
// fails the fsyncs of one kind, as a disk error would.
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <vector>

#include "common/durable_file.hpp"

namespace iz::test {

struct FsyncSeen {
    ino_t ino = 0;
    bool dir = false;
};

class FsyncProbe {
public:
    enum class Fail { none, files, dirs };

    explicit FsyncProbe(Fail fail = Fail::none) {
        seen().clear();
        failing() = fail;
        previous_ = durable_seam::set_fsync(&record);
    }
    ~FsyncProbe() { durable_seam::set_fsync(previous_); }
    FsyncProbe(const FsyncProbe&) = delete;
    FsyncProbe& operator=(const FsyncProbe&) = delete;

    const std::vector<FsyncSeen>& synced() const { return seen(); }

    // The position in synced() of the fsync of `path` (by its inode now),
    // or -1.
    static int index_of(const std::filesystem::path& path) {
        struct stat st{};
        if (::stat(path.c_str(), &st) != 0) return -1;
        for (size_t i = 0; i < seen().size(); ++i)
            if (seen()[i].ino == st.st_ino && seen()[i].dir == S_ISDIR(st.st_mode)) return static_cast<int>(i);
        return -1;
    }

private:
    static std::vector<FsyncSeen>& seen() {
        static std::vector<FsyncSeen> v;
        return v;
    }
    static Fail& failing() {
        static Fail f = Fail::none;
        return f;
    }
    static int record(int fd) {
        struct stat st{};
        if (::fstat(fd, &st) != 0) return -1;
        bool dir = S_ISDIR(st.st_mode);
        seen().push_back({st.st_ino, dir});
        if ((failing() == Fail::files && !dir) || (failing() == Fail::dirs && dir)) {
            errno = EIO;
            return -1;
        }
        return ::fsync(fd);
    }

    durable_seam::FsyncFn previous_ = nullptr;
};

}  // namespace iz::test
