#!/usr/bin/env bash
# backup-bench.sh: what a backup costs. A one-member cluster gets N puts
# (etcd's benchmark tool, 256-byte values, N distinct keys, then every key
# overwritten once: 2N revisions); then `etcdctl snapshot save` runs while
# the benchmark tool puts (16 clients, N/2 puts) beside it. Printed: the
# time the save took, the file's size, and the benchmark tool's summary of
# the same writes alone and with the save beside them.
#
# usage: scripts/backup-bench.sh <server binary> [label]
#   N=100000 (keys), PORT=11740 (clients on PORT+1; peers on PORT+11)
#   ETCDCTL and BENCHMARK default to the reference binaries
#   (../shared/tools/etcd-reference.sh; the benchmark tool is 3.6.6's).
# The same script runs stock etcd: pass its binary. Nothing here is a test;
# CI does not run it.
set -euo pipefail
BIN=$(realpath "$1"); LABEL=${2:-$(basename "$BIN")}
N=${N:-100000}; PORT=${PORT:-11740}
ETCDCTL=${ETCDCTL:-$HOME/.cache/etcd-reference/v3.7.3/etcdctl}
BENCHMARK=${BENCHMARK:-$HOME/.cache/etcd-reference/v3.6.6/benchmark}
W=$(mktemp -d); cd "$W"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
c=127.0.0.1:$((PORT+1)); p=http://127.0.0.1:$((PORT+11))
timeout 900 "$BIN" --name a --data-dir a --listen-client-urls "http://$c" --advertise-client-urls "http://$c" \
	--listen-peer-urls "$p" --initial-advertise-peer-urls "$p" --initial-cluster "a=$p" >a.log 2>&1 &
pids+=($!)
until "$ETCDCTL" --endpoints "$c" endpoint health >/dev/null 2>&1; do sleep 0.2; done
for _ in 1 2; do
	"$BENCHMARK" --endpoints "$c" --clients 16 --conns 4 put --total "$N" --key-size 16 --val-size 256 \
		--key-space-size "$N" --sequential-keys >/dev/null 2>&1
done
# The same writes twice: alone, then with a save started 0.5 s in (the
# save is over before they are: compare the save's time with theirs).
bench() {
	"$BENCHMARK" --endpoints "$c" --clients 16 --conns 4 put --total $((N / 2)) --key-size 16 --val-size 256 \
		--key-space-size "$N" 2>&1 | tr '\r' '\n' | grep -E 'Total:|Requests/sec|99%|99.9%' | tr -s ' \t' ' ' | tr '\n' ' '
}
echo "$LABEL: writes alone: $(bench)"
bench >with.txt &
load=$!
sleep 0.5 # the writes are running before the save starts (a benchmark, not a test)
t0=$(date +%s.%N)
"$ETCDCTL" --endpoints "$c" snapshot save backup.db >/dev/null 2>&1
t1=$(date +%s.%N)
wait "$load"
echo "$LABEL: writes with a save: $(cat with.txt)"
echo "$LABEL: $N keys, $((2 * N)) revisions: snapshot save took $(echo "$t1 - $t0" | bc) s, $(stat -c %s backup.db) bytes"
