#!/usr/bin/env bash
# CPU profiles of the three members of a fresh cluster while one etcd
# benchmark line runs against it: where #21's lines spend their CPU
# ("profile first"). Starts a 3-member cluster of one server binary on
# loopback with --enable-pprof, starts etcd's benchmark tool (from
# ../shared/tools/etcd-reference.sh) with PROFILE_ARGS, waits PROFILE_WAIT
# seconds (default 3) for it to get going, takes a PROFILE_SECONDS (default
# 10) CPU profile of every member at once, and waits for the benchmark.
#
#   go build -o /tmp/cairn ./cmd/cairn && scripts/profile3.sh /tmp/cairn /tmp/prof
#   go tool pprof -top -cum /tmp/cairn /tmp/prof/m0.prof
#
# OUTDIR gets m0.prof, m1.prof and m2.prof, leader (the leader's member
# name), and bench.out (the benchmark's output). The default line is the
# README table's put with 100 clients, long enough to outlast the profile:
#   PROFILE_ARGS="--target-leader --conns 10 --clients 100 put --key-size 8
#     --sequential-keys --val-size 256 --total 300000"
# Every process started here is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: profile3.sh BINARY OUTDIR}
out=${2:?usage: profile3.sh BINARY OUTDIR}
args=${PROFILE_ARGS:-"--target-leader --conns 10 --clients 100 put --key-size 8 --sequential-keys --val-size 256 --total 300000"}
ref=$(ETCD_REF_VERSION=v3.7.3 bash ../shared/tools/etcd-reference.sh)
mkdir -p "$out"
work=$(mktemp -d /var/tmp/cairn-profile.XXXXXX)
# shellcheck source=scripts/cluster3.sh
source scripts/cluster3.sh
stop_cluster3_on_exit "$work"
start_cluster3 "$bin" "$work" 28379 --enable-pprof

# shellcheck disable=SC2086 # PROFILE_ARGS is a list of arguments
"$ref/benchmark" --endpoints "$eps" "${cluster3_tls[@]}" $args >"$out/bench.out" 2>&1 &
bench=$!
sleep "${PROFILE_WAIT:-3}" # the benchmark's clients connect and start
i=0 curls=()
for ep in ${eps//,/ }; do
  cluster3_curl "$ep" "/debug/pprof/profile?seconds=${PROFILE_SECONDS:-10}" >"$out/m$i.prof" &
  curls+=($!)
  i=$((i + 1))
done
wait "${curls[@]}"
i=0
for ep in ${eps//,/ }; do
  metrics=$(cluster3_curl "$ep" /metrics) # not piped into grep -q: pipefail and SIGPIPE
  if grep -q '^etcd_server_is_leader 1' <<<"$metrics"; then echo "m$i" >"$out/leader"; fi
  i=$((i + 1))
done
wait "$bench" || echo "the benchmark failed: see $out/bench.out" >&2
grep -E 'Requests/sec|Total:' "$out/bench.out" || true
echo "profiles in $out (leader: $(cat "$out/leader" 2>/dev/null || echo unknown))"
