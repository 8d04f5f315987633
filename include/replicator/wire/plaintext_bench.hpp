#pragma once
// What bench-replicate measures TLS against: the same build with the frames
// carried over plain TCP once the TLS handshake is done.
//
// Empty in izwatch and izreplicate: the definition that is not empty lives
// in replicator/wire/plaintext_bench_on.cpp, compiled only into izwatch-plaintext-bench and
// izreplicate-plaintext-bench, which exist only when the build is configured
// with -DIZ_BENCH_PLAINTEXT=ON and are never installed. A link-time choice
// rather than an option or an environment variable: the product binaries hold
// no way to turn encryption off (a test checks that they do not carry the
// marker), and the handshake, the keys and every check stay the product's.
// OpenSSL 3.0 has no TLS 1.3 suite without encryption, so "TLS without
// encryption" is not available as a cipher choice.
//
// When not empty, both ends agree before any frame: the server sends the
// marker over TLS once the handshake is done, the client reads it over TLS
// and only then sends its hello; from there on both read and write the
// socket beneath. Each side sends nothing else until the other has consumed
// the TLS records, so no frame is left inside OpenSSL's buffers. A product
// end facing a bench end fails: the agent waits for a marker that never
// comes, the server reads TLS records where it expects frames.
#include <string_view>

namespace iz::replicator {

std::string_view plaintext_bench_marker();

// Runs `op` on the TLS stream, or on the socket beneath it in the bench
// binaries that carry frames in the clear. Both ends' read and write call
// sites go through it.
template <class Stream, class Op>
void on_stream(Stream& s, Op&& op) {
    if (plaintext_bench_marker().empty())
        op(s);
    else
        op(s.next_layer());
}

}  // namespace iz::replicator
