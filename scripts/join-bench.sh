#!/usr/bin/env bash
# join-bench.sh: how long a member added to a running cluster takes to catch
# up. A one-member cluster gets N puts (etcd's benchmark tool, 256-byte
# values, N distinct keys), then `member add` and the new member's start
# with --initial-cluster-state=existing; the time printed runs from that
# start until the new member's applied index reaches the leader's index
# taken before it started. Then both members' HashKV are printed (equal
# within one binary).
#
# usage: scripts/join-bench.sh <server binary> [label]
#   N=100000 (keys), PORT=11790 (clients on PORT+1, PORT+2; peers PORT+11, +12)
#   ETCDCTL and BENCHMARK default to the reference binaries
#   (../shared/tools/etcd-reference.sh; the benchmark tool is 3.6.6's).
# The same script runs stock etcd: pass its binary. Nothing here is a test;
# CI does not run it.
set -euo pipefail
BIN=$(realpath "$1"); LABEL=${2:-$(basename "$BIN")}
N=${N:-100000}; PORT=${PORT:-11790}
ETCDCTL=${ETCDCTL:-$HOME/.cache/etcd-reference/v3.7.3/etcdctl}
BENCHMARK=${BENCHMARK:-$HOME/.cache/etcd-reference/v3.6.6/benchmark}
W=$(mktemp -d); cd "$W"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
c1=127.0.0.1:$((PORT+1)); c2=127.0.0.1:$((PORT+2)); p1=http://127.0.0.1:$((PORT+11)); p2=http://127.0.0.1:$((PORT+12))
start() { # name client-addr peer-url initial-cluster state
	timeout 900 "$BIN" --name "$1" --data-dir "$1" --listen-client-urls "http://$2" --advertise-client-urls "http://$2" \
		--listen-peer-urls "$3" --initial-advertise-peer-urls "$3" --initial-cluster "$4" \
		--initial-cluster-state "$5" --snapshot-count 10000 >"$1.log" 2>&1 &
	pids+=($!)
}
start a "$c1" "$p1" "a=$p1" new
until "$ETCDCTL" --endpoints "$c1" endpoint health >/dev/null 2>&1; do sleep 0.2; done
"$BENCHMARK" --endpoints "$c1" --clients 16 --conns 4 put --total "$N" --key-size 16 --val-size 256 \
	--key-space-size "$N" --sequential-keys >/dev/null 2>&1
"$ETCDCTL" --endpoints "$c1" member add b --peer-urls="$p2" >/dev/null
lead=$("$ETCDCTL" --endpoints "$c1" endpoint status -w json | grep -o '"raftIndex":[0-9]*' | cut -d: -f2)
t0=$(date +%s.%N)
start b "$c2" "$p2" "a=$p1,b=$p2" existing
until applied=$("$ETCDCTL" --endpoints "$c2" endpoint status -w json 2>/dev/null | grep -o '"raftAppliedIndex":[0-9]*' | cut -d: -f2) &&
	[ -n "$applied" ] && [ "$applied" -ge "$lead" ]; do sleep 0.05; done
t1=$(date +%s.%N)
echo "$LABEL: $N keys, leader index $lead; the new member applied it $(echo "$t1 - $t0" | bc) s after its start"
"$ETCDCTL" --endpoints "$c1,$c2" endpoint hashkv
