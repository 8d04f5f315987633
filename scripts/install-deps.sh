#!/usr/bin/env bash
# Installs every Debian package intermezzo needs to build, test and benchmark.
set -euo pipefail
packages=(
  build-essential cmake pkg-config git
  clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
  liburing-dev libcereal-dev libboost-dev libboost-system-dev
  libgtest-dev libgmock-dev libxxhash-dev libzstd-dev libssl-dev
  libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev libsystemd-dev
  e2fsprogs xfsprogs util-linux iproute2 rsync less
  scdoc lintian
  # hardening-check, which the package test runs on the installed programs.
  devscripts
  # The metrics' tests scrape both daemons with a real Prometheus, query it
  # and lint scrapes with promtool (both in the prometheus package).
  prometheus curl
  # The wiretap test captures the traffic between two namespaces.
  tcpdump
)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}"
