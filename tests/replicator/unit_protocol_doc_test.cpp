// replicator/wire/PROTOCOL.md shows a handshake and a data exchange as hex.
// These tests decode exactly those bytes with the real decoder and check
// the proofs with the real authentication, so the document cannot drift
// from the code (nor the code from what peers already speak).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "replicator/wire/auth.hpp"
#include "replicator/wire/protocol.hpp"
#include "replicator/wire/tls.hpp"
#include "support/doc_hex.hpp"

namespace iz::replicator {
namespace {

using namespace proto;

const std::string kDoc = IZ_PROTOCOL_DOC;

// The frames of a block, each decoded; fails the test on any leftover or
// undecodable byte. `raw` receives each frame's bytes.
std::vector<Message> frames_of(const std::string& bytes, std::vector<std::string>& raw) {
    std::vector<Message> out;
    size_t at = 0;
    while (at < bytes.size()) {
        if (bytes.size() - at < kHeaderBytes) {
            ADD_FAILURE() << "a frame header cut short at byte " << at;
            break;
        }
        auto h = parse_header(std::string_view(bytes).substr(at, kHeaderBytes));
        if (!h) {
            ADD_FAILURE() << "byte " << at << ": " << h.error().message;
            break;
        }
        std::string frame = bytes.substr(at, kHeaderBytes + h->length);
        auto m = decode_frame(frame);
        if (!m) {
            ADD_FAILURE() << "byte " << at << ": " << m.error().message;
            break;
        }
        out.push_back(std::move(*m));
        raw.push_back(frame);
        at += frame.size();
    }
    return out;
}

// Each message encodes again to exactly the bytes it was decoded from.
void expect_encoded_as(const std::vector<Message>& msgs, const std::vector<std::string>& raw) {
    ASSERT_EQ(msgs.size(), raw.size());
    for (size_t i = 0; i < msgs.size(); ++i) {
        auto again = encode_frame(msgs[i]);
        ASSERT_TRUE(again);
        EXPECT_EQ(*again, raw[i]) << msg_type_name(type_of(msgs[i]));
    }
}

std::string repeated(unsigned char first, size_t times) {
    std::string s;
    for (size_t t = 0; t < times; ++t)
        for (unsigned char c = first; c < first + 16; ++c) s.push_back(static_cast<char>(c));
    return s;
}

TEST(ProtocolDoc, TheHandshakeDecodesAndItsProofsHoldForTheKeyShown) {
    std::vector<std::string> raw;
    auto msgs = frames_of(test::doc_hex(kDoc, "protocol-handshake"), raw);
    ASSERT_EQ(msgs.size(), 4u);
    auto* hello = std::get_if<Hello>(&msgs[0]);
    auto* challenge = std::get_if<Challenge>(&msgs[1]);
    auto* auth = std::get_if<Auth>(&msgs[2]);
    auto* welcome = std::get_if<Welcome>(&msgs[3]);
    ASSERT_TRUE(hello && challenge && auth && welcome);

    EXPECT_EQ(hello->min_version, kMinVersion);
    EXPECT_EQ(hello->max_version, kVersion);
    EXPECT_EQ(hello->agent_id, "laptop");
    EXPECT_EQ(hello->fileset, "home");
    EXPECT_EQ(hello->client_nonce, repeated(0xa0, 2));
    EXPECT_EQ(challenge->version, kVersion);
    EXPECT_EQ(challenge->server_nonce, repeated(0xb0, 2));
    EXPECT_EQ(welcome->durable_lsn, 41u);
    EXPECT_EQ(welcome->resume_lsn, 42u);
    EXPECT_EQ(welcome->server_host, "srv");

    SharedKey key;
    for (int i = 0; i < 32; ++i) key.bytes.push_back(static_cast<char>(i));
    EXPECT_EQ(challenge->server_proof, auth_proof(key, ProofRole::server, hello->client_nonce,
                                                  challenge->server_nonce, hello->agent_id, hello->fileset));
    EXPECT_EQ(auth->client_proof, auth_proof(key, ProofRole::client, hello->client_nonce, challenge->server_nonce,
                                             hello->agent_id, hello->fileset));

    expect_encoded_as(msgs, raw);
}

TEST(ProtocolDoc, TheDataExchangeDecodes) {
    std::vector<std::string> raw;
    auto msgs = frames_of(test::doc_hex(kDoc, "protocol-data"), raw);
    ASSERT_EQ(msgs.size(), 3u);
    auto* op = std::get_if<OpMsg>(&msgs[0]);
    auto* commit = std::get_if<Commit>(&msgs[1]);
    auto* ack = std::get_if<Ack>(&msgs[2]);
    ASSERT_TRUE(op && commit && ack);

    EXPECT_EQ(op->lsn, 43u);
    EXPECT_EQ(op->kind, OpKind::write);
    EXPECT_EQ(op->path, "docs/a.txt");
    EXPECT_EQ(op->mode, std::nullopt);
    EXPECT_EQ(op->mtime_ns, 1765000000500000000);
    EXPECT_EQ(op->size, 8192u);
    ASSERT_EQ(op->extents.size(), 1u);
    EXPECT_EQ(op->extents[0].offset, 0u);
    EXPECT_FALSE(op->extents[0].zstd);
    std::string data;
    ASSERT_TRUE(extent_data(op->extents[0], data));
    EXPECT_EQ(data, "hello");
    EXPECT_EQ(op->base, ContentBase::empty);
    EXPECT_FALSE(op->more);
    ASSERT_EQ(op->holes.size(), 1u);
    EXPECT_EQ(op->holes[0].offset, 4096u);
    EXPECT_EQ(op->holes[0].length, 4096u);
    EXPECT_EQ(op->seen, 17u);
    EXPECT_EQ(op->time_ns, 1765000000500000000);
    EXPECT_EQ(op->note, "");
    EXPECT_EQ(commit->lsn, 43u);
    EXPECT_EQ(ack->lsn, 43u);

    expect_encoded_as(msgs, raw);
}

TEST(ProtocolDoc, TheForwardingExchangeDecodes) {
    std::vector<std::string> raw;
    auto msgs = frames_of(test::doc_hex(kDoc, "protocol-forward"), raw);
    ASSERT_EQ(msgs.size(), 4u);
    auto* sub = std::get_if<Subscribe>(&msgs[0]);
    auto* fwd = std::get_if<Forward>(&msgs[1]);
    auto* head = std::get_if<HeadRequest>(&msgs[2]);
    auto* reply = std::get_if<HeadReply>(&msgs[3]);
    ASSERT_TRUE(sub && fwd && head && reply);
    EXPECT_EQ(sub->cursor, 7u);
    EXPECT_EQ(fwd->origin, "desk");
    EXPECT_EQ(fwd->origin_lsn, 12u);
    EXPECT_EQ(fwd->op.lsn, 8u);
    EXPECT_EQ(fwd->op.kind, OpKind::mkdir);
    EXPECT_EQ(fwd->op.path, "docs");
    EXPECT_EQ(fwd->op.mode, 040755u);
    EXPECT_EQ(fwd->op.uid, 1000u);
    EXPECT_EQ(fwd->op.gid, 1000u);
    EXPECT_EQ(fwd->op.mtime_ns, 1765000000000000000);
    EXPECT_EQ(fwd->op.parent_mtime_ns, 1765000000000000000);
    EXPECT_FALSE(fwd->op.more);
    EXPECT_EQ(fwd->op.seen, std::nullopt);
    EXPECT_EQ(fwd->op.time_ns, std::nullopt);
    EXPECT_EQ(head->id, 1u);
    EXPECT_EQ(reply->id, 1u);
    EXPECT_EQ(reply->lsn, 8u);
    expect_encoded_as(msgs, raw);
}

TEST(ProtocolDoc, TheSubscribeAllowedDecodes) {
    std::vector<std::string> raw;
    auto msgs = frames_of(test::doc_hex(kDoc, "protocol-subscribe-allowed"), raw);
    ASSERT_EQ(msgs.size(), 2u);
    auto* yes = std::get_if<SubscribeAllowed>(&msgs[0]);
    auto* sub = std::get_if<Subscribe>(&msgs[1]);
    ASSERT_TRUE(yes && sub);
    EXPECT_EQ(yes->fileset, "team");
    EXPECT_EQ(yes->message, "fileset 'team' is read-write again");
    EXPECT_EQ(sub->cursor, 9u);
    expect_encoded_as(msgs, raw);
}

TEST(ProtocolDoc, TheForwardAsRangesDecodes) {
    std::vector<std::string> raw;
    auto msgs = frames_of(test::doc_hex(kDoc, "protocol-forward-ranges"), raw);
    ASSERT_EQ(msgs.size(), 3u);
    auto* sub = std::get_if<SubscribeRanges>(&msgs[0]);
    auto* begin = std::get_if<Forward>(&msgs[1]);
    auto* end = std::get_if<Forward>(&msgs[2]);
    ASSERT_TRUE(sub && begin && end);
    EXPECT_EQ(sub->cursor, 7u);
    EXPECT_EQ(sub->whole_through, 0u);
    EXPECT_EQ(begin->origin, "desk");
    EXPECT_EQ(begin->origin_lsn, 14u);
    EXPECT_EQ(begin->op.lsn, 9u);
    EXPECT_EQ(begin->op.kind, OpKind::content_begin);
    EXPECT_EQ(begin->op.base, ContentBase::existing);
    EXPECT_EQ(begin->op.mode, 0100644u);
    ASSERT_EQ(begin->op.extents.size(), 1u);
    EXPECT_EQ(begin->op.extents[0].offset, 65536u);
    EXPECT_EQ(begin->op.extents[0].bytes, "hi");
    ASSERT_EQ(begin->op.holes.size(), 1u);
    EXPECT_EQ(begin->op.holes[0].offset, 65538u);
    EXPECT_EQ(begin->op.holes[0].length, 65534u);
    EXPECT_TRUE(begin->op.more);
    EXPECT_EQ(end->op.kind, OpKind::content_end);
    EXPECT_EQ(end->op.size, uint64_t{64} << 20);
    EXPECT_EQ(end->op.uid, 1000u);
    EXPECT_FALSE(end->op.more);
    for (size_t i = 0; i < msgs.size(); ++i) {
        auto again = encode_frame(msgs[i]);
        ASSERT_TRUE(again);
        EXPECT_EQ(*again, raw[i]) << msg_type_name(type_of(msgs[i]));
    }
}

TEST(ProtocolDoc, TheSubscribeRefusalDecodes) {
    std::vector<std::string> raw;
    auto msgs = frames_of(test::doc_hex(kDoc, "protocol-subscribe-refused"), raw);
    ASSERT_EQ(msgs.size(), 2u);
    auto* sub = std::get_if<Subscribe>(&msgs[0]);
    auto* no = std::get_if<SubscribeRefused>(&msgs[1]);
    ASSERT_TRUE(sub && no);
    EXPECT_EQ(sub->cursor, 0u);
    EXPECT_EQ(no->fileset, "team");
    EXPECT_EQ(no->message, "fileset 'team' is send-only for agent feeder");
    expect_encoded_as(msgs, raw);
}

// A forward's op is checked like an op from a shipper: data that breaks
// the rules makes the frame malformed.
TEST(ProtocolDoc, AForwardWithOverlappingExtentsIsMalformed) {
    Forward f;
    f.origin = "desk";
    f.op.lsn = 3;
    f.op.kind = OpKind::content_data;
    f.op.path = "a";
    f.op.extents.push_back(make_extent(0, "abcd", false));
    f.op.extents.push_back(make_extent(2, "ef", false));
    auto frame = encode_frame(f);
    ASSERT_TRUE(frame);
    auto back = decode_frame(*frame);
    ASSERT_FALSE(back);
    EXPECT_NE(back.error().message.find("overlap"), std::string::npos) << back.error().message;
}

TEST(ProtocolDoc, ThePskIdentityShownIsTheOneOfferedForTheExampleKey) {
    std::ifstream in(kDoc);
    std::stringstream text;
    text << in.rdbuf();
    const std::string doc = text.str();
    const std::string lead = "The psk identity of the example key below (`00 01 02 … 1f`):\n`";
    auto at = doc.find(lead);
    ASSERT_NE(at, std::string::npos) << "the document no longer shows the example key's PSK identity";
    at += lead.size();
    auto end = doc.find('`', at);
    ASSERT_NE(end, std::string::npos);
    SharedKey key;
    for (int i = 0; i < 32; ++i) key.bytes.push_back(static_cast<char>(i));
    EXPECT_EQ(doc.substr(at, end - at), psk_identity(key));
}

TEST(ProtocolDoc, TheKeptRejectionsExchangeDecodes) {
    std::vector<std::string> raw;
    auto msgs = frames_of(test::doc_hex(kDoc, "protocol-rejections"), raw);
    ASSERT_EQ(msgs.size(), 4u);
    auto* replay = std::get_if<RejectedReplay>(&msgs[0]);
    auto* rejected = std::get_if<RejectedMsg>(&msgs[1]);
    auto* replayed = std::get_if<RejectedReplayed>(&msgs[2]);
    auto* kept = std::get_if<RejectedKept>(&msgs[3]);
    ASSERT_TRUE(replay && rejected && replayed && kept);
    EXPECT_EQ(replay->id, 1u);
    EXPECT_EQ(rejected->lsn, 43u);
    EXPECT_EQ(rejected->path, "docs/a.txt");
    EXPECT_EQ(rejected->message, "Operation not permitted");
    EXPECT_EQ(replayed->id, 1u);
    EXPECT_EQ(replayed->count, 1u);
    EXPECT_EQ(kept->lsn, 43u);
    EXPECT_EQ(kept->path, "docs/a.txt");
    expect_encoded_as(msgs, raw);
}

}  // namespace
}  // namespace iz::replicator
