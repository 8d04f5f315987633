// The handle a fileset journal's write record keeps (forwarding reads the
// file's content through it): the one the applier gave, read while it had
// the file open, rather than one read by opening the path beneath the root
// again for every record, which cost the server a path walk, an open and a
// close per file written.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "common/file_handle.hpp"
#include "common/unique_fd.hpp"
#include "fileset_journal.hpp"
#include "fileset_journal_records.hpp"
#include "support/tree.hpp"

namespace iz::replicator {
namespace {

proto::OpMsg content_end(uint64_t lsn, const std::string& path) {
    return proto::OpMsg{.lsn = lsn, .kind = proto::OpKind::content_end, .path = path, .size = 1};
}

FileHandle handle_at(const std::filesystem::path& root, const std::string& rel) {
    UniqueFd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    auto h = handle_of(dir.get(), rel);
    EXPECT_TRUE(h) << h.error().message;
    return h ? *h : FileHandle{};
}

// The path no longer leads to the file when the record is noted (here it
// was renamed away): only the handle the applier gave can be in the
// record, so the journal cannot have looked the path up again.
TEST(ServerFilesetJournalHandle, AWriteKeepsTheHandleTheApplierGaveWithoutOpeningThePath) {
    test::TempDir state("fsjh-state"), root("fsjh-root");
    test::write_file(root / "f", "x", 0644);
    FileHandle written = handle_at(root.path(), "f");
    ASSERT_FALSE(written.empty());
    std::filesystem::rename(root / "f", root / "moved");
    auto j = FilesetJournal::open(state / "journal", root.path(), "");
    ASSERT_TRUE(j) << j.error().message;
    (*j)->note_applied("desk", content_end(1, "f"), "", &written);
    // Without one (a caller that has none), the file is looked up by path.
    test::write_file(root / "g", "y", 0644);
    (*j)->note_applied("desk", content_end(2, "g"));
    ASSERT_TRUE((*j)->flush());
    auto recs = test::journal_records(state / "journal");
    ASSERT_EQ(recs.size(), 2u);
    EXPECT_EQ(recs[0].op, journal::Op::write);
    EXPECT_EQ(recs[0].path, "f");
    EXPECT_EQ(recs[0].handle, written);
    EXPECT_EQ(recs[1].path, "g");
    EXPECT_EQ(recs[1].handle, handle_at(root.path(), "g"));
}

}  // namespace
}  // namespace iz::replicator
