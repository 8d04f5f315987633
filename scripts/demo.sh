#!/usr/bin/env bash
# One command from a fresh Debian machine to intermezzo at work: installs
# the packages, builds, and runs the built-in default job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
demo=$(mktemp -d /tmp/intermezzo-demo.XXXXXX)
trap 'rm -rf "$demo"' EXIT
build/bin/iz-demo-journal "$demo/journal"
if [ -x build/bin/izlog ]; then
  build/bin/izlog -D "$demo/journal" --no-pager
else
  echo "demo journal written to $demo/journal (izlog not built yet)"
fi
