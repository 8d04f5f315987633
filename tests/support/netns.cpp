#include "support/netns.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include <atomic>

#include "support/process.hpp"

namespace iz::test {

namespace {

Status run_ip(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"ip"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_process(argv, {}, std::chrono::seconds(20));
    if (r.exit_code != 0) {
        std::string cmd;
        for (auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
        return fail(make_error(fmt::format("'{}' failed ({}): {}", cmd, r.exit_code, r.err)));
    }
    return {};
}

// Interface names are at most 15 characters: a short per-process counter.
std::string short_name(const char* prefix) {
    static std::atomic<int> counter{0};
    return fmt::format("{}{}x{}", prefix, getpid() % 100000, counter++);
}

}  // namespace

Result<std::unique_ptr<Netns>> Netns::make(const std::string& tag) {
    static std::atomic<int> counter{0};
    std::unique_ptr<Netns> ns(new Netns());
    auto name = fmt::format("iz-{}-{}-{}", tag, getpid(), counter++);
    if (auto ok = run_ip({"netns", "add", name}); !ok) return fail(ok.error());
    ns->name_ = name;
    if (auto ok = run_ip({"-n", name, "link", "set", "lo", "up"}); !ok) return fail(ok.error());
    return ns;
}

Netns::~Netns() {
    if (!name_.empty()) (void)run_ip({"netns", "delete", name_});
}

std::vector<std::string> Netns::exec(const std::vector<std::string>& argv) const {
    std::vector<std::string> out{"ip", "netns", "exec", name_};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}

Result<std::unique_ptr<VethLink>> VethLink::make(const Netns& a, const Netns& b, int subnet) {
    std::unique_ptr<VethLink> link(new VethLink());
    link->dev_a_ = short_name("iza");
    link->dev_b_ = short_name("izb");
    link->subnet_ = subnet;
    if (auto ok = run_ip({"link", "add", link->dev_a_, "type", "veth", "peer", "name", link->dev_b_}); !ok)
        return fail(ok.error());
    // Moved into the namespaces at once, so that the destructor's delete
    // (in namespace a) also removes a pair that failed half-way.
    if (auto ok = run_ip({"link", "set", link->dev_a_, "netns", a.name()}); !ok) {
        (void)run_ip({"link", "delete", link->dev_a_});
        return fail(ok.error());
    }
    link->ns_a_ = a.name();
    if (auto ok = run_ip({"link", "set", link->dev_b_, "netns", b.name()}); !ok) return fail(ok.error());
    link->ns_b_ = b.name();
    if (auto ok = run_ip({"-n", a.name(), "addr", "add", link->address_a() + "/30", "dev", link->dev_a_}); !ok)
        return fail(ok.error());
    if (auto ok = run_ip({"-n", b.name(), "addr", "add", link->address_b() + "/30", "dev", link->dev_b_}); !ok)
        return fail(ok.error());
    if (auto ok = link->set_up(true); !ok) return fail(ok.error());
    return link;
}

VethLink::~VethLink() {
    // Deleting one end deletes the pair.
    if (!ns_a_.empty()) (void)run_ip({"-n", ns_a_, "link", "delete", dev_a_});
}

std::string VethLink::address_a() const { return fmt::format("10.213.{}.1", subnet_); }
std::string VethLink::address_b() const { return fmt::format("10.213.{}.2", subnet_); }

Status VethLink::limit_rate_a_to_b(const std::string& rate) {
    std::vector<std::string> argv{"tc", "-n", ns_a_, "qdisc", "replace", "dev", dev_a_, "root",
                                  "tbf", "rate", rate, "burst", "64kb", "latency", "400ms"};
    auto r = run_process(argv, {}, std::chrono::seconds(20));
    if (r.exit_code != 0)
        return fail(make_error(fmt::format("tc on {} failed ({}): {}", dev_a_, r.exit_code, r.err)));
    return {};
}

Status VethLink::set_up(bool up) {
    const char* state = up ? "up" : "down";
    if (auto ok = run_ip({"-n", ns_a_, "link", "set", dev_a_, state}); !ok) return ok;
    return run_ip({"-n", ns_b_, "link", "set", dev_b_, state});
}

}  // namespace iz::test
