// What plan_window decides to send for windows of journal records: every
// rule of ship_plan.hpp, and the sequences where a rule used to drop
// something the server needed.
#include <gtest/gtest.h>

#include "ship_plan.hpp"

namespace iz::replicator {
namespace {

using journal::Op;
using journal::Record;

Record rec(Op op, std::string path, std::string target = {}) {
    Record r;
    r.op = op;
    r.path = std::move(path);
    r.target = std::move(target);
    return r;
}

Record write(std::string path, std::vector<journal::ByteRange> ranges) {
    auto r = rec(Op::write, std::move(path));
    r.ranges = std::move(ranges);
    return r;
}

std::vector<ShipAction> actions(const std::vector<Record>& window) {
    std::vector<ShipAction> out;
    for (auto& p : plan_window(window)) out.push_back(p.action);
    return out;
}

using A = ShipAction;

TEST(ShipPlan, NewFileTravelsAsItsWholeContentWithoutItsCreate) {
    EXPECT_EQ(actions({rec(Op::create, "f"), write("f", {{0, 10}}), rec(Op::close_write, "f")}),
              (std::vector{A::skip, A::skip, A::content_full}));
}

TEST(ShipPlan, CreateStaysWhenAnAttributeChangeFollowsIt) {
    EXPECT_EQ(actions({rec(Op::create, "f"), rec(Op::setxattr, "f"), write("f", {{0, 10}}), rec(Op::close_write, "f")}),
              (std::vector{A::send, A::send, A::skip, A::content_full}));
}

TEST(ShipPlan, CreateSkippedByAnEarlyCloseComesBackWhenAnXattrFollowsThatClose) {
    // The first close alone would make the create redundant; the xattr
    // after it needs the file on the server before the second content.
    auto got = actions({rec(Op::create, "f"), write("f", {{0, 10}}), rec(Op::close_write, "f"), rec(Op::setxattr, "f"),
                        write("f", {{5, 10}}), rec(Op::close_write, "f")});
    EXPECT_EQ(got, (std::vector{A::send, A::skip, A::skip, A::send, A::skip, A::content_full}));
}

TEST(ShipPlan, RangeWritesMergeAcrossClosesIntoTheLast) {
    auto plan = plan_window({write("f", {{0, 4}}), rec(Op::close_write, "f"), write("f", {{100, 4}}),
                             rec(Op::close_write, "f")});
    ASSERT_EQ(plan.size(), 4u);
    EXPECT_EQ(plan[0].action, A::skip);
    EXPECT_EQ(plan[1].action, A::skip);
    EXPECT_EQ(plan[2].action, A::send);
    EXPECT_EQ(plan[2].ranges, (std::vector<journal::ByteRange>{{0, 4}, {100, 4}}));
    EXPECT_EQ(plan[3].action, A::close_attrs);
}

TEST(ShipPlan, FileBornAndGoneInTheWindowSendsOnlyItsUnlink) {
    EXPECT_EQ(actions({rec(Op::create, "tmp"), write("tmp", {{0, 10}}), rec(Op::close_write, "tmp"),
                       rec(Op::setattr, "tmp"), rec(Op::unlink, "tmp")}),
              (std::vector{A::skip, A::skip, A::skip, A::skip, A::send}));
}

TEST(ShipPlan, LinkedFileIsNotDroppedWithItsFirstName) {
    // Another name keeps the inode: its data must travel.
    auto got = actions({rec(Op::create, "a"), write("a", {{0, 10}}), rec(Op::close_write, "a"), rec(Op::link, "a", "b"),
                        rec(Op::unlink, "a")});
    EXPECT_EQ(got[2], A::content_full);
    EXPECT_EQ(got[3], A::send);
    EXPECT_EQ(got[4], A::send);
}

TEST(ShipPlan, WriteWithUnknownRangesSendsDifferingBlocks) {
    EXPECT_EQ(actions({write("f", {})}), (std::vector{A::write_delta}));
    EXPECT_EQ(actions({write("f", {}), rec(Op::close_write, "f")}), (std::vector{A::skip, A::content_delta}));
}

TEST(ShipPlan, AgentEventsSendNothing) {
    EXPECT_EQ(actions({rec(Op::start, ""), rec(Op::overflow, ""), rec(Op::rescan, ""), rec(Op::stop, "")}),
              (std::vector{A::skip, A::skip, A::skip, A::skip}));
}

// "a.txt" sorts between "a" and "a/x": a rename of the directory "a" still
// ends what the window knew of "a/x". Otherwise the unlink of the file that
// later arrives there under that name was taken for the end of the file
// created first, which had moved on to "b/x", and its content never
// travelled.
TEST(ShipPlan, ARenamedDirectoryTakesItsFilesAlongBesideSimilarNames) {
    std::vector<Record> window{rec(Op::create, "a.txt"),      rec(Op::create, "a/x"),  write("a/x", {{0, 10}}),
                               rec(Op::close_write, "a/x"),   rec(Op::rename, "a", "b"), rec(Op::rename, "c", "a"),
                               rec(Op::unlink, "a/x")};
    auto got = actions(window);
    EXPECT_EQ(got[3], A::content_full) << "the file now at b/x lost its content";
}

std::vector<bool> boundaries(const std::vector<Record>& window) {
    std::vector<bool> out;
    for (auto& p : plan_window(window)) out.push_back(p.boundary);
    return out;
}

// A server that resumed after the create (or a write) of a file whose
// content travels at its close was sent that close alone in the next plan,
// as a close without its create: it set only the size, and the file the
// create should have made was left empty, with the mode it was made with.
// Commits and resume points never fall inside such a span.
TEST(ShipPlan, NoServerResumesBetweenASkippedRecordAndItsCarrier) {
    std::vector<Record> window{rec(Op::create, "f"),      write("f", {{0, 10}}), write("f", {{10, 10}}),
                               rec(Op::close_write, "f"), rec(Op::setattr, "f"), rec(Op::rename, "f", "g")};
    EXPECT_EQ(actions(window), (std::vector{A::skip, A::skip, A::skip, A::content_full, A::send, A::send}));
    EXPECT_EQ(boundaries(window), (std::vector{false, false, false, true, true, true}));
}

TEST(ShipPlan, WhatIsSentInsideASpanIsNoResumePoint) {
    // The first write travels merged into the last: the mkdir sent between
    // them must not become the point a server resumes after.
    std::vector<Record> window{write("log", {{0, 4}}), rec(Op::mkdir, "d"), write("log", {{4, 4}}), rec(Op::mkdir, "e")};
    EXPECT_EQ(actions(window), (std::vector{A::skip, A::send, A::send, A::send}));
    EXPECT_EQ(boundaries(window), (std::vector{false, false, true, true}));
    // Carried on by a close's content: the span runs to that close.
    std::vector<Record> carried{rec(Op::create, "f"), write("f", {{0, 4}}), rec(Op::mkdir, "d"), write("f", {{4, 4}}),
                                rec(Op::close_write, "f")};
    EXPECT_EQ(boundaries(carried), (std::vector{false, false, false, false, true}));
}

TEST(ShipPlan, AFileBornAndGoneOpensNoSpan) {
    // Resumed anywhere in it, the file's records find nothing to read and
    // its unlink removes whatever is there: nothing is lost.
    std::vector<Record> window{rec(Op::create, "tmp"), write("tmp", {{0, 10}}), rec(Op::mkdir, "d"),
                               rec(Op::close_write, "tmp"), rec(Op::unlink, "tmp")};
    EXPECT_EQ(boundaries(window), (std::vector{true, true, true, true, true}));
}

}  // namespace
}  // namespace iz::replicator
