// Removing a non-empty directory entry by entry, only when a check accepts
// everything in it: how the applier takes away a directory it must remove
// that holds its own work (apply_conflict.cpp, apply_namespace.cpp).
#pragma once

#include <sys/stat.h>

#include <functional>
#include <string>

namespace iz::replicator {

// May the entry `name` in `dirfd` (at `path`, `st` from lstat) go? Asked of
// directories too, before what is in them.
using MayRemove =
    std::function<bool(int dirfd, const std::string& name, const std::string& path, const struct stat& st)>;

// Removes the directory `name` in `dirfd` (at `path`) with everything
// beneath it when `may_remove` accepts every entry beneath it (64 levels at
// most). All of it is looked at before anything is removed; the removal
// pass asks again and stops at the first entry no longer accepted. False
// when the directory stays.
bool remove_tree_if(int dirfd, const std::string& name, const std::string& path, const MayRemove& may_remove);

}  // namespace iz::replicator
