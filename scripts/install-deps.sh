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
  # The units' test boots systemd in a Debian container it makes.
  systemd-container debootstrap
)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine often runs apt at boot (unattended upgrades), and the
# demo and the tests may set up at once: wait for apt's locks instead of
# failing at the first. DPkg::Lock::Timeout covers dpkg's lock but not the
# package lists' lock `update` takes, hence the retries (10 minutes at most).
apt_waiting() {
  local try
  for try in $(seq 1 120); do
    $SUDO apt-get -o DPkg::Lock::Timeout=600 "$@" && return 0
    [ "$try" -lt 120 ] || return 1
    echo "apt-get $1 failed (another apt may hold its lock); trying again in 5 s" >&2
    sleep 5
  done
}
apt_waiting update -qq
apt_waiting install -y -qq --no-install-recommends "${packages[@]}"
