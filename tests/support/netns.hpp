#pragma once
// Separate hosts on one machine for tests: network namespaces joined by veth
// pairs. Every namespace and link made here is deleted by the destructor,
// whatever the test did; processes started inside a namespace belong to the
// test (kill them before the Netns goes).
#include <memory>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace iz::test {

class Netns {
public:
    // A namespace with its loopback up. `tag` keeps names unique per test.
    static Result<std::unique_ptr<Netns>> make(const std::string& tag);
    ~Netns();
    Netns(const Netns&) = delete;
    Netns& operator=(const Netns&) = delete;

    const std::string& name() const { return name_; }
    // argv prefixed so that it runs inside this namespace.
    std::vector<std::string> exec(const std::vector<std::string>& argv) const;

private:
    Netns() = default;
    std::string name_;
};

// A veth pair between two namespaces on a /30 of its own: `a` gets
// 10.213.<subnet>.1, `b` gets 10.213.<subnet>.2. Traffic never leaves the
// two namespaces.
class VethLink {
public:
    static Result<std::unique_ptr<VethLink>> make(const Netns& a, const Netns& b, int subnet);
    ~VethLink();
    VethLink(const VethLink&) = delete;
    VethLink& operator=(const VethLink&) = delete;

    std::string address_a() const;
    std::string address_b() const;
    // The device at `a`'s end, in `a`'s namespace (what a capture listens on).
    const std::string& device_a() const { return dev_a_; }
    // Cuts or restores the link (both ends down/up): a cable pulled out.
    Status set_up(bool up);
    // Caps the bandwidth from `a` to `b` (a tc token bucket, e.g. "40mbit"),
    // so a transfer lasts long enough to be interrupted on purpose.
    Status limit_rate_a_to_b(const std::string& rate);

private:
    VethLink() = default;
    std::string ns_a_, ns_b_, dev_a_, dev_b_;
    int subnet_ = 0;
};

}  // namespace iz::test
