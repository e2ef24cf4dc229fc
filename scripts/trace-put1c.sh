#!/usr/bin/env bash
# Where a put with one client spends its time (#21's put-1c line): starts a
# fresh 3-member cluster of one server binary on loopback with
# --enable-pprof, puts one key after another from one client (etcd's
# benchmark tool, from ../shared/tools/etcd-reference.sh), takes a 1 s Go
# execution trace of the leader and of a follower during the puts, and
# prints the steps of a put's path through each member's goroutines with
# their medians and 90th percentiles (scripts/putpath reads the traces).
#
#   go build -o /tmp/cairn ./cmd/cairn && scripts/trace-put1c.sh /tmp/cairn
#
# The traces stay in TRACE_DIR if it is set (open one with `go tool trace`).
# Every process started here is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: trace-put1c.sh BINARY}
ref=$(ETCD_REF_VERSION=v3.7.3 bash ../shared/tools/etcd-reference.sh)
work=$(mktemp -d /var/tmp/cairn-trace.XXXXXX)
out=${TRACE_DIR:-$work}
mkdir -p "$out"
# shellcheck source=scripts/cluster3.sh
source scripts/cluster3.sh
stop_cluster3_on_exit "$work"
go build -o "$work/putpath" ./scripts/putpath
start_cluster3 "$bin" "$work" 27379 --enable-pprof

# The leader is the endpoint whose member ID is the leader's.
leader="" follower=""
for ep in ${eps//,/ }; do
  fields=$("$ref/etcdctl" --endpoints "$ep" endpoint status -w fields)
  id=$(awk '$1 == "\"MemberID\"" {print $3}' <<<"$fields")
  lead=$(awk '$1 == "\"Leader\"" {print $3}' <<<"$fields")
  if [[ $id == "$lead" ]]; then leader=$ep; elif [[ -z $follower ]]; then follower=$ep; fi
done
[[ -n $leader && -n $follower ]] || { echo "no leader among $eps" >&2; exit 1; }

timeout 120 "$ref/benchmark" --endpoints "$eps" --target-leader --conns 1 --clients 1 \
  put --key-size 8 --sequential-keys --val-size 256 --total 5000 >"$work/bench.out" 2>&1 &
bench=$!
# The trace starts once the puts run (the benchmark's first second
# includes its connection set-up).
until [[ -s $work/bench.out ]]; do
  kill -0 "$bench" 2>/dev/null || { echo "the benchmark ended before it printed anything" >&2; exit 1; }
  sleep 0.1
done
sleep 1
curl -sf "http://$leader/debug/pprof/trace?seconds=1" -o "$out/leader.trace" &
c1=$!
curl -sf "http://$follower/debug/pprof/trace?seconds=1" -o "$out/follower.trace" &
c2=$!
wait "$c1" "$c2"
wait "$bench"
echo "put, 1 client: $(tr '\r' '\n' <"$work/bench.out" | awk '$1 == "Requests/sec:" {printf "%.0f/s", $2; exit}')"
for role in leader follower; do
  go tool trace -d=parsed "$out/$role.trace" >"$out/$role.txt"
  echo
  "$work/putpath" -role "$role" "$out/$role.txt"
done
