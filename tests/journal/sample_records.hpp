#pragma once
// Records of every op with every field their op uses, for round-trip tests.
#include <filesystem>
#include <vector>

#include "journal/record.hpp"

namespace iz::test {

std::vector<journal::Record> sample_records();
// A realistic write record (about 150 bytes encoded) numbered `n`.
journal::Record realistic_record(uint64_t n, uint32_t thread = 0);

}  // namespace iz::test
