# shellcheck shell=bash
# Sourced by the A/B benchmark scripts (bench-ab.sh, bench-big.sh): starts
# a fresh 3-member cluster of one server binary on loopback and waits for
# it to take a write.
#
#   start_cluster3 BINARY DIR PORT [FLAG...]
#
# Members m0-m2 keep their data under DIR (m0, m1, m2, and their logs
# m0.log...), listen for clients on PORT, PORT+2, PORT+4 and for peers on
# the port after each, and get the FLAGs beyond the common ones. Their pids
# are appended to the caller's array pids and their client endpoints set in
# eps (comma-separated). Needs $ref, the folder of etcd-reference.sh's
# etcdctl. Exits if the cluster takes no write within 30 s or a member has
# exited. PORT is best below 32768, where Linux picks no ephemeral ports
# (a connection's local port could take a member's). stop_cluster3
# kills them; stop_cluster3_on_exit does so when the script exits.
start_cluster3() {
  local bin=$1 dir=$2 port=$3 i tries=0 started=()
  shift 3
  launch_cluster3 "$bin" "$dir" "$port" "$@"
  started=("${pids[@]: -3}")
  until "$ref/etcdctl" --endpoints "$eps" --command-timeout 2s put warm x >/dev/null 2>&1; do
    tries=$((tries + 1))
    if ((tries > 150)); then echo "cluster of $bin did not answer" >&2; exit 1; fi
    sleep 0.2
  done
  # Two members take a write without the third: one that failed to start
  # (its port taken, say) would leave the benchmark waiting on it.
  for i in 0 1 2; do
    if ! kill -0 "${started[i]}" 2>/dev/null; then
      echo "member m$i of $bin exited:" >&2
      tail -3 "$dir/m$i.log" >&2
      exit 1
    fi
  done
}

# launch_cluster3 BINARY DIR PORT [FLAG...] starts the three members as
# start_cluster3 does (on DIR's data if it holds some) and returns at once,
# without waiting for them to answer: the caller times their start.
launch_cluster3() {
  local bin=$1 dir=$2 port=$3 initial="" i c p
  shift 3
  eps=""
  for i in 0 1 2; do initial+="${initial:+,}m$i=http://127.0.0.1:$((port + 2 * i + 1))"; done
  for i in 0 1 2; do
    c=$((port + 2 * i)) p=$((c + 1))
    "$bin" --name "m$i" --data-dir "$dir/m$i" --log-level error "$@" \
      --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
      --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
      --initial-cluster "$initial" >>"$dir/m$i.log" 2>&1 &
    pids+=($!)
    eps+="${eps:+,}127.0.0.1:$c"
  done
}

# stop_cluster3 kills the members in pids (SIGKILL), waits for them and
# empties pids.
stop_cluster3() {
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

# stop_cluster3_on_exit [DIR] empties pids and, when the script exits,
# stops the cluster (stop_cluster3) and removes DIR, if given.
stop_cluster3_on_exit() {
  pids=()
  cluster3_scratch=${1:-}
  trap 'stop_cluster3; [[ -z $cluster3_scratch ]] || rm -rf "$cluster3_scratch"' EXIT
}
