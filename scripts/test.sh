#!/usr/bin/env bash
# Builds intermezzo and runs the whole test suite (unit and integration
# tests; the integration tests mount loop devices and make network
# namespaces, so they need root).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${IZ_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure --timeout 900 -j"${IZ_TEST_JOBS:-2}"
