#include "forward_coalesce.hpp"

#include <unordered_map>

namespace iz::replicator {

using journal::Op;
using journal::Record;

std::vector<bool> coalesce_writes(std::vector<Record>& batch, const std::string& subscriber, uint64_t whole_through) {
    std::vector<bool> skip(batch.size(), false);
    // Per path: the write of it still open to be carried by a later one.
    std::unordered_map<std::string, size_t> open;
    for (size_t i = 0; i < batch.size(); ++i) {
        Record& r = batch[i];
        bool forwarded_write = r.op == Op::write && r.origin != subscriber;
        if (forwarded_write) {
            if (auto it = open.find(r.path); it != open.end()) {
                Record& earlier = batch[it->second];
                skip[it->second] = true;
                bool whole = earlier.ranges.empty() || r.ranges.empty() || earlier.lsn <= whole_through;
                if (whole) r.ranges.clear();
                else {
                    r.ranges.insert(r.ranges.end(), earlier.ranges.begin(), earlier.ranges.end());
                    r.ranges = journal::coalesce(std::move(r.ranges));
                }
            }
            open[r.path] = i;
            continue;
        }
        // Anything else naming a path ends the run of writes there.
        open.erase(r.path);
        if (!r.target.empty()) open.erase(r.target);
    }
    return skip;
}

}  // namespace iz::replicator
