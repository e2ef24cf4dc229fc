#!/usr/bin/env bash
# Writes beside paginated reads of a whole store: the stall a Kubernetes
# list's pages could put on every write (#21).
#
#   PAGESTALL_KEYS=400000 scripts/bench-pagestall.sh /tmp/old /tmp/new /tmp/new /tmp/old
#
# For each binary in turn: a fresh 3-member cluster on loopback (as
# bench-ab.sh's), loaded with PAGESTALL_KEYS keys of 256 bytes by etcd's
# benchmark tool (100 clients); then 4 clients read serializable pages of
# 500 over the whole store (600 pages in all, each counting every key, as
# a limited range does) while 10 clients put 20,000 values over the same
# keys. Prints the load's rate, the puts' slowest, p99, p99.9 and rate, and
# the reads' average and slowest. Run the binaries alternating: the
# machine's load moves between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
(($# > 0)) || { echo "usage: bench-pagestall.sh BINARY..." >&2; exit 2; }
ref=$(ETCD_REF_VERSION=v3.7.3 bash ../shared/tools/etcd-reference.sh)
n=${PAGESTALL_KEYS:-400000}
# shellcheck source=scripts/cluster3.sh
source scripts/cluster3.sh
port=26379
for bin in "$@"; do
  work=$(mktemp -d /var/tmp/cairn-pagestall.XXXXXX)
  stop_cluster3_on_exit "$work"
  start_cluster3 "$bin" "$work" "$port"
  echo "== $bin"
  "$ref/benchmark" --endpoints "$eps" --conns 10 --clients 100 put --total "$n" --key-space-size "$n" \
    --sequential-keys --key-size 8 --val-size 256 2>&1 | tr '\r' '\n' | grep -E "Requests/sec" | sed 's/^ */load  /'
  "$ref/benchmark" --endpoints "$eps" --conns 4 --clients 4 range $'\x01' $'\xff' --limit 500 \
    --consistency s --total 600 >"$work/range.out" 2>&1 &
  reader=$!
  "$ref/benchmark" --endpoints "$eps" --conns 10 --clients 10 put --total 20000 --key-space-size "$n" \
    --key-size 8 --val-size 256 2>&1 | tr '\r' '\n' | grep -E "^ *(Slowest|Requests/sec|99%|99.9%)" | sed 's/^ */put   /'
  wait "$reader"
  tr '\r' '\n' <"$work/range.out" | grep -E "^ *(Slowest|Average)" | sed 's/^ */reads /'
  stop_cluster3
  rm -rf "$work"
done
