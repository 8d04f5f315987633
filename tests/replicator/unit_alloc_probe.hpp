#pragma once
// Watches the largest single heap allocation made by this thread while a
// probe is alive, so a test can prove that a hostile length prefix is
// refused before anything of that size is allocated (rather than after a
// multi-gigabyte std::string happened to succeed).
#include <cstddef>

namespace iz::test {

class AllocProbe {
public:
    AllocProbe();
    ~AllocProbe();
    AllocProbe(const AllocProbe&) = delete;
    AllocProbe& operator=(const AllocProbe&) = delete;

    size_t largest() const;
};

}  // namespace iz::test
