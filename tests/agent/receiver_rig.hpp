// What the receiver's tests share: forwards as the server sends them, a
// receiver opened on a test's directories, waiting for it to apply, and
// reading what it wrote.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "receiver.hpp"
#include "support/tree.hpp"

namespace iz::agent::test_receiver {

namespace proto = replicator::proto;

// A forward of the op `kind` at `path`, made by `origin` (its LSN there
// `origin_lsn`, else lsn + 100).
inline proto::Forward forward(uint64_t lsn, proto::OpKind kind, std::string path, std::string origin = "desk",
                              uint64_t origin_lsn = 0) {
    proto::Forward f;
    f.origin = std::move(origin);
    f.origin_lsn = origin_lsn ? origin_lsn : lsn + 100;
    f.op.lsn = lsn;
    f.op.kind = kind;
    f.op.path = std::move(path);
    return f;
}

// Agent "laptop" receiving into `root`, its state in `state`, journaling
// nothing: callers replace what their test watches.
inline ReceiverOptions receiver_options(const test::TempDir& root, const test::TempDir& state) {
    ReceiverOptions o;
    o.root = root.path();
    o.state_dir = state.path() / "receive";
    o.agent_id = "laptop";
    o.journal = [](journal::Record) -> Status { return {}; };
    return o;
}

// The receiver `o` opens; null (and a test failure) when it does not.
inline std::shared_ptr<Receiver> open_with(ReceiverOptions o) {
    auto r = Receiver::open(std::move(o));
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? *r : nullptr;
}

// The bytes of `p`; empty when there is no such file (unlike
// test::read_file, which throws).
inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Waits up to 5 s for `r` to have applied `lsn`.
inline bool wait_applied(Receiver& r, uint64_t lsn) {
    for (int i = 0; i < 500 && r.applied() < lsn; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return r.applied() >= lsn;
}

}  // namespace iz::agent::test_receiver
