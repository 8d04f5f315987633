#pragma once
// A fresh filesystem for one test: an image file in /dev/shm, formatted,
// loop-mounted on a private directory. The destructor unmounts it, detaches
// the loop device and deletes image and directory, whatever the test did.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace iz::test {

enum class FsType { ext4, xfs, tmpfs };

std::string fs_name(FsType type);

class ScratchFs {
public:
    // `tag` goes into the image and mount names, to tell leftovers apart.
    // XFS needs at least 300 MiB; the image is sparse, so size costs little.
    // `mkfs_options` go to mkfs before the image (e.g. the benchmarks' eager
    // ext4 inode tables, so that no lazy init writes while they time).
    static Result<std::unique_ptr<ScratchFs>> make(FsType type, uint64_t size_mib = 320,
                                                   const std::string& tag = "test",
                                                   const std::vector<std::string>& mkfs_options = {});
    ~ScratchFs();
    ScratchFs(const ScratchFs&) = delete;
    ScratchFs& operator=(const ScratchFs&) = delete;

    const std::filesystem::path& mount_point() const { return mount_point_; }
    dev_t dev() const { return dev_; }
    FsType type() const { return type_; }

private:
    ScratchFs() = default;
    FsType type_ = FsType::ext4;
    std::filesystem::path image_;
    std::filesystem::path mount_point_;
    dev_t dev_ = 0;
    bool mounted_ = false;
};

}  // namespace iz::test
