#!/usr/bin/env bash
# What the capture costs a writer, in counters that do not depend on how
# loaded the machine is (wall time does): the writer's task-clock and
# context switches (perf stat) and the agent's CPU for the workload (its
# utime+stime, from just before the workload until `izwatch sync`
# returned), for two builds of izwatch taking turns, median of N runs each.
# Without an instruction counter, task-clock is the closest to "work done";
# it still grows a little with cache contention from other load.
#
# Usage: capture-cost.sh [-n RUNS] [-c CHURN_FILES] [-w WORKLOADS] [-v] NAME=IZWATCH [NAME=IZWATCH...]
#   e.g. capture-cost.sh old=/tmp/old/izwatch new=build/bin/izwatch
# Workloads, on a fresh ext4 loop image in /dev/shm: churn (create, write
# 12 bytes, close, unlink, CHURN_FILES times, one process) and
# `cp -a /usr/include` (-w "churn cp", the default, or either). "bare" (no
# agent) is measured alongside. -v prints every run, not only the medians.
# Needs root, perf and a C compiler.
set -euo pipefail

runs=5
churn_files=20000
workloads="churn cp"
verbose=0
while getopts n:c:w:v opt; do
    case $opt in
        n) runs=$OPTARG ;;
        c) churn_files=$OPTARG ;;
        w) workloads=$OPTARG ;;
        v) verbose=1 ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
(($# > 0)) || { echo "usage: $0 [-n RUNS] [-c CHURN_FILES] NAME=IZWATCH..." >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "$0: needs root (loop mount, fanotify, eBPF)" >&2; exit 1; }

work=$(mktemp -d /dev/shm/iz-capture-cost.XXXXXX)
mnt=$work/mnt
cleanup() {
    for spec in "$@"; do "${spec#*=}" stop "$mnt/w" >/dev/null 2>&1 || true; done
    umount "$mnt" 2>/dev/null || true
    rm -rf "$work"
}
trap 'cleanup "$@"' EXIT

cat >"$work/churn.c" <<'EOF'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char** argv) {
    char p[4096];
    for (int i = 0, n = atoi(argv[2]); i < n; ++i) {
        snprintf(p, sizeof p, "%s/tmp%d", argv[1], i);
        int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
        if (fd < 0 || write(fd, "hello world\n", 12) != 12) { perror(p); return 1; }
        close(fd);
        unlink(p);
    }
    return 0;
}
EOF
cc -O2 -o "$work/churn" "$work/churn.c"

mkdir -p "$mnt"
truncate -s 2G "$work/img"
mkfs.ext4 -q -F "$work/img"
mount -o loop "$work/img" "$mnt"

agent_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# One run: prints "task_clock_ms context_switches agent_cpu_ms".
run_one() {
    local izwatch=$1 workload=$2 pid=0 t0=0
    rm -rf "$mnt/w" "$mnt/journal" "$mnt/state"
    mkdir -p "$mnt/w"
    sync
    if [[ $izwatch != bare ]]; then
        "$izwatch" start "$mnt/w" --journal "$mnt/journal" --state-dir "$mnt/state" >/dev/null
        pid=$("$izwatch" status --json "$mnt/w" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
        t0=$(agent_ticks "$pid")
    fi
    local cmd
    case $workload in
        churn) cmd=("$work/churn" "$mnt/w" "$churn_files") ;;
        cp) cmd=(cp -a /usr/include "$mnt/w/include") ;;
    esac
    perf stat -x, -e task-clock,context-switches -o "$work/perf" -- "${cmd[@]}"
    local agent_ms=0
    if [[ $izwatch != bare ]]; then
        "$izwatch" sync "$mnt/w" --timeout 120 >/dev/null
        agent_ms=$(( ($(agent_ticks "$pid") - t0) * 1000 / $(getconf CLK_TCK) ))
        "$izwatch" stop "$mnt/w" >/dev/null
        while [[ -e /proc/$pid ]] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; do sleep 0.05; done
    fi
    awk -F, -v agent="$agent_ms" '
        $3 == "task-clock" { tc = $1 }
        $3 == "context-switches" { cs = $1 }
        END { printf "%.1f %d %d\n", tc, cs, agent }' "$work/perf"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

specs=(bare=bare "$@")
for workload in $workloads; do
    : >"$work/results"
    for ((r = 0; r < runs; ++r)); do
        # Builds take turns going first.
        n=${#specs[@]}
        for ((i = 0; i < n; ++i)); do
            spec=${specs[$(((i + r) % n))]}
            echo "${spec%%=*} $(run_one "${spec#*=}" "$workload")" >>"$work/results"
        done
    done
    ((verbose)) && sed "s/^/$workload run: /" "$work/results"
    printf '%-6s %-10s %14s %10s %14s   (median of %d)\n' "$workload" build "task-clock ms" "ctx sw" "agent cpu ms" "$runs"
    for spec in "${specs[@]}"; do
        name=${spec%%=*}
        tc=$(awk -v n="$name" '$1 == n { print $2 }' "$work/results" | median)
        cs=$(awk -v n="$name" '$1 == n { print $3 }' "$work/results" | median)
        ag=$(awk -v n="$name" '$1 == n { print $4 }' "$work/results" | median)
        printf '%-6s %-10s %14s %10s %14s\n' "" "$name" "$tc" "$cs" "$ag"
    done
done
