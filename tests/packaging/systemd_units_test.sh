#!/usr/bin/env bash
# Both units as the Debian package installs them, under a real systemd: a
# Debian 12 container booted with systemd-nspawn (on this machine's kernel,
# so fanotify, eBPF and the loop-mounted ext4 and XFS are the real ones),
# the package installed in it with dpkg. It checks what service_notify_tests
# can only check against a stand-in socket, and what the units' hardening
# must still allow:
#   - each unit becomes active only when its daemon said READY=1 (systemd's
#     own log orders the notification before the start -> running change),
#     and StatusText is the daemon's status line (fanotify+ebpf: capture and
#     its eBPF programs attached under the unit's capability set);
#   - a file written in a watched directory on ext4 and on XFS reaches the
#     replica, byte for byte;
#   - `systemctl reload izreplicate` reads the agents file again: a fileset
#     it refused is accepted after the file allows it;
#   - `systemctl stop` ends all three cleanly: exit status 0, result
#     success, nothing killed, no process left;
#   - a broken setting (a key file that does not exist) fails the start of
#     either unit, and its journal holds the daemon's message naming the
#     file.
#
# The container's root (debootstrap, about 4 minutes the first time) and
# the packages the package depends on (apt, when its Depends: change) are
# cached in IZ_SYSTEMD_TEST_CACHE (default /var/cache/intermezzo/systemd-test);
# the root is booted with --volatile=overlay, so a run changes nothing in it.
# Everything made (the container, mounts, loop devices, images) is removed
# on the way out, failed or not.
#
# Usage: systemd_units_test.sh BUILD_DIR. Exit 77 (skip) only when not root.
set -euo pipefail
build=$(realpath "$1")
cache=${IZ_SYSTEMD_TEST_CACHE:-/var/cache/intermezzo/systemd-test}
export DEBIAN_FRONTEND=noninteractive

fail() { echo "FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root (systemd-nspawn, loop mounts)"; exit 77; fi
for tool in systemd-nspawn debootstrap cpack nsenter losetup mkfs.ext4 mkfs.xfs flock; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/install-deps.sh installs it)"
done
# libbpf attaches tracepoints through tracefs; the container sees the host's.
tracefs=/sys/kernel/tracing
[ -e $tracefs/events ] || fail "tracefs is not mounted at $tracefs (the agent's eBPF programs need it)"

# What a run killed before it could clean up (a ctest timeout) left, named
# after its PID: its container (nspawn and the container's init carry
# IZ_UNITS_RUN=PID), its mounts, loop devices, images and directory. Only
# runs no longer alive are reaped.
reap_dead_runs() {
  local p run img dir loop m killed=
  for p in /proc/[0-9]*; do
    run=$( { tr '\0' '\n' <"$p/environ"; tr '\0' '\n' <"$p/cmdline"; } 2>/dev/null |
      sed -n 's/^\(--setenv=\)\{0,1\}IZ_UNITS_RUN=\([0-9]*\)$/\2/p' | head -n 1 || true)
    [ -n "$run" ] && [ "$run" != $$ ] && ! kill -0 "$run" 2>/dev/null || continue
    echo "reaping what run $run left: $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null | cut -c1-60)"
    kill -KILL "${p#/proc/}" 2>/dev/null && killed=1
  done
  # Its mount namespace goes a moment after its last process.
  [ -z "$killed" ] || sleep 2
  for dir in /tmp/iz-systemd-test.*.*; do
    [ -d "$dir" ] || continue
    run=${dir#/tmp/iz-systemd-test.}; run=${run%%.*}
    kill -0 "$run" 2>/dev/null && continue
    for m in "$dir"/mnt/*; do mountpoint -q "$m" && umount "$m"; done
    rm -rf "$dir"
  done
  for img in /dev/shm/iz-units-*.img; do
    [ -e "$img" ] || continue
    run=${img#/dev/shm/iz-units-}; run=${run%%.*}
    kill -0 "$run" 2>/dev/null && continue
    for loop in $(losetup -n -O NAME -j "$img"); do losetup -d "$loop"; done
    rm -f "$img"
  done
  rm -rf /run/systemd/nspawn/propagate/iz-units-*[0-9]
}
reap_dead_runs

work=$(mktemp -d /tmp/iz-systemd-test.$$.XXXXXX)
machine=iz-units-$$
nspawn_pid=
cleanup() {
  local rc=$?
  set +e
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    # SIGTERM: nspawn asks the container's systemd to halt. If it has not
    # within a minute, SIGKILL to the container's init ends every process
    # in it (its PID namespace), then nspawn.
    local init
    init=$(ps -o pid= --ppid "$nspawn_pid" | tr -d ' ' | head -n 1)
    kill -TERM "$nspawn_pid"
    for _ in $(seq 1 120); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$nspawn_pid" 2>/dev/null; then
      echo "the container did not halt within a minute: killing it" >&2
      [ -n "$init" ] && kill -KILL "$init"
      sleep 1
      kill -KILL "$nspawn_pid"
    fi
    wait "$nspawn_pid" 2>/dev/null
  fi
  for fs in ext4 xfs; do
    mountpoint -q "$work/mnt/$fs" && umount "$work/mnt/$fs"
    [ -n "${loops[$fs]:-}" ] && losetup -d "${loops[$fs]}" 2>/dev/null
    rm -f "/dev/shm/$machine.$fs.img"
  done
  # nspawn leaves this directory behind when /run is not a tmpfs.
  rm -rf "/run/systemd/nspawn/propagate/$machine"
  if [ "$rc" -ne 0 ] && [ -s "$work/nspawn.log" ]; then
    echo "--- the container's console (last 40 lines)" >&2
    tail -n 40 "$work/nspawn.log" >&2
  fi
  rm -rf "$work"
}
declare -A loops
trap cleanup EXIT

# The package, as built now.
cmake --build "$build" -j2 --target izwatch izreplicate izlog iz_man_pages iz_package_docs >/dev/null
mkdir -p "$work/pkg"
(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/pkg" >cpack.log 2>&1) ||
  { cat "$work/cpack.log" >&2; fail "cpack -G DEB failed"; }
debs=("$work"/pkg/intermezzo_*_amd64.deb)
[ -f "${debs[0]}" ] || fail "cpack made no intermezzo_<version>_amd64.deb"
deb=$(basename "${debs[0]}")

# The container's root: a minimal Debian 12 with systemd, made once (the
# version in .complete changes when what it should hold does). What the
# package depends on is not in it: apt downloads that (once for each
# Depends:) and the run installs it with the package, so a dependency the
# package fails to declare is missing in the container as on a minimal
# Debian. The lock keeps two runs from making either at once.
root_version=1
mkdir -p "$cache"
exec 9>"$cache/lock"
flock -w 400 9 || fail "another run has held $cache/lock for 400 s"
if [ "$(cat "$cache/root/.complete" 2>/dev/null)" != "$root_version" ]; then
  echo "making the container's root in $cache/root (debootstrap, once)"
  rm -rf "$cache/root.new"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$cache/root.new" http://deb.debian.org/debian \
    >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; rm -rf "$cache/root.new"; fail "debootstrap failed"; }
  echo "$root_version" >"$cache/root.new/.complete"
  rm -rf "$cache/root" "$cache/debs"
  mv "$cache/root.new" "$cache/root"
fi
depends=$(dpkg-deb -f "${debs[0]}" Depends)
if [ "$(cat "$cache/debs/.depends" 2>/dev/null)" != "$depends" ]; then
  echo "downloading what the package depends on: $depends"
  rm -rf "$cache/debs"
  mkdir -p "$cache/debs/partial"
  systemd-nspawn -q -D "$cache/root" --volatile=overlay --register=no --keep-unit -M "$machine" \
    --bind-ro="$work/pkg:/mnt/pkg" --bind="$cache/debs:/mnt/debs" sh -c \
    "apt-get update -qq && apt-get install -y -qq --no-install-recommends --download-only -o Dir::Cache::Archives=/mnt/debs /mnt/pkg/$deb" \
    >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; rm -rf "$cache/debs"; fail "apt-get could not download what $deb depends on"; }
  rm -rf "/run/systemd/nspawn/propagate/$machine" "$cache/debs/partial" "$cache/debs/lock"
  echo "$depends" >"$cache/debs/.depends"
fi
# (The lock is held to the end: a run that remade them would pull them from under this one.)
root=$cache/root

# The watched directories: an ext4 and an XFS image, loop-mounted here and
# bound into the container (the agent marks the whole filesystem).
for fs in ext4 xfs; do
  img=/dev/shm/$machine.$fs.img
  truncate -s 320M "$img"
  if [ $fs = ext4 ]; then mkfs.ext4 -q -F "$img"; else mkfs.xfs -q -f "$img"; fi
  loops[$fs]=$(losetup --find --show "$img")
  mkdir -p "$work/mnt/$fs"
  mount "${loops[$fs]}" "$work/mnt/$fs"
  echo "there before the agent started ($fs)" >"$work/mnt/$fs/before"
done

# Boot. --keep-unit and --register=no: nspawn needs no systemd on this side.
# Every capability, and beside nspawn's own allowed system calls those of
# fanotify, eBPF and file handles (nspawn refuses them with EPERM): what
# limits the daemons is then the units' CapabilityBoundingSet= and the
# rest of their hardening, as on a machine that boots systemd. The host's
# tracefs; a private network, so the server's port is the container's own.
# (/proc/sys stays read-only in a container: the agent keeps the kernel's
# fanotify queue length, and says so.)
systemd-nspawn -D "$root" --volatile=overlay -b --register=no --keep-unit -M "$machine" \
  --setenv=IZ_UNITS_RUN=$$ --console=passive --private-network --capability=all \
  --system-call-filter="fanotify_init fanotify_mark bpf perf_event_open open_by_handle_at" --bind-ro=$tracefs \
  --bind="$work/mnt/ext4:/srv/ext4" --bind="$work/mnt/xfs:/srv/xfs" --bind-ro="$work/pkg:/mnt/pkg" --bind-ro="$cache/debs:/mnt/debs" \
  >"$work/nspawn.log" 2>&1 &
nspawn_pid=$!
leader=
for _ in $(seq 1 100); do
  leader=$(ps -o pid= --ppid "$nspawn_pid" | tr -d ' ' | head -n 1 || true)
  [ -n "$leader" ] && [ "$(cat /proc/"$leader"/comm 2>/dev/null)" = systemd ] && break
  kill -0 "$nspawn_pid" 2>/dev/null || fail "systemd-nspawn exited before the container's systemd ran"
  leader=
  sleep 0.2
done
[ -n "$leader" ] || fail "no systemd in the container after 20 s"
inside() { nsenter -t "$leader" -a "$@"; }
# Until its bus is up, systemctl cannot ask.
state=
for _ in $(seq 1 90); do
  state=$(timeout 90 nsenter -t "$leader" -a systemctl is-system-running --wait 2>&1) || true
  [[ $state == *"Failed to connect to bus"* ]] || break
  sleep 1
done
case $state in
  running) ;;
  degraded) echo "the container booted degraded: $(inside systemctl --failed --no-legend --plain | tr '\n' ' ')" ;;
  *) fail "the container's systemd did not finish booting: '$state'" ;;
esac
echo "systemd booted in the container: $(inside systemctl --version | head -n 1)"
# systemd's debug log names each notification and state change.
inside systemd-analyze log-level debug

# What apt downloaded for it, then the package (dpkg refuses it if a
# dependency it declares is missing).
inside sh -c 'set -- /mnt/debs/*.deb; [ ! -e "$1" ] || dpkg -i "$@"' >"$work/dpkg.log" 2>&1 ||
  { cat "$work/dpkg.log" >&2; fail "dpkg -i of what $deb depends on failed in the container"; }
inside dpkg -i "/mnt/pkg/$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i $deb in the container failed"; }
inside test -x /usr/bin/izwatch || fail "no /usr/bin/izwatch after dpkg -i"

# The unit's state, and the journal of a unit since the test began.
prop() { inside systemctl show -P "$2" "$1"; }
journal() { inside journalctl -o cat --no-pager -u "$1"; }
# The unit became active when (and only after) systemd got READY=1 from its
# main process: in systemd's log the notification comes first, then the
# change from start to running.
check_ready_then_active() {
  local unit=$1 log ready_at running_at
  [ "$(prop "$unit" ActiveState)/$(prop "$unit" SubState)" = active/running ] ||
    fail "$unit is $(prop "$unit" ActiveState)/$(prop "$unit" SubState), not active/running"
  log=$(inside journalctl -o cat --no-pager _PID=1 | grep -F "$unit: ")
  ready_at=$(grep -n "Got notification message from PID .*READY=1" <<<"$log" | head -n 1 | cut -d: -f1)
  running_at=$(grep -n "Changed start -> running" <<<"$log" | head -n 1 | cut -d: -f1)
  [ -n "$ready_at" ] || fail "systemd got no READY=1 from $unit: $(tail -n 20 <<<"$log")"
  [ -n "$running_at" ] || fail "systemd never moved $unit from start to running: $(tail -n 20 <<<"$log")"
  [ "$ready_at" -lt "$running_at" ] || fail "$unit became active before READY=1: $(tail -n 20 <<<"$log")"
}

# The server, with an agents file that allows the ext4 fileset only.
inside izreplicate keygen /etc/intermezzo/replication.key >/dev/null
key_name=$(inside izreplicate key-name /etc/intermezzo/replication.key)
inside sh -c "printf 'agent box %s\naccess box ext4 read-write\n' '$key_name' >/etc/intermezzo/agents.conf"
inside sh -c 'echo IZREPLICATE_ARGS=\"--agents /etc/intermezzo/agents.conf\" >>/etc/intermezzo/izreplicate.conf'
timeout 60 nsenter -t "$leader" -a systemctl start izreplicate.service ||
  { journal izreplicate.service >&2; fail "systemctl start izreplicate failed"; }
check_ready_then_active izreplicate.service
status=$(prop izreplicate.service StatusText)
[ "$status" = "listening on 0.0.0.0:7411, replicas beneath /var/lib/intermezzo/replicas" ] ||
  fail "izreplicate.service's StatusText is '$status'"
echo "izreplicate.service: active after READY=1, status '$status'"

# An agent per filesystem.
for fs in ext4 xfs; do
  unit=izwatch@srv-$fs.service
  inside sh -c "echo IZWATCH_ARGS=\\\"--server 127.0.0.1:7411 --key /etc/intermezzo/replication.key\\\" >/etc/intermezzo/izwatch-srv-$fs.conf"
  timeout 120 nsenter -t "$leader" -a systemctl start "$unit" || { journal "$unit" >&2; fail "systemctl start $unit failed"; }
  check_ready_then_active "$unit"
  status=$(prop "$unit" StatusText)
  [[ $status =~ ^fanotify\+ebpf:\ [0-9]+\ records,\ durable\ LSN\ [0-9]+(;\ .*)?$ ]] ||
    fail "$unit's StatusText is '$status', not fanotify+ebpf with its records (eBPF not attached under the unit?)"
  echo "$unit: active after READY=1, status '$status'"
done

# A file written in each watched directory, by a program in the container.
for fs in ext4 xfs; do
  inside sh -c "head -c 100000 /dev/urandom >/srv/$fs/written && echo more >>/srv/$fs/written"
done
timeout 60 nsenter -t "$leader" -a izwatch sync /srv/ext4 --timeout 30 >"$work/sync.log" 2>&1 ||
  { cat "$work/sync.log" >&2; journal izwatch@srv-ext4.service | tail -n 20 >&2; fail "izwatch sync /srv/ext4 failed"; }
for f in before written; do
  inside cmp "/srv/ext4/$f" "/var/lib/intermezzo/replicas/ext4/$f" || fail "the replica of ext4/$f differs from the source"
done
echo "ext4: both files replicated under the units"

# The XFS fileset is refused until the agents file allows it and the server
# reads it again.
if timeout 20 nsenter -t "$leader" -a izwatch sync /srv/xfs --timeout 5 >"$work/sync.log" 2>&1; then
  fail "izwatch sync /srv/xfs succeeded although the agents file does not allow the fileset"
fi
inside test ! -e /var/lib/intermezzo/replicas/xfs/written || fail "the xfs fileset was applied before it was allowed"
inside sh -c 'echo "access box xfs read-write" >>/etc/intermezzo/agents.conf'
server_pid=$(prop izreplicate.service MainPID)
inside systemctl reload izreplicate.service ||
  { journal izreplicate.service | tail -n 20 >&2; fail "systemctl reload izreplicate failed"; }
reloaded=
for _ in $(seq 1 50); do
  reloaded=$(journal izreplicate.service | grep -F "reload: 0 certificates, 1 keys and 2 access rules from /etc/intermezzo/agents.conf" || true)
  [ -n "$reloaded" ] && break
  sleep 0.2
done
[ -n "$reloaded" ] || { journal izreplicate.service | tail -n 20 >&2; fail "no reload of the agents file in izreplicate's journal"; }
[ "$(prop izreplicate.service MainPID)" = "$server_pid" ] || fail "reload restarted izreplicate instead of signalling it"
timeout 120 nsenter -t "$leader" -a izwatch sync /srv/xfs --timeout 90 >"$work/sync.log" 2>&1 ||
  { cat "$work/sync.log" >&2; journal izwatch@srv-xfs.service | tail -n 20 >&2; fail "izwatch sync /srv/xfs failed after the reload"; }
for f in before written; do
  inside cmp "/srv/xfs/$f" "/var/lib/intermezzo/replicas/xfs/$f" || fail "the replica of xfs/$f differs from the source"
done
echo "xfs: refused, then replicated after systemctl reload izreplicate"

# Stop: each daemon exits 0 of itself, nothing is killed or left. A unit
# stopped is unloaded at once (its ExecMainStatus gone with it): what
# happened is read from systemd's log since the stop.
units="izwatch@srv-ext4.service izwatch@srv-xfs.service izreplicate.service"
cursor=$(inside journalctl -q -n 0 --show-cursor | sed -n 's/^-- cursor: //p')
timeout 150 nsenter -t "$leader" -a systemctl stop $units || fail "systemctl stop failed"
for unit in $units; do
  [ "$(prop "$unit" ActiveState)" = inactive ] || fail "$unit is $(prop "$unit" ActiveState) after stop"
  log=$(inside journalctl -o cat --no-pager --after-cursor="$cursor" _PID=1 | grep -F "$unit: " || true)
  grep -q "Main process exited, code=exited, status=0/SUCCESS" <<<"$log" ||
    fail "$unit's daemon did not exit 0 when stopped: $(tail -n 20 <<<"$log")"
  grep -q "Deactivated successfully" <<<"$log" || fail "$unit did not stop successfully: $(tail -n 20 <<<"$log")"
  ! grep -Eq "Killing process|timed out|Failed with result" <<<"$log" ||
    fail "$unit was not stopped cleanly: $(grep -E 'Killing process|timed out|Failed with result' <<<"$log")"
done
left=$(inside sh -c 'for p in /proc/[0-9]*; do echo "${p#/proc/} $(cat $p/comm 2>/dev/null)"; done' |
  grep -E ' (izwatch|izreplicate)$' || true)
[ -z "$left" ] || fail "processes left after systemctl stop: $left"
echo "stopped: all three exited 0, nothing left"

# A broken setting: the key file named does not exist. (At systemd's usual
# log level: at debug, the forked child logs before it is moved into the
# unit's cgroup, and journald, which caches what it learned of a PID, then
# files that PID's output under init.scope.)
inside systemd-analyze log-level info
inside sh -c 'echo IZREPLICATE_KEY=/etc/intermezzo/missing.key >>/etc/intermezzo/izreplicate.conf'
if timeout 60 nsenter -t "$leader" -a systemctl start izreplicate.service 2>"$work/start.log"; then
  fail "izreplicate.service started with a key file that does not exist"
fi
[ "$(prop izreplicate.service Result)" = exit-code ] || fail "izreplicate.service's Result is $(prop izreplicate.service Result), not exit-code"
[ "$(prop izreplicate.service ExecMainStatus)" != 0 ] || fail "izreplicate exited 0 with a missing key file"
# journald reads the daemon's stderr on its own time: wait for the line.
said=
for _ in $(seq 1 50); do
  said=$(journal izreplicate.service | grep -F "open key file '/etc/intermezzo/missing.key': No such file or directory" || true)
  [ -n "$said" ] && break
  sleep 0.2
done
[ -n "$said" ] || { journal izreplicate.service | tail -n 20 >&2; fail "journalctl -u izreplicate does not say which key file is missing"; }
inside systemctl stop izreplicate.service 2>/dev/null || true
echo "a missing key file fails izreplicate.service, and its journal says which"

# The same for an agent.
inside sh -c 'echo IZWATCH_ARGS=\"--server 127.0.0.1:7411 --key /etc/intermezzo/missing.key\" >/etc/intermezzo/izwatch-srv-ext4.conf'
if timeout 60 nsenter -t "$leader" -a systemctl start izwatch@srv-ext4.service 2>"$work/start.log"; then
  fail "izwatch@srv-ext4.service started with a key file that does not exist"
fi
[ "$(prop izwatch@srv-ext4.service Result)" = exit-code ] ||
  fail "izwatch@srv-ext4.service's Result is $(prop izwatch@srv-ext4.service Result), not exit-code"
said=
for _ in $(seq 1 50); do
  said=$(journal izwatch@srv-ext4.service | grep -F "open key file '/etc/intermezzo/missing.key': No such file or directory" || true)
  [ -n "$said" ] && break
  sleep 0.2
done
[ -n "$said" ] || { journal izwatch@srv-ext4.service | tail -n 20 >&2; fail "journalctl -u izwatch@srv-ext4 does not say which key file is missing"; }
inside systemctl stop izwatch@srv-ext4.service 2>/dev/null || true
echo "a missing key file fails izwatch@srv-ext4.service, and its journal says which"
echo "PASS"
