#pragma once
// What a fileset journal holds, for the tests of the server's fileset
// journal: every record of the journal in `dir`, in order. A read that
// fails is a test failure, and what was read up to it is returned.
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "journal/reader.hpp"

namespace iz::test {

inline std::vector<journal::Record> journal_records(const std::filesystem::path& dir) {
    std::vector<journal::Record> out;
    auto reader = journal::Reader::open(dir);
    EXPECT_TRUE(reader);
    if (!reader) return out;
    for (;;) {
        auto r = (*reader)->next();
        EXPECT_TRUE(r);
        if (!r || !*r) break;
        out.push_back(**r);
    }
    return out;
}

}  // namespace iz::test
