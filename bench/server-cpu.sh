#!/bin/bash
# izreplicate's CPU over a fixed workload: a tree of 10,000 small files is
# copied into a watched directory (cp -a), synced, removed (rm -r) and
# synced again; izwatch ships it to a local izreplicate run under
# `perf stat`: task-clock and context switches, which the load of the
# machine moves by +-10%, and the syscalls izreplicate made (all, and the
# openat2, name_to_handle_at and write among them), which it does not
# (instructions too where the machine has the counter). Prints one line
# per run and the median of each count. `record` runs `perf record` instead and keeps its profiles in
# IZ_PERF_OUT (default /tmp) for `perf report`. (Valgrind cannot run
# izreplicate: it does not know openat2.)
#
#   bench/server-cpu.sh BIN_DIR [RUNS=5] [stat|record] [FILES=10000]
#
# Needs root (loop mounts in /dev/shm). Leaves nothing behind.
set -euo pipefail

bin=$(realpath "${1:?usage: $0 BIN_DIR [RUNS] [stat|record] [FILES]}")
runs=${2:-5}
tool=${3:-stat}
files=${4:-10000}

tmp=$(mktemp -d /dev/shm/iz-server-cpu.XXXXXX)
server_pid=
cleanup() {
    set +e
    [ -n "$server_pid" ] && kill -TERM $(pgrep -P "$server_pid" -x izreplicate) "$server_pid" 2>/dev/null
    "$bin/izwatch" stop "$tmp/src/data" >/dev/null 2>&1
    [ -n "$server_pid" ] && wait "$server_pid" 2>/dev/null
    for m in "$tmp/src" "$tmp/dst"; do mountpoint -q "$m" && umount "$m"; done
    rm -rf "$tmp"
}
trap cleanup EXIT

mkimage() {  # NAME: a fresh ext4 image mounted at $tmp/NAME
    truncate -s 1G "$tmp/$1.img"
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$tmp/$1.img"
    mkdir -p "$tmp/$1"
    mount -o loop "$tmp/$1.img" "$tmp/$1"
}

# The tree copied each run: 100 directories of files/100 small files.
mkdir -p "$tmp/seed"
for d in $(seq 1 100); do
    mkdir "$tmp/seed/d$d"
    for f in $(seq 1 $((files / 100))); do printf 'file %d/%d\n' "$d" "$f" >"$tmp/seed/d$d/f$f"; done
done
"$bin/izreplicate" keygen "$tmp/key" >/dev/null

port=$((20000 + RANDOM % 20000))
results=()
for run in $(seq 1 "$runs"); do
    mkimage src
    mkimage dst
    mkdir -p "$tmp/src/data"
    out="$tmp/stat.$run"
    server=("$bin/izreplicate" --root "$tmp/dst" --listen "127.0.0.1:$port" --key "$tmp/key" --foreground
            --log-file "$tmp/izreplicate.log")
    if [ "$tool" = record ]; then
        perf record -q -e cpu-clock -F 4999 -g -o "${IZ_PERF_OUT:-/tmp}/server-cpu.$run.data" -- "${server[@]}" &
    else
        perf stat -x, -o "$out" -e task-clock,context-switches,instructions,raw_syscalls:sys_enter \
            -e syscalls:sys_enter_openat2,syscalls:sys_enter_name_to_handle_at,syscalls:sys_enter_write \
            -- "${server[@]}" &
    fi
    server_pid=$!
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    "$bin/izwatch" start "$tmp/src/data" --server "127.0.0.1:$port" --key "$tmp/key" --journal "$tmp/journal.$run" \
        --state-dir "$tmp/state.$run" >/dev/null
    "$bin/izwatch" sync "$tmp/src/data" --timeout 600 >/dev/null
    cp -a "$tmp/seed" "$tmp/src/data/tree"
    "$bin/izwatch" sync "$tmp/src/data" --timeout 600 >/dev/null
    rm -r "$tmp/src/data/tree"
    "$bin/izwatch" sync "$tmp/src/data" --timeout 600 >/dev/null
    "$bin/izwatch" stop "$tmp/src/data" >/dev/null
    # perf does not pass a signal on: izreplicate is its child.
    kill -TERM "$(pgrep -P "$server_pid" -x izreplicate)"
    wait "$server_pid" || true
    server_pid=
    left=$(find "$tmp/dst/data" -mindepth 1 | wc -l)
    [ "$left" -eq 0 ] || { echo "run $run: the replica holds $left entries after the removal" >&2; exit 1; }
    if [ "$tool" = record ]; then
        line="profile=${IZ_PERF_OUT:-/tmp}/server-cpu.$run.data"
    else
        ms=$(awk -F, '$3 == "task-clock" {printf "%.0f", $1}' "$out")
        cs=$(awk -F, '$3 == "context-switches" {print $1}' "$out")
        line="task_clock_ms=$ms context_switches=$cs"
        for e in raw_syscalls:sys_enter syscalls:sys_enter_openat2 syscalls:sys_enter_name_to_handle_at \
            syscalls:sys_enter_write; do
            n=$(awk -F, -v e="$e" '$3 == e {print $1}' "$out")
            name=${e##*sys_enter_}; [ "$name" = raw_syscalls:sys_enter ] && name=syscalls
            line="$line $name=$n"
        done
        ins=$(awk -F, '$3 ~ /^instructions/ && $1 ~ /^[0-9]+$/ {print $1}' "$out")
        [ -n "$ins" ] && line="$line instructions=$ins"
    fi
    echo "run $run: $line"
    results+=("$line")
    umount "$tmp/src" "$tmp/dst"
    rm -f "$tmp/src.img" "$tmp/dst.img"
    rm -rf "$tmp/journal.$run" "$tmp/state.$run"
done

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
for key in $(printf '%s\n' "${results[0]}" | tr ' ' '\n' | cut -d= -f1); do
    [ "$key" = profile ] && continue
    m=$(printf '%s\n' "${results[@]}" | tr ' ' '\n' | grep "^$key=" | cut -d= -f2 | median)
    printf 'median %s=%s ' "$key" "$m"
done
echo "(runs=$runs files=$files)"
