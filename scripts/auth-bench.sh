#!/usr/bin/env bash
# What auth costs: etcd's benchmark tool against a one-member Cairn and a
# one-member stock etcd 3.7.3, each first with auth off, then with auth on
# and the benchmark signed in as a user whose role grants readwrite on the
# benchmark's keys (so every request is checked against a permission, not
# passed as root). Prints requests/s for put and for linearizable range.
#
#   scripts/auth-bench.sh                  # 20,000 requests per line
#   AUTH_BENCH_TOTAL=100000 scripts/auth-bench.sh
#
# Binaries come from ../shared/tools/etcd-reference.sh; data directories
# live on the real disk under a temporary directory; every process started
# here is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
total=${AUTH_BENCH_TOTAL:-20000}
ref=$(ETCD_REF_VERSION=v3.7.3 bash ../shared/tools/etcd-reference.sh)
work=$(mktemp -d /var/tmp/cairn-auth-bench.XXXXXX)
go build -o "$work/cairn" ./cmd/cairn
pid=""
cleanup() {
  [[ -z $pid ]] || kill -9 "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ep=127.0.0.1:32479
ctl() { "$ref/etcdctl" --endpoints "$ep" "$@" >/dev/null; }

# start BINARY: a fresh one-member cluster on $ep.
start() {
  rm -rf "$work/data"
  "$1" --name b --data-dir "$work/data" --listen-client-urls "http://$ep" --advertise-client-urls "http://$ep" \
    --listen-peer-urls http://127.0.0.1:32480 --initial-advertise-peer-urls http://127.0.0.1:32480 \
    --initial-cluster b=http://127.0.0.1:32480 --log-level error --bcrypt-cost 4 >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    "$ref/etcdctl" --endpoints "$ep" endpoint health >/dev/null 2>&1 && return
    sleep 0.1 # polling a starting process
  done
  echo "$1 did not start" >&2
  cat "$work/log" >&2
  exit 1
}

stop() {
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}

# bench LABEL ARGS...: one benchmark line, its requests/s.
bench() {
  local label=$1
  shift
  local rps
  rps=$("$ref/benchmark" --endpoints "$ep" --conns 10 --clients 100 "$@" 2>/dev/null | awk '/Requests\/sec/ {print $2}')
  printf '%-34s %10s req/s\n' "$label" "$rps"
}

for server in cairn etcd; do
  bin=$work/cairn
  [[ $server == etcd ]] && bin=$ref/etcd
  start "$bin"
  bench "$server put, auth off" put --total "$total" --key-size 8 --val-size 256 --key-space-size 10000
  bench "$server range, auth off" range k --total "$total" --consistency l
  ctl user add root:rootpw
  ctl role add root
  ctl user grant-role root root
  ctl role add bench
  # The benchmark's put keys are 8 random bytes: every key (etcdctl's
  # --prefix on the empty key).
  ctl role grant-permission bench readwrite '' --prefix
  ctl user add bench:benchpw
  ctl user grant-role bench bench
  ctl auth enable
  bench "$server put, auth on" --user bench:benchpw put --total "$total" --key-size 8 --val-size 256 --key-space-size 10000
  bench "$server range, auth on" --user bench:benchpw range k --total "$total" --consistency l
  stop
done
