#!/usr/bin/env bash
# Alternating A/B runs of a restart with 1M keys: how long three members of
# each server build (or stock etcd) take from their start on the same data
# to the first linearizable read answered. bench.sh's scale line restarts
# each server on its own data, one run each, and this machine's restarts
# move by a third from one to the next; here every run starts from one copy.
#
#   scripts/restart-ab.sh 3 /tmp/new /tmp/old /tmp/new
#
# The first binary loads 1,000,000 keys of 256 bytes (etcd's benchmark
# tool, 100 clients, sequential keys, as bench.sh's scale line) into a
# fresh 3-member cluster on loopback, waits 10 s for flushes and
# compactions, and stops it with AB_SIGNAL (default TERM; KILL leaves a WAL
# to replay). Then each round starts every binary in turn on a fresh copy
# of that data and prints the seconds to the first linearizable read and
# the members' CPU-seconds (user + kernel from /proc) up to it. The
# binaries must read one another's data (builds of one on-disk format).
# Every process started here is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: restart-ab.sh ROUNDS LOADER BINARY...}
loader=${2:?usage: restart-ab.sh ROUNDS LOADER BINARY...}
shift 2
(($# > 0)) || { echo "usage: restart-ab.sh ROUNDS LOADER BINARY..." >&2; exit 2; }
ref=$(ETCD_REF_VERSION=v3.7.3 bash ../shared/tools/etcd-reference.sh)
work=$(mktemp -d /var/tmp/cairn-restart-ab.XXXXXX)
# shellcheck source=scripts/cluster3.sh
source scripts/cluster3.sh
stop_cluster3_on_exit "$work"
port=28379
mkdir -p "$work/base"
start_cluster3 "$loader" "$work/base" "$port"
"$ref/benchmark" --endpoints "$eps" --target-leader --conns 10 --clients 100 put --key-size 8 \
  --sequential-keys --key-space-size 1000000 --val-size 256 --total 1000000 2>&1 |
  tr '\r' '\n' | grep 'Requests/sec'
sleep 10 # flushes and compactions the load started
for p in "${pids[@]}"; do kill -"${AB_SIGNAL:-TERM}" "$p"; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
echo "data: $(du -sh "$work/base" | cut -f1), stopped with SIG${AB_SIGNAL:-TERM}"
tck=$(getconf CLK_TCK)
for ((r = 1; r <= rounds; r++)); do
  for bin in "$@"; do
    rm -rf "$work/run"
    cp -a "$work/base" "$work/run"
    sync
    start=$(date +%s.%N)
    # start_cluster3 would wait for a write; this waits for a read.
    launch_cluster3 "$bin" "$work/run" "$port"
    tries=0
    until "$ref/etcdctl" --endpoints "$eps" --command-timeout 1s get foo >/dev/null 2>&1; do
      tries=$((tries + 1))
      if ((tries > 3000)); then echo "$bin did not answer after a restart" >&2; exit 1; fi
      sleep 0.05
    done
    end=$(date +%s.%N)
    t=0
    for p in "${pids[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    awk -v b="$(basename "$bin")" -v r="$r" -v s="$start" -v e="$end" -v t="$t" -v k="$tck" \
      'BEGIN { printf "%s, round %d: %.2f s to the first linearizable read, members %.1f CPU-s\n", b, r, e - s, t / k }'
    for p in "${pids[@]}"; do kill -TERM "$p"; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
  done
done
