// The product's answer (include/replicator/wire/plaintext_bench.hpp): TLS
// throughout. Alone in its file so that the bench binaries, which define the
// function themselves, never pull it in.
#include "replicator/wire/plaintext_bench.hpp"

namespace iz::replicator {

std::string_view plaintext_bench_marker() { return {}; }

}  // namespace iz::replicator
