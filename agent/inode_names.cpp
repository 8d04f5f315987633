#include "agent/inode_names.hpp"

namespace iz::agent {

std::optional<std::string> InodeNames::find(const Tree& tree, uint64_t ino, const std::string& path,
                                            const std::function<bool(const Entry&)>& accept) {
    auto fits = [&](const std::string& other, const Entry& e) {
        return e.ino == ino && other != path && e.is_reg() && accept(e);
    };
    if (auto hint = names_.find(ino); hint != names_.end()) {
        auto it = tree.find(hint->second);
        if (it != tree.end() && fits(it->first, it->second)) return it->first;
    }
    // The remembered name is gone, renamed or another file's: walk once,
    // and remember every regular file's first name for the next lookups.
    ++walks_;
    names_.clear();
    std::optional<std::string> found;
    for (auto& [other, e] : tree) {
        if (e.is_reg() && e.ino != 0) names_.try_emplace(e.ino, other);
        if (!found && fits(other, e)) found = other;
    }
    return found;
}

}  // namespace iz::agent
