#pragma once
// Which records izlog shows: every given criterion must match; several
// values of one criterion are alternatives.
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "journal/record.hpp"

namespace iz::izlog {

struct Filter {
    std::vector<std::string> paths;  // prefix, or glob when it has * ? [
    std::vector<journal::Op> ops;
    std::vector<int32_t> pids;
    std::vector<uint32_t> uids;
    std::vector<std::string> comms;
    std::optional<int64_t> since_ns;
    std::optional<int64_t> until_ns;

    bool matches(const journal::Record& r) const;
};

// "write,unlink" or several --op: validated against the op names.
Result<std::vector<journal::Op>> parse_ops(const std::vector<std::string>& values);

}  // namespace iz::izlog
