#pragma once
// Subtrees of an ordered map keyed by relative paths ("a/b/c"; "" is the
// root). Keys sort bytewise, so what lies beneath "a" does not follow "a"
// directly: "a-b" and "a.txt" sort between "a" and "a/x" ('-' and '.' come
// before '/'). A loop from lower_bound("a") that stops at the first key not
// beneath "a" misses the subtree whenever such a sibling exists.
#include <string>
#include <string_view>
#include <utility>

namespace iz {

// Both tests compare whole components: "ab" is not beneath "a". Paths are
// relative and normal (no leading, trailing or doubled '/', no "." or
// ".."): the agent builds them by joining names, and the server refuses any
// other. A trailing '/' is not stripped: "a/" is taken as a name of its own.

// `path` is strictly beneath `dir` ("" is the root: every other path is).
inline bool strictly_beneath(std::string_view path, std::string_view dir) {
    if (dir.empty()) return !path.empty();
    return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

// `path` is `dir` or beneath it ("" is the root: every path is).
inline bool at_or_beneath(std::string_view path, std::string_view dir) {
    return path == dir || strictly_beneath(path, dir);
}

// The keys of `map` strictly beneath `dir`, as a range in key order.
template <class Map>
auto subtree_range(Map& map, const std::string& dir) {
    auto first = map.upper_bound(dir);
    if (!dir.empty()) {
        // Siblings that extend the name ("a.txt") come first: there are
        // rarely more than a few to step over; past that, one lookup.
        auto extends = [&](const std::string& key) {
            return key.size() > dir.size() && key.compare(0, dir.size(), dir) == 0 && key[dir.size()] < '/';
        };
        for (int i = 0; first != map.end() && extends(first->first); ++i, ++first)
            if (i == 8) {
                first = map.lower_bound(dir + '/');
                break;
            }
    }
    auto last = first;
    while (last != map.end() && strictly_beneath(last->first, dir)) ++last;
    return std::pair{first, last};
}

}  // namespace iz
