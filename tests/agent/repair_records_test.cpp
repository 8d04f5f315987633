// The records a repair journals for each kind of difference: what makes
// the replica's entry the source's, in an order the server can apply, after
// a `repair` record naming what differed.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "agent/repair_records.hpp"

namespace iz::agent {
namespace {

using journal::Op;
using replicator::Difference;
using replicator::tree::EntryMeta;
using replicator::tree::Node;

EntryMeta meta(char type, uint32_t mode = 0644) {
    EntryMeta m;
    m.type = type;
    m.mode = mode;
    m.uid = 1000;
    m.gid = 100;
    m.mtime_ns = 1'700'000'000'000'000'000;
    if (type == 'f') m.content = std::string(16, 'c');
    return m;
}

Node node(const std::string& name, EntryMeta m, std::vector<Node> children = {}) {
    return Node{name, std::move(m), {}, std::move(children)};
}

// "op path[->target]" per record, the repair marker's message left out.
std::vector<std::string> ops(const std::vector<journal::Record>& rs) {
    std::vector<std::string> out;
    for (auto& r : rs) {
        std::string s = std::string(journal::op_name(r.op)) + " " + r.path;
        if (!r.target.empty()) s += "->" + r.target;
        if (!r.xattr_name.empty()) s += " " + r.xattr_name;
        out.push_back(s);
    }
    return out;
}

using Strings = std::vector<std::string>;

TEST(RepairRecords, EveryRepairBeginsWithARecordNamingWhatDiffered) {
    Difference d{"a/f", meta('f'), std::nullopt, {"missing on the replica"}};
    auto rs = repair_records(d, node("f", meta('f')), {});
    ASSERT_FALSE(rs.empty());
    EXPECT_EQ(rs[0].op, Op::repair);
    EXPECT_EQ(rs[0].path, "a/f");
    EXPECT_EQ(rs[0].message, "the replica differs: a/f: missing on the replica");
    EXPECT_EQ(rs[0].comm, "izwatch");
}

TEST(RepairRecords, AMissingFileIsSentWhole) {
    Difference d{"f", meta('f'), std::nullopt, {"missing on the replica"}};
    EXPECT_EQ(ops(repair_records(d, node("f", meta('f')), {})), (Strings{"repair f", "write f", "close_write f"}));
}

TEST(RepairRecords, AMissingSubtreeIsMadeParentsFirstAndItsTimesLast) {
    auto link = meta('l', 0777);
    link.target = "x";
    auto dir = meta('d', 0755);
    dir.xattrs["user.k"] = "v";
    Node src = node("d", dir, {node("f", meta('f')), node("l", link), node("s", meta('d', 0700), {node("g", meta('f'))})});
    Difference d{"d", dir, std::nullopt, {"missing on the replica"}};
    auto rs = repair_records(d, src, {});
    EXPECT_EQ(ops(rs), (Strings{"repair d", "mkdir d", "setxattr d user.k", "write d/f", "close_write d/f", "symlink d/l->x",
                                "mkdir d/s", "write d/s/g", "close_write d/s/g", "setattr d/s", "setattr d"}));
    EXPECT_EQ(rs[1].mode, S_IFDIR | 0755u);
    EXPECT_EQ(rs[1].owner_uid, 1000u);
    EXPECT_EQ(rs[5].mode, S_IFLNK | 0777u);
    EXPECT_EQ(rs.back().mtime_ns, dir.mtime_ns);
}

TEST(RepairRecords, AnExtraSubtreeIsRemovedChildrenFirst) {
    Difference d{"x", std::nullopt, meta('d'), {"extra on the replica"}};
    std::vector<std::pair<std::string, EntryMeta>> replica{
        {"x", meta('d')}, {"x/a", meta('f')}, {"x/s", meta('d')}, {"x/s/b", meta('l')}};
    EXPECT_EQ(ops(repair_records(d, std::nullopt, replica)),
              (Strings{"repair x", "unlink x/s/b", "rmdir x/s", "unlink x/a", "rmdir x"}));
}

TEST(RepairRecords, AnotherTypeIsRemovedThenMade) {
    Difference d{"k", meta('f'), meta('d'), {"type: regular file on the source, directory on the replica"}};
    std::vector<std::pair<std::string, EntryMeta>> replica{{"k", meta('d')}, {"k/sub", meta('d')}};
    EXPECT_EQ(ops(repair_records(d, node("k", meta('f')), replica)),
              (Strings{"repair k", "rmdir k/sub", "rmdir k", "write k", "close_write k"}));
}

TEST(RepairRecords, ContentIsSentWholeAndAttributesAlone) {
    auto theirs = meta('f');
    theirs.content = std::string(16, 'd');
    Difference content{"f", meta('f'), theirs, {"content: ..."}};
    EXPECT_EQ(ops(repair_records(content, node("f", meta('f')), {{"f", theirs}})),
              (Strings{"repair f", "write f", "close_write f"}));
    auto other_mode = meta('f', 0600);
    Difference mode{"f", meta('f'), other_mode, {"mode: ..."}};
    auto rs = repair_records(mode, node("f", meta('f')), {{"f", other_mode}});
    EXPECT_EQ(ops(rs), (Strings{"repair f", "setattr f"}));
    EXPECT_EQ(rs[1].mode, S_IFREG | 0644u);
    EXPECT_EQ(rs[1].mtime_ns, meta('f').mtime_ns);
}

TEST(RepairRecords, XattrsAreSetAndRemovedOneByOne) {
    auto mine = meta('f'), theirs = meta('f');
    mine.xattrs = {{"user.same", "1"}, {"user.changed", "new"}, {"user.added", "a"}};
    theirs.xattrs = {{"user.same", "1"}, {"user.changed", "old"}, {"system.posix_acl_access", "acl"}};
    Difference d{"f", mine, theirs, {"xattr ..."}};
    auto rs = repair_records(d, node("f", mine), {{"f", theirs}});
    EXPECT_EQ(ops(rs), (Strings{"repair f", "setxattr f user.added", "setxattr f user.changed",
                                "removexattr f system.posix_acl_access"}));
    EXPECT_EQ(rs[2].xattr_value, "new");
}

TEST(RepairRecords, ASymlinkOrDeviceIsMadeAnew) {
    auto mine = meta('l', 0777), theirs = meta('l', 0777);
    mine.target = "new";
    theirs.target = "old";
    Difference d{"l", mine, theirs, {"symlink target: ..."}};
    EXPECT_EQ(ops(repair_records(d, node("l", mine), {{"l", theirs}})), (Strings{"repair l", "unlink l", "symlink l->new"}));
    auto dev = meta('c', 0666), their_dev = meta('c', 0666);
    dev.rdev = 0x0103;
    their_dev.rdev = 0x0105;
    auto rs = repair_records(Difference{"n", dev, their_dev, {"device: ..."}}, node("n", dev), {{"n", their_dev}});
    EXPECT_EQ(ops(rs), (Strings{"repair n", "unlink n", "mknod n"}));
    EXPECT_EQ(rs[2].rdev, 0x0103u);
    EXPECT_EQ(rs[2].mode, S_IFCHR | 0666u);
}

TEST(RepairRecords, AnotherNameOfAFileIsLinkedToItsFirstName) {
    auto mine = meta('f'), theirs = meta('f');
    mine.nlink = 2;
    mine.link_group = "a/first";
    theirs.nlink = 1;
    Difference d{"b/second", mine, theirs, {"hard links: ..."}};
    EXPECT_EQ(ops(repair_records(d, node("second", mine), {{"b/second", theirs}})),
              (Strings{"repair b/second", "unlink b/second", "link a/first->b/second"}));
    // Missing on the replica: linked, not sent again.
    Difference missing{"b/second", mine, std::nullopt, {"missing on the replica"}};
    EXPECT_EQ(ops(repair_records(missing, node("second", mine), {})),
              (Strings{"repair b/second", "link a/first->b/second"}));
}

TEST(RepairRecords, AnEntryGoneFromTheSourceMeanwhileIsRemoved) {
    Difference d{"f", meta('f'), meta('f', 0600), {"mode: ..."}};
    EXPECT_EQ(ops(repair_records(d, std::nullopt, {{"f", meta('f', 0600)}})), (Strings{"repair f", "unlink f"}));
}

// A repair of a directory's mtime and of entries beneath it: the server may
// apply the records in several batches, so the directory's time is set after
// the entries that move it are made or removed, whatever the walk order.
TEST(RepairRecords, DirectoryTimesAreSetAfterTheEntriesBeneathThem) {
    std::vector<journal::Record> all;
    auto add = [&](const Difference& d, const std::optional<Node>& source,
                   const std::vector<std::pair<std::string, EntryMeta>>& replica) {
        for (auto& r : repair_records(d, source, replica)) all.push_back(std::move(r));
    };
    auto dir = meta('d', 0755);
    auto older = dir;
    older.mtime_ns -= 1'000'000'000;
    add(Difference{"sub", dir, older, {"mtime"}}, node("sub", dir), {{"sub", older}});
    add(Difference{"sub/extra", std::nullopt, meta('f'), {"extra on the replica"}}, std::nullopt, {{"sub/extra", meta('f')}});
    add(Difference{"sub/gone", meta('f'), std::nullopt, {"missing on the replica"}}, node("gone", meta('f')), {});
    directory_times_last(all);
    EXPECT_EQ(ops(all), (Strings{"repair sub", "repair sub/extra", "unlink sub/extra", "repair sub/gone", "write sub/gone",
                                 "close_write sub/gone", "setattr sub"}));
}

}  // namespace
}  // namespace iz::agent
