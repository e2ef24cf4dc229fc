#!/usr/bin/env bash
# What a member's gRPC server costs per small read, measured against its
# floor: etcd's benchmark tool (serializable ranges of one 256-byte key, 100
# clients on 10 connections) against scripts/h2floor in its three modes
# (a request answered on the connection's reader goroutine; by the reader
# and written by a writer goroutine; by a pooled worker and written by a
# writer goroutine), a one-member Cairn and a one-member stock etcd, in
# alternating rounds, each on a fresh process and data directory.
#
#   go build -o /tmp/cairn ./cmd/cairn
#   scripts/h2floor.sh 3 /tmp/cairn          # TOTAL=200000 requests a run
#
# Prints requests/s, p99, the server's CPU-s per 10k requests (user +
# kernel from /proc/<pid>/stat) and the benchmark client's (bash's time).
# h2floor answers from memory; the others read their stores. Every
# process started here is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: h2floor.sh ROUNDS CAIRN_BINARY}
cairn=${2:?usage: h2floor.sh ROUNDS CAIRN_BINARY}
ref=$(ETCD_REF_VERSION=v3.7.3 bash ../shared/tools/etcd-reference.sh)
total=${TOTAL:-200000}
port=23379
tck=$(getconf CLK_TCK)
work=$(mktemp -d /var/tmp/cairn-h2floor.XXXXXX)
go build -o "$work/h2floor" ./scripts/h2floor
pid=""
trap '[[ -n $pid ]] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT

run() {
  local name=$1 dir=$work/run c0 c1 i
  rm -rf "$dir"
  mkdir -p "$dir"
  local member=(--data-dir "$dir/data" --log-level error
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port"
    --listen-peer-urls "http://127.0.0.1:$((port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))"
    --initial-cluster "default=http://127.0.0.1:$((port + 1))")
  case $name in
    h2floor-*) "$work/h2floor" --mode "${name#h2floor-}" --addr "127.0.0.1:$port" >"$dir/log" 2>&1 & ;;
    cairn) "$cairn" "${member[@]}" >"$dir/log" 2>&1 & ;;
    etcd) "$ref/etcd" "${member[@]}" >"$dir/log" 2>&1 & ;;
  esac
  pid=$!
  for ((i = 0; ; i++)); do
    if [[ $name == h2floor-* ]]; then
      "$ref/etcdctl" --endpoints "127.0.0.1:$port" get abc --consistency=s >/dev/null 2>&1 && break
    else
      "$ref/etcdctl" --endpoints "127.0.0.1:$port" put abc "$(printf 'v%.0s' {1..256})" >/dev/null 2>&1 && break
    fi
    ((i < 150)) || { echo "$name did not answer:" >&2; tail -3 "$dir/log" >&2; exit 1; }
    sleep 0.2
  done
  c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local TIMEFORMAT='%U %S'
  { time "$ref/benchmark" --endpoints "127.0.0.1:$port" --conns 10 --clients 100 \
    range abc --consistency s --total "$total" >"$dir/out" 2>&1 || true; } 2>"$dir/client-time"
  c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  printf '| %s | %s | %s | %s | %s |\n' "$name" \
    "$(tr '\r' '\n' <"$dir/out" | awk '$1 == "Requests/sec:" {printf "%.0f", $2; exit}')" \
    "$(tr '\r' '\n' <"$dir/out" | awk '$1 == "99%" {printf "%.1f", $3 * 1000; exit}')" \
    "$(awk -v t=$((c1 - c0)) -v hz="$tck" -v n="$total" 'BEGIN { printf "%.3f", t / hz / n * 10000 }')" \
    "$(awk -v n="$total" '{ printf "%.3f", ($1 + $2) / n * 10000 }' "$dir/client-time")"
}

echo "serializable range of one key, 100 clients, 10 conns, $total requests; 1 member; $rounds round(s); $(date -u '+%F %H:%M UTC')"
echo
echo '| server | req/s | p99 ms | server CPU-s/10k | client CPU-s/10k |'
echo '| --- | --- | --- | --- | --- |'
for ((r = 0; r < rounds; r++)); do
  for s in h2floor-inline h2floor-writer h2floor-workers cairn etcd; do
    run "$s"
  done
done
