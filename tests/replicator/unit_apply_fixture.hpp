#pragma once
// An Applier on a fresh root in a temporary directory, with a canary
// directory beside the root that no operation may ever touch, and builders
// for the operations a shipper sends.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "replicator/apply/apply.hpp"
#include "replicator/fs/beneath.hpp"
#include "replicator/wire/protocol.hpp"
#include "support/tree.hpp"

namespace iz::replicator::test_apply {

namespace fs = std::filesystem;
using proto::ContentBase;
using proto::OpKind;
using proto::OpMsg;

// Fixed, distinct timestamps (ns) so times are compared exactly.
inline constexpr int64_t kT0 = 1'600'000'000'000'000'000;
inline int64_t t(int i) { return kT0 + static_cast<int64_t>(i) * 1'000'000'007; }

// Whole-file content as begin, data..., end sharing one LSN, `chunk` bytes
// per message.
inline std::vector<OpMsg> content_ops(uint64_t lsn, const std::string& path, const std::string& data, int64_t mtime,
                                      size_t chunk = 4096, ContentBase base = ContentBase::empty) {
    std::vector<OpMsg> ops;
    OpMsg begin{.lsn = lsn, .kind = OpKind::content_begin, .path = path, .base = base};
    size_t off = 0;
    if (!data.empty()) {
        size_t n = std::min(chunk, data.size());
        begin.extents.push_back(proto::make_extent(0, std::string_view(data).substr(0, n)));
        off = n;
    }
    ops.push_back(begin);
    for (; off < data.size(); off += chunk) {
        OpMsg d{.lsn = lsn, .kind = OpKind::content_data, .path = path};
        d.extents.push_back(proto::make_extent(off, std::string_view(data).substr(off, chunk)));
        ops.push_back(d);
    }
    ops.push_back(OpMsg{.lsn = lsn, .kind = OpKind::content_end, .path = path, .mtime_ns = mtime, .size = data.size()});
    return ops;
}

inline struct stat lstat_of(const fs::path& p) {
    struct stat st{};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
    return st;
}

class ApplyTest : public ::testing::Test {
protected:
    void SetUp() override {
        fs::create_directories(canary_ / "dir");
        test::write_file(canary_ / "file", "canary content", 0644);
        test::write_file(canary_ / "dir/inner", "inner canary", 0600);
        canary_before_ = test::manifest(canary_);
        reopen();
    }
    void TearDown() override {
        applier_.reset();
        EXPECT_EQ(test::manifest(canary_), canary_before_) << "the canary beside the root was touched";
    }

    void reopen(std::string reserved_top = {}) {
        applier_.reset();
        auto a = Applier::open(ApplierOptions{root_, state_, "testhost", std::move(reserved_top)});
        ASSERT_TRUE(a) << a.error().message;
        applier_ = std::move(*a);
    }

    ApplyResult apply(const OpMsg& op) { return applier_->apply(op); }

    // Applies and expects `want`; returns the result for further checks.
    ApplyResult expect(Outcome want, const OpMsg& op) {
        auto r = applier_->apply(op);
        last_lsn_ = std::max(last_lsn_, op.lsn);
        EXPECT_EQ(outcome_name(r.outcome), outcome_name(want))
            << proto::op_kind_name(op.kind) << " '" << op.path << "' -> '" << op.target << "': " << r.message;
        return r;
    }
    void ok(const OpMsg& op) { expect(Outcome::applied, op); }
    void ok(const std::vector<OpMsg>& ops) {
        for (auto& op : ops) ok(op);
    }

    // Applies ops[from..] as a replay meets them: each applied, or skipped
    // as already done; returns the results for further checks.
    std::vector<ApplyResult> replay_ops(const std::vector<OpMsg>& ops, size_t from = 0) {
        std::vector<ApplyResult> results;
        for (size_t i = from; i < ops.size(); ++i) {
            auto r = applier_->apply(ops[i]);
            EXPECT_TRUE(r.outcome == Outcome::applied || r.outcome == Outcome::skipped)
                << "#" << i << " " << proto::op_kind_name(ops[i].kind) << " '" << ops[i].path
                << "': " << outcome_name(r.outcome) << ": " << r.message;
            results.push_back(std::move(r));
        }
        return results;
    }

    // Commits what was applied.
    void settle() {
        auto ok = applier_->commit(last_lsn_);
        ASSERT_TRUE(ok) << ok.error().message;
    }

    fs::path at(const std::string& rel) const { return rel.empty() ? root_ : root_ / rel; }

    uint64_t last_lsn_ = 0;
    test::TempDir dir_{"apply"};
    fs::path root_ = dir_ / "root";
    fs::path state_ = dir_ / "state";
    fs::path canary_ = dir_ / "canary";
    std::string canary_before_;
    std::unique_ptr<Applier> applier_;
};

}  // namespace iz::replicator::test_apply
