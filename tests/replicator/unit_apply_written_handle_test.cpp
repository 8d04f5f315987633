// What the applier tells of the file it wrote (ApplyResult::written): a
// server's fileset journal keeps it as the record's handle, where it used
// to open the file beneath the root again only to read its handle.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include "common/file_handle.hpp"
#include "common/unique_fd.hpp"
#include "unit_apply_fixture.hpp"

namespace iz::replicator::test_apply {
namespace {

class WrittenHandle : public ApplyTest {
protected:
    void open_with_handles() {
        applier_.reset();
        ApplierOptions o{root_, state_, "testhost", ""};
        o.written_handles = true;
        auto a = Applier::open(o);
        ASSERT_TRUE(a) << a.error().message;
        applier_ = std::move(*a);
    }
    FileHandle handle_at(const std::string& rel) {
        UniqueFd root(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        auto h = handle_of(root.get(), rel);
        EXPECT_TRUE(h) << h.error().message;
        return h ? *h : FileHandle{};
    }
};

TEST_F(WrittenHandle, WholeContentGivesTheHandleOfTheFileItMadeAtItsEnd) {
    open_with_handles();
    ok(content_ops(1, "old", "first", t(1)));
    auto ops = content_ops(2, "f", std::string(10000, 'x'), t(2), 4096);
    ApplyResult end;
    for (auto& op : ops) {
        auto r = expect(Outcome::applied, op);
        if (op.kind != OpKind::content_end) EXPECT_TRUE(r.written.empty()) << proto::op_kind_name(op.kind);
        else end = r;
    }
    ASSERT_FALSE(end.written.empty());
    EXPECT_EQ(end.written, handle_at("f"));
    EXPECT_NE(end.written, handle_at("old"));
    // Content over an existing name (a temporary renamed over it): the new file's.
    ApplyResult over;
    for (auto& op : content_ops(3, "old", "second", t(3))) over = expect(Outcome::applied, op);
    EXPECT_EQ(over.written, handle_at("old"));
    // An operation that writes no content tells none.
    auto r = expect(Outcome::applied, OpMsg{.lsn = 4, .kind = OpKind::mkdir, .path = "d", .mode = 040755});
    EXPECT_TRUE(r.written.empty());
}

TEST_F(WrittenHandle, AWriteInPlaceGivesTheHandleOfItsFile) {
    open_with_handles();
    ok(content_ops(1, "f", "hello", t(1)));
    OpMsg w{.lsn = 2, .kind = OpKind::write, .path = "f", .mtime_ns = t(2), .size = 5};
    w.extents.push_back(proto::make_extent(0, "HE"));
    auto r = expect(Outcome::applied, w);
    EXPECT_EQ(test::read_file(at("f")), "HEllo");
    EXPECT_EQ(r.written, handle_at("f"));
}

// An applier whose caller keeps no journal (an agent's) reads no handles.
TEST_F(WrittenHandle, NoneUnlessAskedFor) {
    ApplyResult end;
    for (auto& op : content_ops(1, "f", "hello", t(1))) end = expect(Outcome::applied, op);
    EXPECT_TRUE(end.written.empty());
}

}  // namespace
}  // namespace iz::replicator::test_apply
