// Linked only into izwatch-plaintext-bench and izreplicate-plaintext-bench
// (include/replicator/wire/plaintext_bench.hpp): frames over plain TCP after
// the handshake, so that bench-replicate can price TLS.
#include "replicator/wire/plaintext_bench.hpp"

namespace iz::replicator {

std::string_view plaintext_bench_marker() { return "intermezzo-plaintext-bench-1"; }

}  // namespace iz::replicator
