// What the benchmarks that run the daemons share: the ext4 images they
// mount for each side, and the end of a run's log for the message a failed
// run dies with.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/error.hpp"
#include "support/scratch_fs.hpp"

namespace iz::bench {

// Makes and mounts a fresh ext4 image of `mib` MiB for `name` of benchmark
// `bench`, kept in `images` (unmounted when dropped, the last first); its
// mount point. Inode tables are initialised now: ext4's lazy init would
// otherwise write in the background while workloads are timed.
inline Result<std::filesystem::path> mount_ext4_image(std::vector<std::unique_ptr<test::ScratchFs>>& images,
                                                      uint64_t mib, const std::string& bench, const std::string& name,
                                                      std::vector<std::string> mkfs_options = {}) {
    mkfs_options.insert(mkfs_options.end(), {"-E", "lazy_itable_init=0,lazy_journal_init=0"});
    auto made = test::ScratchFs::make(test::FsType::ext4, mib, bench + "-" + name, mkfs_options);
    if (!made)
        return fail(make_error(fmt::format("could not make and mount the ext4 image for {}: {}", name, made.error().message)));
    images.push_back(std::move(*made));
    return images.back()->mount_point();
}

// The last `max` bytes of the log at `path`.
inline std::string log_tail(const std::filesystem::path& path, size_t max = 3000) {
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    return text.size() > max ? text.substr(text.size() - max) : text;
}

}  // namespace iz::bench
