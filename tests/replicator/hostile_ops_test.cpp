// Authenticated clients sending hostile operations: escaping paths are
// refused and the connection is dropped before anything after the bad
// operation is applied; symlink tricks reach nothing and are rejected (or,
// content for the link itself, skipped) while the stream goes on; nothing
// outside the root is touched, and an honest client working at the same
// time is served in full.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <atomic>
#include <random>
#include <sstream>
#include <thread>

#include "hostile_server_harness.hpp"

namespace iz::test {
namespace {

namespace proto = replicator::proto;
using proto::OpKind;
using proto::OpMsg;

class HostileOps : public ::testing::Test {
protected:
    // A fresh authenticated connection for the attacker's own fileset.
    WireClient attacker(const std::string& fileset = "mfs") {
        auto c = server_.connect();
        auto w = c.handshake(server_.key, "mallory", fileset);
        EXPECT_TRUE(w) << w.error().message;
        return c;
    }
    // Sends `bad` followed by an innocent mkdir of `marker`: the connection
    // must be dropped with an Error naming the refusal, and the marker
    // never applied (operations are handled strictly in order).
    void expect_refused(WireClient& c, const proto::Message& bad, const std::string& marker = "after") {
        auto frame = *proto::encode_frame(bad) +
                     *proto::encode_frame(OpMsg{.lsn = 999, .kind = OpKind::mkdir, .path = marker, .mode = 040755u});
        c.send_raw(frame);
        std::string why;
        EXPECT_TRUE(c.wait_closed(5s, &why));
        EXPECT_NE(why.find("refused"), std::string::npos) << why;
        EXPECT_FALSE(fs::exists(fs::symlink_status(server_.fileset_root("mfs") / marker)));
    }
    // Plants links that point outside the root (legitimate operations:
    // a symlink's text is data) and has them acknowledged.
    void plant_links() {
        auto c = attacker();
        ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::symlink, .path = "esc", .target = server_.canary().string()}));
        ASSERT_TRUE(c.send(OpMsg{.lsn = 2, .kind = OpKind::symlink, .path = "escf", .target = (server_.canary() / "file").string()}));
        ASSERT_TRUE(c.send(OpMsg{.lsn = 3, .kind = OpKind::symlink, .path = "escr", .target = "../../canary"}));
        ASSERT_TRUE(c.send(proto::Commit{3}));
        auto ack = c.receive();
        ASSERT_TRUE(ack) << ack.error().message;
        ASSERT_TRUE(std::holds_alternative<proto::Ack>(*ack));
        ASSERT_TRUE(fs::is_symlink(server_.fileset_root("mfs") / "escr"));
    }

    ServerHarness server_;
};

TEST_F(HostileOps, DotDotPathRefused) {
    auto c = attacker();
    expect_refused(c, OpMsg{.lsn = 1, .kind = OpKind::create, .path = "../x", .mode = 0100666u});
    EXPECT_FALSE(fs::exists(server_.root() / "x"));
    EXPECT_TRUE(server_.eventually_logged("refused create '../x'")) << server_.all_logs();
    auto c2 = attacker();
    expect_refused(c2, OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "a/../../../canary/new", .mode = 040777u});
}

TEST_F(HostileOps, AbsolutePathRefused) {
    const bool etc_x_existed = fs::exists(fs::symlink_status("/etc/x"));
    auto c = attacker();
    expect_refused(c, OpMsg{.lsn = 1, .kind = OpKind::create, .path = "/etc/x", .mode = 0100666u});
    EXPECT_EQ(fs::exists(fs::symlink_status("/etc/x")), etc_x_existed);
    auto c2 = attacker();
    OpMsg w{.lsn = 1, .kind = OpKind::write, .path = (server_.canary() / "file").string()};
    w.extents = {proto::make_extent(0, "PWNED", false)};
    expect_refused(c2, w);
}

// Replies up to the Ack of `lsn` (none: an empty list and a failure).
std::vector<proto::Message> until_ack(WireClient& c, uint64_t lsn, const ServerHarness& server) {
    std::vector<proto::Message> got;
    for (;;) {
        auto m = c.receive(10s);
        if (!m) {
            ADD_FAILURE() << "no Ack of LSN " << lsn << ": " << m.error().message << "\n" << server.all_logs();
            return {};
        }
        got.push_back(*m);
        if (auto* a = std::get_if<proto::Ack>(&*m); a && a->lsn >= lsn) return got;
    }
}

std::vector<proto::RejectedMsg> rejections(const std::vector<proto::Message>& got) {
    std::vector<proto::RejectedMsg> out;
    for (auto& m : got)
        if (auto* r = std::get_if<proto::RejectedMsg>(&m)) out.push_back(*r);
    return out;
}

// Operations on paths through symlinks planted to point outside the root,
// and content for a name that is such a symlink: nothing is reached through
// them. They are no reason to drop the connection (the replica holds those
// links; an honest agent can meet one too, and a dropped connection has the
// agent send the same record again for ever): each is rejected with the
// reason, and what follows applied.
TEST_F(HostileOps, OperationsThroughASymlinkOutsideReachNothingAndTheStreamGoesOn) {
    plant_links();
    OpMsg through_dir{.lsn = 10, .kind = OpKind::write, .path = "esc/file"};
    through_dir.extents = {proto::make_extent(0, "PWNED", false)};
    OpMsg final_link{.lsn = 11, .kind = OpKind::write, .path = "escf"};
    final_link.extents = {proto::make_extent(0, "PWNED", false)};
    const std::string through = "goes through a symlink, which is never followed";
    const std::string onto = "the replica holds a symlink there, which content never replaces";
    struct Attack {
        proto::Message op;
        std::string says;
    };
    std::vector<Attack> attacks = {
        {through_dir, through},
        {final_link, onto},
        {OpMsg{.lsn = 12, .kind = OpKind::truncate, .path = "escf", .size = 0}, onto},
        {OpMsg{.lsn = 13, .kind = OpKind::create, .path = "escr/new", .mode = 0100644u}, through},
        {OpMsg{.lsn = 14, .kind = OpKind::content_begin, .path = "esc/file", .extents = {proto::make_extent(0, "PWNED", false)}},
         through},
        {OpMsg{.lsn = 15, .kind = OpKind::setattr, .path = "esc/file", .mode = 0100777u}, through},
        {OpMsg{.lsn = 16, .kind = OpKind::unlink, .path = "esc/file"}, through},
        {OpMsg{.lsn = 17, .kind = OpKind::rename, .path = "esc/file", .target = "stolen"}, through},
        {OpMsg{.lsn = 18, .kind = OpKind::link, .path = "esc/file", .target = "stolen"}, through},
        {OpMsg{.lsn = 19, .kind = OpKind::setxattr, .path = "escr/file", .xattr_name = "user.x", .xattr_value = "y"}, through},
        {OpMsg{.lsn = 20, .kind = OpKind::content_begin, .path = "escf", .extents = {proto::make_extent(0, "PWNED", false)}},
         onto},
    };
    auto root = server_.fileset_root("mfs");
    for (size_t i = 0; i < attacks.size(); ++i) {
        auto& a = attacks[i];
        auto& op = std::get<OpMsg>(a.op);
        // Past every LSN applied so far: one at or below would be a replay,
        // where a path through a symlink is no fault (skipped, not rejected).
        op.lsn = 10 + i * 200;
        std::string marker = fmt::format("after{}", i);
        auto c = attacker();
        ASSERT_TRUE(c.send(a.op));
        ASSERT_TRUE(c.send(OpMsg{.lsn = op.lsn + 100, .kind = OpKind::mkdir, .path = marker, .mode = 040755u}));
        ASSERT_TRUE(c.send(proto::Commit{op.lsn + 100}));
        auto got = until_ack(c, op.lsn + 100, server_);
        auto rejected = rejections(got);
        ASSERT_EQ(rejected.size(), 1u) << op.path << "\n" << server_.all_logs();
        EXPECT_EQ(rejected[0].lsn, op.lsn);
        EXPECT_EQ(rejected[0].path, op.path);
        EXPECT_NE(rejected[0].message.find(a.says), std::string::npos) << rejected[0].message;
        EXPECT_TRUE(fs::is_directory(root / marker)) << "what followed " << op.path << " was not applied";
    }
    EXPECT_FALSE(fs::exists(fs::symlink_status(root / "stolen")));
    EXPECT_TRUE(fs::is_symlink(root / "escf"));
    EXPECT_TRUE(server_.eventually_logged("cannot apply write 'esc/file' at LSN 10: open parent directory of 'esc/file': "
                                          "path 'esc' goes through a symlink"))
        << server_.all_logs();
}

// A name that leaves the root is no honest record: the connection goes.
TEST_F(HostileOps, EscapingTargetOfARenameRefused) {
    plant_links();
    auto c = attacker();
    expect_refused(c, OpMsg{.lsn = 20, .kind = OpKind::rename, .path = "escf", .target = "../escf"});
    EXPECT_TRUE(fs::is_symlink(server_.fileset_root("mfs") / "escf"));
}

// Block hashes of a file through such a symlink: nothing is described (no
// hash of anything outside), and the connection stays.
TEST_F(HostileOps, BlockHashesThroughASymlinkDescribeNothing) {
    plant_links();
    auto c = attacker();
    ASSERT_TRUE(c.send(proto::HashRequest{.id = 7, .path = "esc/file"}));
    auto r = c.receive();
    ASSERT_TRUE(r) << r.error().message << "\n" << server_.all_logs();
    auto* reply = std::get_if<proto::HashReply>(&*r);
    ASSERT_NE(reply, nullptr) << proto::msg_type_name(proto::type_of(*r));
    EXPECT_EQ(reply->id, 7u);
    EXPECT_FALSE(reply->exists);
    EXPECT_TRUE(reply->hashes.empty());
    ASSERT_TRUE(c.send(proto::Ping{8}));
    auto pong = c.receive();
    ASSERT_TRUE(pong) << pong.error().message;
    EXPECT_TRUE(std::holds_alternative<proto::Pong>(*pong));
}

// The agent's side of it: a record through a symlink the replica holds
// where the source has a directory, in the middle of honest work. The
// connection was dropped at it, the agent sent it again on the next one,
// and nothing after it ever arrived. Now it is rejected (reported once) and
// every honest record after it arrives, on the same connection.
TEST_F(HostileOps, HonestRecordsAfterOneThroughASymlinkArrive) {
    auto root = server_.fileset_root("mfs");
    auto c = attacker();
    ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = "sub", .mode = 040755u}));
    ASSERT_TRUE(c.send(proto::Commit{1}));
    ASSERT_TRUE(!until_ack(c, 1, server_).empty());
    // On the server, the directory becomes a link outside.
    fs::remove(root / "sub");
    fs::create_symlink(server_.canary() / "dir", root / "sub");
    uint64_t lsn = 1;
    std::vector<std::string> honest;
    for (int i = 0; i < 5; ++i) {
        std::string path = fmt::format("before{}", i);
        ++lsn;
        ASSERT_TRUE(c.send(OpMsg{.lsn = lsn, .kind = OpKind::content_begin, .path = path,
                                 .extents = {proto::make_extent(0, path)}}));
        ASSERT_TRUE(c.send(OpMsg{.lsn = lsn, .kind = OpKind::content_end, .path = path, .size = path.size()}));
        honest.push_back(path);
    }
    const uint64_t bad = ++lsn;
    ASSERT_TRUE(c.send(OpMsg{.lsn = bad, .kind = OpKind::content_begin, .path = "sub/file",
                             .extents = {proto::make_extent(0, "PWNED")}}));
    for (uint64_t part = 0; part < 4; ++part)
        ASSERT_TRUE(c.send(OpMsg{.lsn = bad, .kind = OpKind::content_data, .path = "sub/file",
                                 .extents = {proto::make_extent(5 + 4 * part, "MORE")}}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = bad, .kind = OpKind::content_end, .path = "sub/file", .size = 21}));
    for (int i = 0; i < 5; ++i) {
        std::string path = fmt::format("after{}", i);
        ++lsn;
        ASSERT_TRUE(c.send(OpMsg{.lsn = lsn, .kind = OpKind::content_begin, .path = path,
                                 .extents = {proto::make_extent(0, path)}}));
        ASSERT_TRUE(c.send(OpMsg{.lsn = lsn, .kind = OpKind::content_end, .path = path, .size = path.size()}));
        honest.push_back(path);
    }
    ASSERT_TRUE(c.send(proto::Commit{lsn}));
    auto got = until_ack(c, lsn, server_);
    ASSERT_FALSE(got.empty());
    auto rejected = rejections(got);
    ASSERT_EQ(rejected.size(), 1u) << server_.all_logs();
    EXPECT_EQ(rejected[0].lsn, bad);
    EXPECT_EQ(rejected[0].path, "sub/file");
    for (auto& path : honest) EXPECT_EQ(read_file(root / path), path);
    EXPECT_FALSE(fs::exists(server_.canary() / "dir/file"));
    EXPECT_TRUE(fs::is_symlink(root / "sub"));
    EXPECT_EQ(listing(root).find(".iz-tmp"), std::string::npos) << "a temporary was left behind";
    // One line says why, not one per part.
    ASSERT_TRUE(server_.eventually_logged("cannot apply content_begin 'sub/file'")) << server_.all_logs();
    auto logs = server_.all_logs();
    std::istringstream in(logs);
    size_t lines = 0;
    for (std::string line; std::getline(in, line);) lines += line.find("'sub/file'") != std::string::npos;
    EXPECT_EQ(lines, 1u) << logs;
}

// Not every operation refused is an attack: a source may hold the name the
// server keeps its state under (here inside the fileset). Dropping the
// connection for it made the agent send it again for ever and stopped the
// fileset; it is rejected instead, the agent told, and what follows applied
// on the same connection.
TEST(HostileRejected, ANameTheServerKeepsForItselfIsRejectedAndTheStreamGoesOn) {
    ServerHarness server([](replicator::ServerOptions& o) { o.state_dir = o.root / "mfs" / ".state"; });
    auto c = server.connect();
    auto w = c.handshake(server.key, "alice", "mfs");
    ASSERT_TRUE(w) << w.error().message;
    ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::mkdir, .path = ".state/x", .mode = 040755u}));
    ASSERT_TRUE(c.send(OpMsg{.lsn = 2, .kind = OpKind::mkdir, .path = "after", .mode = 040755u}));
    ASSERT_TRUE(c.send(proto::Commit{2}));
    auto first = c.receive();
    ASSERT_TRUE(first) << first.error().message << "\n" << server.all_logs();
    auto* rejected = std::get_if<proto::RejectedMsg>(&*first);
    ASSERT_NE(rejected, nullptr) << proto::msg_type_name(proto::type_of(*first));
    EXPECT_EQ(rejected->lsn, 1u);
    EXPECT_EQ(rejected->path, ".state/x");
    EXPECT_NE(rejected->message.find("its own state"), std::string::npos) << rejected->message;
    auto ack = c.receive();
    ASSERT_TRUE(ack) << ack.error().message << "\n" << server.all_logs();
    ASSERT_TRUE(std::holds_alternative<proto::Ack>(*ack));
    EXPECT_EQ(std::get<proto::Ack>(*ack).lsn, 2u);
    EXPECT_TRUE(fs::is_directory(server.fileset_root("mfs") / "after"));
    EXPECT_FALSE(fs::exists(server.fileset_root("mfs") / ".state/x"));
    EXPECT_TRUE(server.eventually_logged("cannot apply mkdir '.state/x'")) << server.all_logs();
}

// A verification's tree request for a path that leaves the root, or goes
// through a symlink planted to point outside, is answered with the reason
// and nothing of outside: no entry, no hash. The connection stays (the
// agent reports the refusal), and an honest request on it is answered.
TEST_F(HostileOps, TreeRequestsOutsideTheRootAreRefusedWithTheReason) {
    plant_links();
    auto c = attacker();
    uint64_t id = 0;
    for (std::string path : {"../canary", "/etc", "esc", "esc/dir", "escr/file", "escf"}) {
        ASSERT_TRUE(c.send(proto::TreeRequest{.id = ++id, .path = path, .fresh = true, .list = true}));
        auto r = c.receive();
        ASSERT_TRUE(r) << path << ": " << r.error().message;
        auto* reply = std::get_if<proto::TreeReply>(&*r);
        ASSERT_NE(reply, nullptr) << path;
        EXPECT_EQ(reply->id, id);
        if (path == "esc" || path == "escf") {
            // The symlink itself, beneath the root, is what is described.
            EXPECT_TRUE(reply->error.empty()) << path << ": " << reply->error;
            EXPECT_TRUE(reply->found);
            EXPECT_EQ(reply->self.meta.substr(0, 1), "l") << path;
            EXPECT_TRUE(reply->children.empty());
        } else {
            EXPECT_FALSE(reply->error.empty()) << path << " was walked";
            EXPECT_FALSE(reply->found) << path;
            EXPECT_TRUE(reply->children.empty()) << path;
        }
    }
    ASSERT_TRUE(c.send(proto::TreeRequest{.id = 100, .path = "", .fresh = true, .list = true}));
    auto r = c.receive();
    ASSERT_TRUE(r) << r.error().message;
    auto& root = std::get<proto::TreeReply>(*r);
    EXPECT_TRUE(root.found);
    EXPECT_EQ(root.children.size(), 3u);  // esc, escf, escr: the links, not what they point at
}

TEST_F(HostileOps, HalfSentContentOfADroppedConnectionIsDiscarded) {
    {
        auto c = attacker();
        ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::content_begin, .path = "f",
                                 .extents = {proto::make_extent(0, "v1", false)}}));
        ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::content_end, .path = "f", .size = 2}));
        ASSERT_TRUE(c.send(proto::Commit{1}));
        ASSERT_TRUE(c.receive());
        ASSERT_TRUE(c.send(OpMsg{.lsn = 2, .kind = OpKind::content_begin, .path = "f",
                                 .extents = {proto::make_extent(0, "half of v2", false)}}));
    }
    // Disconnected; a new connection tries to finish what the old one began.
    auto c2 = attacker();
    expect_refused(c2, OpMsg{.lsn = 2, .kind = OpKind::content_end, .path = "f", .size = 10});
    EXPECT_EQ(read_file(server_.fileset_root("mfs") / "f"), "v1");
    EXPECT_EQ(listing(server_.fileset_root("mfs")), "f\n") << "a temporary was left behind";
}

// Data frames that reach past any file size or overlap themselves: the
// connection is dropped with the reason, and neither the bad frame nor
// anything after it touches the file.
TEST_F(HostileOps, HolesPastAnySizeAndOverlappingExtentsAreRefused) {
    auto root = server_.fileset_root("mfs");
    {
        auto c = attacker();
        ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::content_begin, .path = "f",
                                 .extents = {proto::make_extent(0, "original", false)}}));
        ASSERT_TRUE(c.send(OpMsg{.lsn = 1, .kind = OpKind::content_end, .path = "f", .size = 8}));
        ASSERT_TRUE(c.send(proto::Commit{1}));
        ASSERT_TRUE(c.receive());
    }
    auto before = manifest(root);
    auto write = [](std::vector<proto::Extent> extents, std::vector<proto::Hole> holes) {
        return OpMsg{.lsn = 2, .kind = OpKind::write, .path = "f", .size = 8, .extents = std::move(extents),
                     .holes = std::move(holes)};
    };
    struct Attack {
        OpMsg op;
        const char* says;
    };
    std::vector<Attack> attacks = {
        {write({}, {{1ull << 63, 1ull << 20}}), "reaches past"},
        {write({proto::make_extent(0, "PWNED", false)}, {{4096, ~0ull - 4095}}), "reaches past"},
        {write({proto::make_extent(0, "PWNED", false), proto::make_extent(3, "NED!!", false)}, {}), "overlap"},
        {write({proto::make_extent(0, "PWNED", false)}, {{2, 4096}}), "overlap"},
        {OpMsg{.lsn = 2, .kind = OpKind::content_begin, .path = "f", .base = proto::ContentBase::existing,
               .holes = {{0, 4}, {2, 4}}},
         "overlap"},
    };
    for (auto& a : attacks) {
        auto c = attacker();
        auto frame = *proto::encode_frame(a.op) +
                     *proto::encode_frame(OpMsg{.lsn = 999, .kind = OpKind::mkdir, .path = "after", .mode = 040755u});
        c.send_raw(frame);
        std::string why;
        EXPECT_TRUE(c.wait_closed(5s, &why));
        EXPECT_NE(why.find(a.says), std::string::npos) << why;
        EXPECT_EQ(manifest(root), before) << why;
    }
    EXPECT_EQ(read_file(root / "f"), "original");
}

// The attacks the hostile threads cycle through while an honest client works.
void one_attack(const ServerHarness& server, int kind, int n, std::atomic<int>& dropped) {
    auto c = server.connect();
    std::string fileset = fmt::format("m{}", n % 4);
    switch (kind % 6) {
        case 0: {  // garbage
            std::mt19937 rng(static_cast<unsigned>(n));
            std::string junk(512, '\0');
            for (auto& ch : junk) ch = static_cast<char>(rng());
            c.send_raw(junk);
            break;
        }
        case 1: {  // a header over the limit
            std::string h;
            proto::put_header(proto::FrameHeader{proto::kMagic, proto::MsgType::hello, 0, proto::kMaxFrameBody + 1}, h);
            c.send_raw(h);
            break;
        }
        case 2: {  // the wrong key
            replicator::SharedKey wrong{std::string(replicator::kKeyBytes, '\x02')};
            std::string nonce(proto::kNonceBytes, 'w');
            c.send(proto::Hello{proto::kVersion, proto::kVersion, "mallory", fileset, nonce});
            auto ch = c.receive();
            if (ch && std::holds_alternative<proto::Challenge>(*ch))
                c.send(proto::Auth{replicator::auth_proof(wrong, replicator::ProofRole::client, nonce,
                                                          std::get<proto::Challenge>(*ch).server_nonce, "mallory", fileset)});
            break;
        }
        default: {  // authenticated, then an escaping path
            if (!c.handshake(server.key, fmt::format("mallory{}", n), fileset)) break;
            static const char* paths[] = {"../../canary/file", "/etc/x", "a/../../x"};
            c.send(OpMsg{.lsn = 1, .kind = OpKind::create, .path = paths[n % 3], .mode = 0100666u});
            break;
        }
    }
    if (c.wait_closed(5s)) ++dropped;
}

TEST_F(HostileOps, HonestClientIsServedWhileOthersAttack) {
    std::atomic<bool> done{false};
    std::atomic<int> attacks{0}, dropped{0};
    std::vector<std::thread> attackers;
    for (int t = 0; t < 3; ++t) {
        attackers.emplace_back([&, t] {
            for (int n = t * 1000; !done; ++n) {
                one_attack(server_, n, n, dropped);
                ++attacks;
            }
        });
    }

    auto c = server_.connect();
    auto w = c.handshake(server_.key, "alice", "docs");
    ASSERT_TRUE(w) << w.error().message;
    uint64_t lsn = 0;
    std::vector<uint64_t> acks;
    for (int batch = 0; batch < 12; ++batch) {
        ASSERT_TRUE(c.send(OpMsg{.lsn = ++lsn, .kind = OpKind::mkdir, .path = fmt::format("d{}", batch), .mode = 040750u}));
        for (int i = 0; i < 20; ++i) {
            std::string path = fmt::format("d{}/f{}", batch, i);
            std::string data = fmt::format("batch {} file {} ", batch, i) + std::string(static_cast<size_t>(i) * 97, 'x');
            ++lsn;
            ASSERT_TRUE(c.send(OpMsg{.lsn = lsn, .kind = OpKind::content_begin, .path = path,
                                     .extents = {proto::make_extent(0, data)}}));
            ASSERT_TRUE(c.send(OpMsg{.lsn = lsn, .kind = OpKind::content_end, .path = path, .mode = 0100640u,
                                     .size = data.size()}));
        }
        ASSERT_TRUE(c.send(proto::Commit{lsn}));
        auto ack = c.receive(10s);
        ASSERT_TRUE(ack) << ack.error().message;
        ASSERT_TRUE(std::holds_alternative<proto::Ack>(*ack)) << "batch " << batch;
        acks.push_back(std::get<proto::Ack>(*ack).lsn);
        EXPECT_EQ(acks.back(), lsn);
    }
    // Let the attackers get a few more rounds in, then stop them.
    wait_until([&] { return attacks >= 30; }, 10s);
    done = true;
    for (auto& t : attackers) t.join();

    EXPECT_EQ(acks.size(), 12u);
    EXPECT_GE(attacks.load(), 30);
    EXPECT_EQ(dropped.load(), attacks.load()) << "an attacking connection was not dropped";
    for (int batch = 0; batch < 12; ++batch)
        for (int i = 0; i < 20; ++i) {
            auto p = server_.fileset_root("docs") / fmt::format("d{}/f{}", batch, i);
            ASSERT_EQ(read_file(p), fmt::format("batch {} file {} ", batch, i) + std::string(static_cast<size_t>(i) * 97, 'x'));
        }
    EXPECT_EQ(listing(server_.root()).find("canary"), std::string::npos);
    // Whatever the attackers managed to create, it is all beneath the root.
    EXPECT_FALSE(fs::exists(server_.base() / "x"));
    // The honest session is intact: it still answers.
    ASSERT_TRUE(c.send(proto::Ping{5}));
    auto pong = c.receive();
    ASSERT_TRUE(pong) << pong.error().message;
    EXPECT_TRUE(std::holds_alternative<proto::Pong>(*pong));
}

}  // namespace
}  // namespace iz::test
