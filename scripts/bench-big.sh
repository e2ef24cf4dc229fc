#!/usr/bin/env bash
# Puts of 1 MiB values on fresh 3-member clusters, Cairn and stock etcd
# 3.7.3 alternating, and what each put costs the members: the numbers of
# the README's "1 MiB values" paragraphs (#21).
#
#   scripts/bench-big.sh                       # 2 rounds, 20k small puts then 600 of 1 MiB
#   BIG_ROUNDS=3 BIG_PRE=20000 BIG_N=1500 scripts/bench-big.sh
#   BIG_BINARIES="/tmp/cairn-old /tmp/cairn-new" scripts/bench-big.sh  # A/B two builds
#
# Each run starts a fresh cluster of one binary, puts BIG_PRE values of
# 256 bytes over 100,000 keys (100 clients), then BIG_N values of 1 MiB to
# one key (100 clients, 10 connections, to the leader: as bench.sh's big
# line), and reports for the 1 MiB phase: puts/s, p99 and failed requests
# (the benchmark tool's), the members' CPU per put (user + kernel, and the
# kernel's part, from /proc/<pid>/stat), their minor page faults per put,
# the data disk's MiB written per put (its /proc/diskstats sectors around
# the phase, with a sync after it; "-" if the data dir is on no block
# device) and the largest member's peak RSS. Runs alternate between the
# binaries, BIG_ROUNDS times: a shared machine's load moves between runs
# by more than most changes measured here.
#
# Binaries: BIG_BINARIES (default: Cairn built from this tree, then etcd
# 3.7.3 from ../shared/tools/etcd-reference.sh, which also provides the
# benchmark tool). Data lives under $BENCH_DIR (default: a temporary
# directory on the real disk). Every process started here is killed on
# exit.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${BIG_ROUNDS:-2}
pre=${BIG_PRE:-20000}
n=${BIG_N:-600}
ref=$(ETCD_REF_VERSION=v3.7.3 bash ../shared/tools/etcd-reference.sh)
work=${BENCH_DIR:-$(mktemp -d /var/tmp/cairn-bench-big.XXXXXX)}
mkdir -p "$work"
binaries=${BIG_BINARIES:-}
if [[ -z $binaries ]]; then
  go build -o "$work/cairn" ./cmd/cairn
  binaries="$work/cairn $ref/etcd"
fi
# shellcheck source=scripts/cluster3.sh
source scripts/cluster3.sh
if [[ -n ${BENCH_DIR:-} ]]; then
  stop_cluster3_on_exit # BENCH_DIR's data is kept
else
  stop_cluster3_on_exit "$work"
fi

# The block device under $work, for its sectors written.
dev=$(df --output=source "$work" | tail -1)
dev=${dev#/dev/}
grep -q " $dev " /proc/diskstats || dev=""
sectors() { [[ -n $dev ]] && awk -v d="$dev" '$3 == d {print $10}' /proc/diskstats || echo 0; }
# sum_stat FIELD: the sum of field FIELD of the members' /proc/<pid>/stat.
sum_stat() {
  local p t=0
  for p in "${pids[@]}"; do t=$((t + $(awk -v f="$1" '{print $f}' "/proc/$p/stat"))); done
  echo "$t"
}
tck=$(getconf CLK_TCK)

# run BINARY: one fresh cluster, one row of the table.
run() {
  local bin=$1 dir=$work/run eps="" p out=$work/big.out
  rm -rf "$dir"
  mkdir -p "$dir"
  sync # the last run's data is written back before this one is measured
  start_cluster3 "$bin" "$dir" 22379 --quota-backend-bytes 8589934592
  "$ref/benchmark" --endpoints "$eps" --target-leader --conns 10 --clients 100 \
    put --key-size 8 --val-size 256 --key-space-size 100000 --total "$pre" >/dev/null 2>&1
  sync
  local cpu0 sys0 flt0 sec0 cpu1 sys1 flt1 sec1
  cpu0=$(($(sum_stat 14) + $(sum_stat 15))) sys0=$(sum_stat 15) flt0=$(sum_stat 10) sec0=$(sectors)
  "$ref/benchmark" --endpoints "$eps" --target-leader --conns 10 --clients 100 \
    put --key-size 8 --sequential-keys --val-size 1048576 --total "$n" >"$out" 2>/dev/null || true
  cpu1=$(($(sum_stat 14) + $(sum_stat 15))) sys1=$(sum_stat 15) flt1=$(sum_stat 10)
  local rss=0 m
  for p in "${pids[@]}"; do
    m=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$p/status")
    ((rss < m)) && rss=$m
  done
  stop_cluster3
  sync
  sec1=$(sectors)
  local rate p99 failed disk="-"
  rate=$(tr '\r' '\n' <"$out" | awk '$1 == "Requests/sec:" {printf "%.1f", $2; exit}')
  p99=$(tr '\r' '\n' <"$out" | awk '$1 == "99%" {printf "%.2f", $3; exit}')
  failed=$(tr '\r' '\n' <"$out" | awk '/^Error distribution:/ {e = 1; next} e && /^ *\[[0-9]+\]/ {gsub(/[][]/, "", $1); s += $1} END {print s + 0}')
  [[ -n $dev ]] && disk=$(awk -v s=$((sec1 - sec0)) -v n="$n" 'BEGIN { printf "%.2f", s * 512 / 1048576 / n }')
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(basename "$bin")" "${rate:--}" "${p99:--}" "$failed" \
    "$(awk -v t=$((cpu1 - cpu0)) -v hz="$tck" -v n="$n" 'BEGIN { printf "%.1f", t / hz / n * 1000 }')" \
    "$(awk -v t=$((sys1 - sys0)) -v hz="$tck" -v n="$n" 'BEGIN { printf "%.1f", t / hz / n * 1000 }')" \
    $(((flt1 - flt0) / n)) "$disk" $((rss / 1024))
}

echo "$n puts of 1 MiB after $pre of 256 B, 3 members, fresh clusters, $rounds round(s); $(date -u '+%F %H:%M UTC')"
echo
echo '| binary | puts/s | p99 s | failed | members CPU ms/put | of it kernel | minor faults/put | disk MiB/put | peak RSS MiB |'
echo '| --- | --- | --- | --- | --- | --- | --- | --- | --- |'
for ((r = 0; r < rounds; r++)); do
  for bin in $binaries; do
    run "$bin"
  done
done
