#!/usr/bin/env bash
# The Debian package, end to end on this machine: built by cpack from the
# build tree, installed with apt-get (which resolves the Depends: that
# dpkg-shlibdeps derived), the installed programs run from /usr/bin and
# name the release and revision they were built from, every file in place,
# the units started by a running systemd when there is one, then purged
# with nothing left, and lintian reporting no error. The installed programs
# carry Debian's hardening (hardening-check passes on each, lintian reports
# no hardening-no-* tag), and the package names the maintainer and
# homepage the build was configured with (IZ_PACKAGE_MAINTAINER,
# IZ_PACKAGE_HOMEPAGE).
#
# Lintian warnings accepted: none today (it reports none). A warning
# accepted later is listed here with the reason it is right for this
# package. Of its informational tags (lintian -I) only hardening-no-* are
# checked; the others today are binary-has-unneeded-section .comment, and
# package-supports-alternative-init-but-no-init.d-script (systemd only).
#
# Usage: deb_package_test.sh BUILD_DIR VERSION MAINTAINER HOMEPAGE, VERSION
#        the expected "izwatch 0.1.0 (git REV)" without the program's name,
#        MAINTAINER and HOMEPAGE the values the build was configured with.
set -euo pipefail
build=$(realpath "$1")
expected_version=$2
expected_maintainer=$3
expected_homepage=$4
export DEBIAN_FRONTEND=noninteractive
# Others may be installing packages: wait for dpkg's lock rather than fail.
apt_opts=(-y -qq -o DPkg::Lock::Timeout=120)

fail() { echo "FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root (apt-get install)"; exit 77; fi
for tool in cpack apt-get lintian dpkg-deb hardening-check; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/install-deps.sh installs it)"
done
# An intermezzo installed by hand (not by this package) is not ours to replace.
if ! dpkg -s intermezzo >/dev/null 2>&1; then
  for p in /usr/bin/izwatch /usr/bin/izreplicate /usr/bin/izlog; do
    [ -e "$p" ] && fail "$p exists but is no package's: not overwriting it"
  done
fi

work=$(mktemp -d /tmp/iz-deb-test.XXXXXX)
cleanup() {
  set +e
  if [ -n "${started_units:-}" ]; then systemctl stop $started_units >/dev/null 2>&1; fi
  if dpkg -s intermezzo >/dev/null 2>&1; then apt-get purge "${apt_opts[@]}" intermezzo >/dev/null 2>&1; fi
  rm -rf "$work"
}
trap cleanup EXIT

# What goes in: the programs, pages and docs as built now.
cmake --build "$build" -j2 --target izwatch izreplicate izlog iz_man_pages iz_package_docs >/dev/null
(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work" >cpack.log 2>&1) ||
  { cat "$work/cpack.log" >&2; fail "cpack -G DEB failed"; }
debs=("$work"/intermezzo_*_amd64.deb)
[ -f "${debs[0]}" ] || fail "no intermezzo_<version>_amd64.deb in $(ls "$work")"
deb=${debs[0]}
release=${expected_version%% *}
[ "$(basename "$deb")" = "intermezzo_${release}_amd64.deb" ] || fail "package named $(basename "$deb"), not intermezzo_${release}_amd64.deb"
echo "built $(basename "$deb")"

# Maintainer: and Homepage: as configured, and the changelog signed by the same.
maintainer=$(dpkg-deb -f "$deb" Maintainer)
[ "$maintainer" = "$expected_maintainer" ] || fail "Maintainer: is '$maintainer', not '$expected_maintainer' (IZ_PACKAGE_MAINTAINER)"
homepage=$(dpkg-deb -f "$deb" Homepage)
[ "$homepage" = "$expected_homepage" ] || fail "Homepage: is '$homepage', not '$expected_homepage' (IZ_PACKAGE_HOMEPAGE)"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/doc/intermezzo/changelog.gz | gzip -dc >"$work/changelog"
grep -q "^ -- $expected_maintainer  " "$work/changelog" ||
  fail "the changelog is not signed by '$expected_maintainer': $(grep '^ -- ' "$work/changelog")"

# Depends: derived from the libraries the programs link.
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libstdc++6 libbpf1 liburing2 libsystemd0 libssl3; do
  [[ ",$depends," == *" $lib "* || ",$depends," == *" $lib,"* || ",$depends," == *",$lib "* || ",$depends," == *",$lib,"* ]] ||
    fail "Depends: lacks $lib: $depends"
done

apt-get install "${apt_opts[@]}" "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "apt-get install failed"; }
dpkg -s intermezzo | grep -q '^Status: install ok installed' || fail "intermezzo is not installed after apt-get install"

for program in izwatch izreplicate izlog; do
  got=$(/usr/bin/$program --version)
  [ "$got" = "$program $expected_version" ] || fail "/usr/bin/$program --version says '$got', not '$program $expected_version'"
  echo "$got"
done

# Debian's hardening, on the programs as installed (stripped). Control-flow
# protection (IBT, SHSTK) survives linking only when every object linked
# carries it, and Debian 12's C start files (Scrt1.o, crti.o) do not, so no
# program linked here can: there it is checked on what the build compiled
# instead, the objects of the programs' mains.
no_cf=()
if ! readelf -n "$(gcc -print-file-name=Scrt1.o)" | grep -q 'x86 feature: IBT, SHSTK'; then
  no_cf=(--nocfprotection)
  for o in agent/CMakeFiles/izwatch.dir/izwatch_main.cpp.o replicator/server/CMakeFiles/izreplicate.dir/izreplicate_main.cpp.o \
           tools/CMakeFiles/izlog.dir/izlog/main.cpp.o; do
    readelf -n "$build/$o" | grep -q 'x86 feature: IBT, SHSTK' || fail "$o was compiled without -fcf-protection"
  done
fi
hardening-check "${no_cf[@]}" /usr/bin/izwatch /usr/bin/izreplicate /usr/bin/izlog >"$work/hardening.log" 2>&1 ||
  { cat "$work/hardening.log" >&2; fail "hardening-check finds protections missing"; }
echo "hardening-check${no_cf:+ ${no_cf[*]} (the C start files carry no CET notes)}: every protection in place"

installed=$(dpkg -L intermezzo)
for f in /usr/bin/izwatch /usr/bin/izreplicate /usr/bin/izlog \
         /lib/systemd/system/izwatch@.service /lib/systemd/system/izreplicate.service \
         /usr/share/man/man8/izwatch.8.gz /usr/share/man/man8/izreplicate.8.gz /usr/share/man/man1/izlog.1.gz \
         /usr/share/bash-completion/completions/izwatch /usr/share/bash-completion/completions/izreplicate \
         /usr/share/bash-completion/completions/izlog \
         /etc/intermezzo/izreplicate.conf /etc/intermezzo/izwatch.conf.example /etc/intermezzo/agents.conf.example \
         /usr/share/doc/intermezzo/copyright /usr/share/doc/intermezzo/changelog.gz; do
  grep -qxF "$f" <<<"$installed" || fail "the package does not install $f"
  [ -e "$f" ] || fail "$f is listed but missing"
done
grep -q '^ExecStart=/usr/bin/izreplicate ' /lib/systemd/system/izreplicate.service ||
  fail "izreplicate.service does not run /usr/bin/izreplicate: $(grep ExecStart /lib/systemd/system/izreplicate.service)"
grep -q '^ExecStart=/usr/bin/izwatch start ' /lib/systemd/system/izwatch@.service ||
  fail "izwatch@.service does not run /usr/bin/izwatch"
zcat /usr/share/man/man8/izwatch.8.gz | grep -q -- 'queue-events' || fail "the izwatch man page lacks its options"
dpkg-query -W -f='${Conffiles}\n' intermezzo | grep -q /etc/intermezzo/izreplicate.conf ||
  fail "/etc/intermezzo/izreplicate.conf is not a conffile"

# The units under a real systemd, where this machine runs one.
if [ -d /run/systemd/system ]; then
  replicas=$work/replicas
  /usr/bin/izreplicate keygen "$work/key" >/dev/null
  mkdir -p /run/systemd/system/izreplicate.service.d
  cat >/run/systemd/system/izreplicate.service.d/test.conf <<CONF
[Service]
Environment=IZREPLICATE_ROOT=$replicas IZREPLICATE_LISTEN=127.0.0.1:17411 IZREPLICATE_KEY=$work/key
CONF
  systemctl daemon-reload
  started_units=izreplicate.service
  # Type=notify: start returns once READY=1 came.
  timeout 60 systemctl start izreplicate.service || { journalctl -u izreplicate --no-pager -n 50 >&2; fail "systemctl start izreplicate failed"; }
  [ "$(systemctl show -P ActiveState izreplicate.service)" = active ] || fail "izreplicate.service is not active"
  status=$(systemctl show -P StatusText izreplicate.service)
  [ "$status" = "listening on 127.0.0.1:17411, replicas beneath $replicas" ] || fail "izreplicate.service status is '$status'"
  watched=$work/watched
  mkdir -p "$watched"
  echo before >"$watched/file"
  instance=$(systemd-escape --path "$watched")
  printf 'IZWATCH_ARGS="--server 127.0.0.1:17411 --key %s --state-dir %s"\n' "$work/key" "$work/state" \
    >"/etc/intermezzo/izwatch-$instance.conf"
  started_units="izreplicate.service izwatch@$instance.service"
  timeout 120 systemctl start "izwatch@$instance.service" ||
    { journalctl -u "izwatch@$instance" --no-pager -n 50 >&2; rm -f "/etc/intermezzo/izwatch-$instance.conf"; fail "systemctl start izwatch@$instance failed"; }
  status=$(systemctl show -P StatusText "izwatch@$instance.service")
  [[ $status == fanotify* ]] || fail "izwatch@$instance status is '$status'"
  /usr/bin/izwatch sync "$watched" --timeout 30 || fail "izwatch sync through the unit's agent failed"
  cmp "$watched/file" "$replicas/$(basename "$watched")/file" || fail "the replica differs"
  systemctl stop $started_units
  started_units=
  rm -f "/etc/intermezzo/izwatch-$instance.conf"
  rm -rf /run/systemd/system/izreplicate.service.d
  systemctl daemon-reload
  echo "both units started under systemd, became ready and replicated a file"
else
  echo "SKIP (units under systemd): this machine runs no systemd (PID 1 is $(ps -o comm= -p 1)); SystemdUnits.* boots one in a container"
fi

apt-get purge "${apt_opts[@]}" intermezzo >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "apt-get purge failed"; }
dpkg -s intermezzo >/dev/null 2>&1 && fail "intermezzo is still known to dpkg after purge"
for f in /usr/bin/izwatch /usr/bin/izreplicate /usr/bin/izlog /lib/systemd/system/izreplicate.service \
         /lib/systemd/system/izwatch@.service /etc/intermezzo /usr/share/doc/intermezzo \
         /usr/share/man/man8/izwatch.8.gz /usr/share/bash-completion/completions/izwatch; do
  [ -e "$f" ] && fail "$f is left after apt-get purge"
done
echo "installed, ran and purged cleanly"

# lintian: no error (E:), no warning (W:) beyond those accepted above, and
# no hardening-no-* among its informational tags.
lintian -I "$deb" >"$work/lintian.log" 2>&1 || true
grep -v 'running with root privileges' "$work/lintian.log" || true
grep -q '^E: ' "$work/lintian.log" && fail "lintian reports errors"
grep -q '^W: ' "$work/lintian.log" && fail "lintian reports warnings not accepted in this script"
grep -q ' hardening-no-' "$work/lintian.log" && fail "lintian finds hardening missing"
echo "lintian: no errors, warnings or hardening-no-* tags"
