#!/usr/bin/env bash
# Alternating A/B runs of one etcd benchmark line against two or more
# server builds (or stock etcd): how #21's changes are measured on a
# shared machine, whose load moves between runs by more than most changes.
#
#   go build -o /tmp/old ./cmd/cairn; (change); go build -o /tmp/new ./cmd/cairn
#   scripts/bench-ab.sh 4 /tmp/old /tmp/new            # put, 100 clients, 150k puts
#   AB_ARGS="--target-leader --conns 10 --clients 100 txn-put --txn-ops 4 --key-size 8 \
#     --key-space-size 100000 --val-size 256 --total 60000" scripts/bench-ab.sh 3 /tmp/old /tmp/new
#
# Each run starts a fresh 3-member cluster of one binary on loopback (data
# under a temporary directory on the real disk), runs etcd's benchmark tool
# (from ../shared/tools/etcd-reference.sh) with AB_ARGS against it, and
# prints requests/s, p99, the members' CPU-s per 10k requests (user +
# kernel from /proc/<pid>/stat), the benchmark client's (it shares the
# cores, and what a server sends it, such as HTTP/2 PINGs, is work for
# it: user + system, from bash's time), the largest member's peak RSS and the
# bytes the members wrote to the disk (/proc/<pid>/io: WAL, pebble's
# flushes and compactions), and the bytes their Go heaps allocated per
# request (go_memstats_alloc_bytes_total from each member's /metrics:
# steadier between rounds than CPU on a loaded machine, and what sets how
# often the garbage collector runs). Rounds alternate between the binaries. Every
# process started here is killed on exit. CLUSTER3_TLS=DIR (see
# scripts/cluster3.sh) runs the clusters with https:// client URLs and
# client certificates, as kubeadm's:
#   (source scripts/cluster3.sh; cluster3_certs /tmp/certs)
#   CLUSTER3_TLS=/tmp/certs scripts/bench-ab.sh 2 /tmp/old /tmp/new
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: bench-ab.sh ROUNDS BINARY...}
shift
(($# > 0)) || { echo "usage: bench-ab.sh ROUNDS BINARY..." >&2; exit 2; }
ref=$(ETCD_REF_VERSION=v3.7.3 bash ../shared/tools/etcd-reference.sh)
args=${AB_ARGS:-"--target-leader --conns 10 --clients 100 put --key-size 8 --val-size 256 --key-space-size 100000 --total 150000"}
# AB_TOTAL: the requests (or, for watch-get, which has no --total, the
# events: --watchers x --events) that the CPU and allocation columns
# divide by.
total=${AB_TOTAL:-$(awk '{for (i = 1; i < NF; i++) if ($i == "--total") print $(i + 1)}' <<<"$args")}
[[ -n $total ]] || { echo "AB_ARGS needs --total (or AB_TOTAL)" >&2; exit 2; }
work=$(mktemp -d /var/tmp/cairn-bench-ab.XXXXXX)
# shellcheck source=scripts/cluster3.sh
source scripts/cluster3.sh
stop_cluster3_on_exit "$work"
tck=$(getconf CLK_TCK)
cpu() {
  local p t=0
  for p in "${pids[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}
# written: bytes the members sent to the disk (WAL, pebble's flushes and
# compactions), from /proc/<pid>/io.
written() {
  local p t=0
  for p in "${pids[@]}"; do t=$((t + $(awk '$1 == "write_bytes:" {print $2}' "/proc/$p/io"))); done
  echo "$t"
}

# allocated: bytes the members' Go heaps allocated, from each one's
# go_memstats_alloc_bytes_total (etcd exports it too).
allocated() {
  local e v t=0
  for e in ${eps//,/ }; do
    v=$(cluster3_curl "$e" /metrics | awk '$1 == "go_memstats_alloc_bytes_total" {printf "%.0f", $2}')
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

run() {
  local bin=$1 dir=$work/run eps="" p
  rm -rf "$dir"
  mkdir -p "$dir"
  sync # the last run's data is written back before this one is measured
  start_cluster3 "$bin" "$dir" 25379
  local cpu0 cpu1 w0 w1 a0 a1 rss=0 m
  cpu0=$(cpu) w0=$(written) a0=$(allocated)
  # shellcheck disable=SC2086 # AB_ARGS is a list of arguments
  local TIMEFORMAT='%U %S' # bash's time: the benchmark client's CPU-s
  { time "$ref/benchmark" --endpoints "$eps" "${cluster3_tls[@]}" $args >"$dir/out" 2>&1 || true; } 2>"$dir/client-time"
  cpu1=$(cpu) w1=$(written) a1=$(allocated)
  for p in "${pids[@]}"; do
    m=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$p/status")
    ((rss < m)) && rss=$m
  done
  stop_cluster3
  printf '| %s | %s | %s | %s | %s | %d | %d | %d |\n' "$(basename "$bin")" \
    "$(tr '\r' '\n' <"$dir/out" | awk '$1 == "Requests/sec:" {printf "%.0f", $2; exit}')" \
    "$(tr '\r' '\n' <"$dir/out" | awk '$1 == "99%" {printf "%.1f", $3 * 1000; exit}')" \
    "$(awk -v t=$((cpu1 - cpu0)) -v hz="$tck" -v n="$total" 'BEGIN { printf "%.3f", t / hz / n * 10000 }')" \
    "$(awk -v n="$total" '{ printf "%.3f", ($1 + $2) / n * 10000 }' "$dir/client-time")" \
    $((rss / 1024)) $(((w1 - w0) >> 20)) $(((a1 - a0) / total))
}

echo "benchmark $args; 3 members, fresh clusters${CLUSTER3_TLS:+, https client URLs}, $rounds round(s); $(date -u '+%F %H:%M UTC')"
echo
echo '| binary | req/s | p99 ms | members CPU-s/10k | client CPU-s/10k | peak RSS MiB | members wrote MiB | members allocated B/req |'
echo '| --- | --- | --- | --- | --- | --- | --- | --- |'
for ((r = 0; r < rounds; r++)); do
  for bin in "$@"; do
    run "$bin"
  done
done
