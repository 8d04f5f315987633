#!/usr/bin/env bash
# One command from a fresh Debian machine to intermezzo at work: installs
# the packages, builds, then runs the built-in default job: a directory on a
# fresh ext4 image is watched by izwatch and replicated to an izreplicate
# on this machine; some ordinary work happens in it; the journal is shown
# with izlog and the replica is compared with the source. Everything it
# made is removed at the end. Needs root (loop mount, fanotify, eBPF).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "demo: run as root (loop mounts, fanotify, eBPF)" >&2; exit 1; fi
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
bin=$PWD/build/bin

demo=$(mktemp -d /tmp/intermezzo-demo.XXXXXX)
image=/dev/shm/intermezzo-demo-$$.img
src=$demo/source
export IZ_RUN_DIR=$demo/run
server_pid=
cleanup() {
  set +e
  "$bin/izwatch" stop "$src/data" >/dev/null 2>&1
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  umount "$src" 2>/dev/null
  rm -rf "$demo" "$image"
}
trap cleanup EXIT

truncate -s 256M "$image"
mkfs.ext4 -q "$image"
mkdir -p "$src"
mount -o loop "$image" "$src"
mkdir -p "$src/data/docs"
echo "written before the agent started" > "$src/data/docs/readme.txt"

servers=()
if [ -x "$bin/izreplicate" ]; then
  "$bin/izreplicate" keygen "$demo/key"
  mkdir -p "$demo/replica"
  "$bin/izreplicate" --root "$demo/replica" --listen 127.0.0.1:7411 --key "$demo/key" --foreground \
    2>"$demo/izreplicate.log" &
  server_pid=$!
  servers=(--server 127.0.0.1:7411 --key "$demo/key")
fi

echo "== izwatch start $src/data ${servers[*]}"
"$bin/izwatch" start "$src/data" --state-dir "$demo/state" --journal "$demo/journal" "${servers[@]}"

echo "== some work in the watched directory"
cd "$src/data"
mkdir -p src/lib
printf 'int main() { return 0; }\n' > src/main.c
cp /etc/os-release docs/
python3 -c "
import os
fd = os.open('data.bin', os.O_CREAT | os.O_WRONLY, 0o644)
os.pwrite(fd, b'x' * 4096, 1 << 20)   # 4 KiB at 1 MiB: only that range is dirty
os.close(fd)"
ln -s docs/readme.txt README
ln src/main.c src/main-hardlink.c
chmod 600 docs/os-release
mv src/lib src/library
rm docs/readme.txt
cd - >/dev/null

"$bin/izwatch" sync "$src/data" --timeout 30
echo "== izwatch status"
"$bin/izwatch" status "$src/data"
echo "== izlog"
"$bin/izlog" -D "$demo/journal" --no-pager
if [ -n "$server_pid" ]; then
  echo "== replica $demo/replica compared with the source"
  replica=$(find "$demo/replica" -mindepth 1 -maxdepth 1 -type d ! -name '.*' | head -1)
  if diff -r --no-dereference "$src/data" "$replica"; then echo "replica matches the source"; else exit 1; fi
  echo "== izwatch verify (hash tree of the full manifest, compared with the server's)"
  "$bin/izwatch" verify "$src/data"
fi
