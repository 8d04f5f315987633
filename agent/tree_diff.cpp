// Comparing two trees by identity, and ordering the records so that a
// replica can apply them one by one: the replica is simulated as the records
// are chosen, so every record meets the state the ones before it left.
#include "agent/tree_diff.hpp"

#include <sys/stat.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "capture_detail.hpp"
#include "common/path_tree.hpp"

namespace iz::agent {

using journal::Op;
using journal::Record;

namespace {

std::string parent_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

uint32_t type_of(const Entry& e) { return e.mode & S_IFMT; }

// One object: a file, directory, symlink or device, with every name it has
// on the replica (while the records are chosen) and every name it must end
// with.
struct Object {
    const Entry* was = nullptr;  // as the replica holds it (nullptr: new)
    const Entry* now = nullptr;  // as it is (nullptr: gone)
    std::set<std::string> names;
    std::vector<std::string> wanted;  // in path order
    bool dir = false;
    // Matched by name only (another object took the name of one gone): its
    // content is another file's, whatever sizes and times say.
    bool by_name = false;
    bool merged_away = false;
    bool removed = false;

    bool wants(const std::string& path) const { return std::binary_search(wanted.begin(), wanted.end(), path); }
};

class Planner {
public:
    Planner(const Tree& before, const Tree& after) : before_(before), after_(after) {}

    std::vector<Record> plan() {
        identify();
        dir_times_.assign(objs_.size(), kTimesUntouched);
        match_by_name();
        remove_gone_names();
        place_everything();
        unlink_spare_names();
        check_result();
        content_and_attributes();
        return std::move(out_);
    }

private:
    // The key of an object: its handle and type. An entry without a handle
    // (it could not be read) is an object of its own, matched by name only.
    std::string key_of(const Entry& e, char side, const std::string& path) const {
        if (e.handle.empty()) return fmt::format("{}{}", side, path);
        return fmt::format("h{:o}:", type_of(e)) + e.handle.key();
    }

    int object_for(const std::string& key) {
        auto [it, fresh] = keys_.try_emplace(key, static_cast<int>(objs_.size()));
        if (fresh) objs_.emplace_back();
        return it->second;
    }

    void identify() {
        for (auto& [path, e] : before_) {
            if (path.empty()) continue;
            auto key = key_of(e, 'b', path);
            // A directory has one name: a second one in the state is not trusted.
            if (e.is_dir() && keys_.count(key)) key = fmt::format("b{}", path);
            int id = object_for(key);
            auto& o = objs_[id];
            if (!o.was) o.was = &e;
            o.dir = e.is_dir();
            o.names.insert(path);
            cur_[path] = id;
        }
        for (auto& [path, e] : after_) {
            if (path.empty()) continue;
            auto key = key_of(e, 'a', path);
            if (e.is_dir() && keys_.count(key) && objs_[keys_[key]].now) key = fmt::format("a{}", path);
            int id = object_for(key);
            auto& o = objs_[id];
            if (!o.now) o.now = &e;
            o.dir = e.is_dir();
            o.wanted.push_back(path);  // after_ is in path order
            want_[path] = id;
        }
    }

    static bool same_content_kind(const Entry& a, const Entry& b) {
        if (type_of(a) != type_of(b)) return false;
        if (a.is_symlink()) return a.link_target == b.link_target;
        if (!a.is_reg() && !a.is_dir()) return a.rdev == b.rdev;
        return true;
    }

    // A new object at the name of one that is gone, of the same type, is
    // that one changed: a directory made again, a file replaced by one
    // written beside it and renamed over it. The replica keeps its entry
    // and gets the differences (for a file, the blocks that differ).
    void match_by_name() {
        for (auto& [path, e] : after_) {
            if (path.empty()) continue;
            int fresh = want_.at(path);
            auto c = cur_.find(path);
            if (c == cur_.end() || c->second == fresh) continue;
            int gone = c->second;
            auto& n = objs_[fresh];
            auto& g = objs_[gone];
            if (n.was || g.now || g.merged_away || !same_content_kind(*g.was, e)) continue;
            if (g.dir && g.names.size() != 1) continue;
            g.now = n.now;
            g.wanted = std::move(n.wanted);
            g.by_name = true;
            for (auto& p : g.wanted) want_[p] = gone;
            n = Object{};
            n.merged_away = true;
        }
    }

    Record removal(const std::string& path, const Object& o) const {
        Record r;
        r.op = o.dir ? Op::rmdir : Op::unlink;
        r.path = path;
        r.handle = o.was->handle;
        return r;
    }

    // Names of files that are gone, and names a file has more of than it
    // needs: they hold nothing up, and free names and directories.
    void remove_gone_names() {
        std::vector<std::string> gone;
        for (auto it = cur_.rbegin(); it != cur_.rend(); ++it)
            if (!objs_[it->second].dir && !objs_[it->second].now) gone.push_back(it->first);
        for (auto& path : gone) {
            entry_record(removal(path, objs_[cur_.at(path)]));
            forget_name(path);
        }
        for (auto& o : objs_) {
            if (o.dir || !o.was || !o.now) continue;
            std::vector<std::string> spare;
            size_t missing = 0;
            for (auto& n : o.names)
                if (!o.wants(n)) spare.push_back(n);
            for (auto& w : o.wanted)
                if (!o.names.count(w)) ++missing;
            while (spare.size() > missing) {
                entry_record(removal(spare.back(), o));
                forget_name(spare.back());
                spare.pop_back();
            }
        }
    }

    void forget_name(const std::string& path) {
        auto it = cur_.find(path);
        if (it == cur_.end()) return;
        objs_[it->second].names.erase(path);
        cur_.erase(it);
    }

    // Every name from `path` down holds what it must end with.
    bool settled(const std::string& path) const {
        for (std::string p = path; !p.empty(); p = parent_of(p)) {
            auto c = cur_.find(p);
            auto w = want_.find(p);
            if (c == cur_.end() || w == want_.end() || c->second != w->second) return false;
        }
        return true;
    }

    // The replica's rename: the name and everything beneath it.
    void move(const std::string& from, const std::string& to) {
        std::vector<std::pair<std::string, int>> moved;
        auto self = cur_.find(from);
        moved.emplace_back(to, self->second);
        auto [first, last] = subtree_range(cur_, from);
        for (auto it = first; it != last; ++it) moved.emplace_back(to + it->first.substr(from.size()), it->second);
        cur_.erase(first, last);
        cur_.erase(self);
        for (auto& [path, id] : moved) {
            auto& names = objs_[id].names;
            names.erase(from + path.substr(to.size()));
            names.insert(path);
            cur_[path] = id;
        }
    }

    // The replica's exchange: the two names swap what lies beneath them.
    void swap(const std::string& a, const std::string& b) {
        const std::string aside(1, '\0');  // no path holds a NUL
        move(a, aside);
        move(b, a);
        move(aside, b);
    }

    void rename(int id, const std::string& from, const std::string& to) {
        Record r;
        r.op = Op::rename;
        r.path = from;
        r.target = to;
        r.handle = objs_[id].was->handle;
        move(from, to);
        entry_record(std::move(r));
    }

    void create(int id, const std::string& path) {
        const Entry& e = *objs_[id].now;
        cur_[path] = id;
        objs_[id].names.insert(path);
        entry_record(creation_record(path, e));
        if (e.is_reg() && e.size > 0) {
            out_.push_back(capture_detail::whole_content_record(path, e));
            // Writing the content moves mtime on a replica: pin it after.
            auto pin = creation_record(path, e);
            pin.op = Op::setattr;
            pin.size.reset();
            pin.atime_ns = e.atime_ns;
            out_.push_back(std::move(pin));
        }
        // The creation carries mode, owner and mtime; xattrs follow.
        for (auto& r : attribute_records(path, Entry{.mode = e.mode, .uid = e.uid, .gid = e.gid, .mtime_ns = e.mtime_ns}, e))
            out_.push_back(std::move(r));
    }

    // Puts object `id` at `to` if it can go there now. Returns whether it is
    // there; `occupant` is set when another entry holds the name, `freed`
    // to the name it moved from.
    bool place(int id, const std::string& to, std::optional<int>& occupant, std::optional<std::string>& freed) {
        auto& o = objs_[id];
        auto c = cur_.find(to);
        if (c != cur_.end() && c->second == id) return settled(to);
        if (!settled(parent_of(to))) return false;
        if (c != cur_.end()) {
            occupant = c->second;
            return false;
        }
        // A name the object must lose moves here; one that frees the name
        // of another entry first.
        std::optional<std::string> spare;
        for (auto& n : o.names) {
            if (o.wants(n)) continue;
            if (!spare || (want_.count(n) && !want_.count(*spare))) spare = n;
        }
        if (spare) {
            rename(id, *spare, to);
            freed = spare;
        } else if (!o.names.empty() && !o.dir) {
            auto& first = *o.names.begin();
            cur_[to] = id;
            o.names.insert(to);
            entry_record(capture_detail::link_record(first, to, o.now->handle));
        } else {
            create(id, to);
        }
        return true;
    }

    // Directories that are gone, once nothing is left beneath them.
    bool remove_empty_gone_dirs() {
        bool progress = false;
        for (auto it = cur_.rbegin(); it != cur_.rend();) {
            int id = it->second;
            std::string path = it->first;
            ++it;
            auto& o = objs_[id];
            if (!o.dir || o.now) continue;
            auto [first, last] = subtree_range(cur_, path);
            if (first != last) continue;
            entry_record(removal(path, o));
            forget_name(path);
            o.removed = true;
            progress = true;
            it = std::make_reverse_iterator(cur_.lower_bound(path));
        }
        return progress;
    }

    std::string temporary_name() {
        for (;;) {
            auto name = fmt::format(".iz-rescan-{}", temp_counter_++);
            if (!cur_.count(name) && !before_.count(name) && !after_.count(name)) return name;
        }
    }

    // Nothing can be placed: every name needed is held by an entry that
    // waits for another (a cycle, such as two names swapped, or a
    // directory that must take the place of a gone one it is inside). The
    // holder moves aside to a name of its own at the root.
    void break_cycle(const std::string& blocked, int occupant) {
        std::string aside = blocked;
        if (objs_[occupant].dir && !objs_[occupant].now) {
            // A gone directory: what must survive beneath it moves out.
            auto [first, last] = subtree_range(cur_, blocked);
            aside.clear();
            for (auto it = first; it != last; ++it)
                if (objs_[it->second].now) {
                    aside = it->first;
                    break;
                }
            if (aside.empty()) return;
        }
        int id = cur_.at(aside);
        // Two entries that must swap names exchange them in one record. Not
        // only shorter: a server replays what it applied after its last
        // commit when it is killed, and replayed, three renames through a
        // temporary name swap the two back (the first finds its name
        // holding the other entry by then), while a replayed exchange is
        // recognised as done.
        if (aside == blocked) {
            int wants = want_.at(blocked);
            for (auto& from : objs_[wants].names) {
                auto w = want_.find(from);
                if (objs_[wants].wants(from) || w == want_.end() || w->second != id) continue;
                if (strictly_beneath(from, blocked) || strictly_beneath(blocked, from)) continue;
                exchange(wants, from, id, blocked);
                return;
            }
        }
        rename(id, aside, temporary_name());
    }

    void exchange(int a, std::string a_name, int b, std::string b_name) {
        Record r;
        r.op = Op::exchange;
        r.path = a_name;
        r.target = b_name;
        auto handle = [&](int id) { return (objs_[id].was ? objs_[id].was : objs_[id].now)->handle; };
        r.handle = handle(a);
        r.replaced_handle = handle(b);
        swap(a_name, b_name);
        entry_record(std::move(r));
    }

    void place_everything() {
        std::vector<std::string> pending;
        for (auto& [path, e] : after_)
            if (!path.empty()) pending.push_back(path);
        std::unordered_set<std::string> open(pending.begin(), pending.end());
        std::optional<std::pair<std::string, int>> first_blocked;
        // Places the entry for `to`, then the one waiting for the name that
        // move freed, and so on: a chain of names shifted by one (log.1 to
        // log.2, log.2 to log.3...) or a cycle once broken takes one pass,
        // not a round per link.
        auto chain = [&](std::string to) {
            for (bool first = true; open.count(to); first = false) {
                std::optional<int> occupant;
                std::optional<std::string> freed;
                if (!place(want_.at(to), to, occupant, freed)) {
                    if (first && occupant && !first_blocked) first_blocked.emplace(to, *occupant);
                    return;
                }
                open.erase(to);
                if (!freed) return;
                to = *freed;
            }
        };
        // Every round places something or moves an entry aside; an entry
        // moved aside never stands in the way again, so rounds are bounded.
        size_t rounds_left = 2 * pending.size() + 16;
        while (!open.empty()) {
            bool progress = remove_empty_gone_dirs();
            size_t before = open.size();
            first_blocked.reset();
            for (auto& to : pending) chain(to);
            progress = progress || open.size() < before;
            std::erase_if(pending, [&](const std::string& p) { return !open.count(p); });
            if (open.empty()) break;
            if (!progress) {
                if (!first_blocked || --rounds_left == 0) {
                    spdlog::error("rescan: {} entries could not be placed (first: '{}')", pending.size(), pending.front());
                    break;
                }
                auto blocked = first_blocked->first;
                break_cycle(blocked, first_blocked->second);
                chain(blocked);
            }
        }
        remove_empty_gone_dirs();
    }

    void unlink_spare_names() {
        std::vector<std::string> spare;
        for (auto& [path, id] : cur_)
            if (!objs_[id].dir && !objs_[id].wants(path)) spare.push_back(path);
        for (auto it = spare.rbegin(); it != spare.rend(); ++it) {
            entry_record(removal(*it, objs_[cur_.at(*it)]));
            forget_name(*it);
        }
    }

    void check_result() const {
        size_t wrong = 0;
        for (auto& [path, id] : want_)
            if (!cur_.count(path) || cur_.at(path) != id) ++wrong;
        if (wrong || cur_.size() != want_.size())
            spdlog::error("rescan: the records found leave {} of {} entries unlike the tree ({} entries)", wrong,
                          want_.size(), cur_.size());
    }

    // A directory's mtime travels with every record that makes or removes
    // an entry in it: the shipper reads it from the source by the
    // directory's path when it ships the record, and the replica sets it on
    // the directory it holds at that path then. That is the same directory
    // only if it is the one the path ends with; otherwise the replica's
    // directory there gets another's mtime. Each record's directories are
    // noted as the replica holds them when it applies it (the last record
    // decides): a directory set right is left alone; one given another's
    // mtime, or none whose mtime changed (entries made and removed again
    // while no agent ran leave no record), gets its times set after all
    // entries are in place.
    void entry_record(Record r) {
        auto note = [&](const std::string& path) {
            std::string dir = parent_of(path);
            if (dir.empty()) {  // the root is always the root
                root_touched_ = true;
                return;
            }
            auto c = cur_.find(dir);
            auto w = want_.find(dir);
            if (c == cur_.end() || w == want_.end()) return;  // the source has no such directory: nothing is set
            dir_times_[c->second] = c->second == w->second ? kTimesSet : kTimesWrong;
        };
        switch (r.op) {
            case Op::link: note(r.target); break;  // the source's directory is not changed
            case Op::rename:
            case Op::exchange: note(r.target); [[fallthrough]];
            default: note(r.path); break;
        }
        out_.push_back(std::move(r));
    }

    void directory_times(int id, const std::string& path, const Entry& old, const Entry& now, std::vector<Record>& attrs) {
        if (!now.is_dir()) return;
        auto state = id < 0 ? kTimesUntouched : dir_times_[id];
        if (state == kTimesSet || (state == kTimesUntouched && old.mtime_ns == now.mtime_ns)) return;
        if (std::any_of(attrs.begin(), attrs.end(), [](const Record& r) { return r.op == Op::setattr; })) return;
        Entry other = now;
        other.mode ^= 01;  // any difference makes attribute_records write the full setattr
        for (auto& r : attribute_records(path, other, now))
            if (r.op == Op::setattr) attrs.insert(attrs.begin(), std::move(r));
    }

    void content_and_attributes() {
        if (auto b = before_.find(""), a = after_.find(""); b != before_.end() && a != after_.end()) {
            auto attrs = attribute_records("", b->second, a->second);
            if (!root_touched_) directory_times(-1, "", b->second, a->second, attrs);
            for (auto& r : attrs) out_.push_back(std::move(r));
        }
        std::vector<bool> done(objs_.size());
        for (auto& [path, e] : after_) {
            if (path.empty()) continue;
            int id = want_.at(path);
            if (done[id]) continue;
            done[id] = true;
            auto& o = objs_[id];
            if (!o.was) continue;  // made with its content and attributes
            const Entry& old = *o.was;
            bool wrote = false;
            if (e.is_reg() && (o.by_name || old.size != e.size || old.mtime_ns != e.mtime_ns || old.mtime_ns == kUnknownMtime)) {
                if (e.size < old.size) {
                    Record t;
                    t.op = Op::truncate;
                    t.path = path;
                    t.size = e.size;
                    t.handle = e.handle;
                    out_.push_back(std::move(t));
                }
                out_.push_back(capture_detail::whole_content_record(path, e));
                wrote = true;
            }
            auto attrs = attribute_records(path, old, e);
            directory_times(id, path, old, e, attrs);
            bool pinned = std::any_of(attrs.begin(), attrs.end(), [](const Record& r) { return r.op == Op::setattr; });
            if (wrote && !pinned) {
                // The write moves the replica's mtime: set it back.
                Entry other = e;
                other.mode ^= 01;
                for (auto& r : attribute_records(path, other, e))
                    if (r.op == Op::setattr) out_.push_back(std::move(r));
            }
            for (auto& r : attrs) out_.push_back(std::move(r));
        }
    }

    const Tree& before_;
    const Tree& after_;
    std::vector<Object> objs_;
    std::unordered_map<std::string, int> keys_;
    std::map<std::string, int> cur_;             // the replica as the records so far leave it
    std::unordered_map<std::string, int> want_;  // the tree as it is
    std::vector<Record> out_;
    int temp_counter_ = 0;
    static constexpr int8_t kTimesUntouched = 0, kTimesSet = 1, kTimesWrong = -1;
    std::vector<int8_t> dir_times_;  // per object
    bool root_touched_ = false;
};

}  // namespace

std::vector<Record> diff_trees(const Tree& before, const Tree& after) { return Planner(before, after).plan(); }

}  // namespace iz::agent
