#!/usr/bin/env bash
# Runs etcd's benchmark tool against Cairn and stock etcd side by side, on
# loopback, and prints requests/s for each and the Cairn/etcd ratio.
#
#   scripts/bench.sh                 # 1- and 3-member clusters
#   BENCH_SCALE=4 scripts/bench.sh   # 4x the requests per line
#   BENCH_SIZES="1" scripts/bench.sh # only the 1-member clusters
#   BENCH_LINES=watch scripts/bench.sh # only the watch lines (default "kv watch lease")
#   BENCH_LINES="txn range100 watchget big" scripts/bench.sh # the other groups
#   BENCH_SIZES=3 BENCH_LINES=scale scripts/bench.sh # 1M keys: memory, disk, restart
#   BENCH_TLS=1 BENCH_SIZES=3 BENCH_LINES="kv txn" scripts/bench.sh # https:// client URLs
#
# Groups: kv (put with 1 and 100 clients, range of one key), watch (watch,
# watch-latency), lease (keep-alive), txn (txn-put of 4 puts, txn-mixed,
# stm), range100 (range --limit 100 over 20,000 keys, both consistencies),
# watchget (watch-get: 10,000 watchers catching up), big (puts of 1 MiB
# values; 1,500 of them, under etcd's 2 GiB quota), scale (1,000,000 keys
# on a fresh cluster: load rate, RSS at rest, disk, memory growth for a
# range of 100,000 keys, restart time after SIGTERM and SIGKILL; a table
# of its own). Every line but watch's
# reports requests/s, p99 latency and the members' CPU per request, and
# failed requests if any.
#
# Stock etcd 3.7.3 (the release Cairn follows), its etcdctl and etcd's
# benchmark tool (3.6.6's: the newest published; a client, it measures a
# 3.7 server as well) come from ../shared/tools/etcd-reference.sh (built
# from the Go module proxy, cached). Data directories live under
# $BENCH_DIR (default: a temporary directory on the real disk), so fsync
# costs are real. Every process started here is killed on exit.
#
# BENCH_TLS=1 serves the client URLs over https:// with kubeadm's client
# TLS flags (the members' certificate, a CA, --client-cert-auth; made by
# cluster3_certs of scripts/cluster3.sh under $BENCH_DIR), and the clients
# present a client certificate. The peer URLs stay http://.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${BENCH_SCALE:-1}
sizes=${BENCH_SIZES:-"1 3"}
benches=${BENCH_LINES:-"kv watch lease"}
ref=$(ETCD_REF_VERSION=v3.7.3 bash ../shared/tools/etcd-reference.sh)
work=${BENCH_DIR:-$(mktemp -d /var/tmp/cairn-bench.XXXXXX)}
mkdir -p "$work"
go build -o "$work/cairn" ./cmd/cairn
# tls: the clients' TLS flags (etcdctl, benchmark); scheme and tls_server:
# the members' client URLs and TLS flags.
tls=() tls_server=() scheme=http
if [[ -n ${BENCH_TLS:-} ]]; then
  # cluster3.sh's certificates and flags (CLUSTER3_TLS).
  CLUSTER3_TLS=$work/certs
  # shellcheck source=scripts/cluster3.sh
  source scripts/cluster3.sh
  cluster3_certs "$CLUSTER3_TLS"
  tls=("${cluster3_tls[@]}") tls_server=("${cluster3_server_tls[@]}") scheme=$cluster3_scheme
fi
# pids: the members of the cluster being measured (use SYSTEM selects it);
# all_pids: every member started, which the exit kills.
pids=()
all_pids=()
cleanup() {
  for p in "${all_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n ${BENCH_DIR:-} ]] || rm -rf "$work"
}
trap cleanup EXIT

# Below 32768: Linux takes no ephemeral ports there, so no connection
# can hold a member's port before it listens.
port=14379
# start_cluster BINARY NAME N: starts N members and sets eps to their
# client endpoints and base to their first port. (Not run in a subshell:
# it records the pids.)
eps=""
base=0
start_cluster() {
  # The last cluster's data (1.5 GB after the big line) may still be
  # waiting in the page cache: written back now, it is not charged to
  # this cluster's fsyncs (the first lines of one run measured 0.7x
  # without this, 1.1-1.5x with it).
  sync
  base=$port
  launch_members "$@" "$base"
  port=$((port + 2 * $3 + 10))
  wait_healthy "$2"
}

# launch_members BINARY NAME N BASE: starts (or restarts, on the data
# directories they left) N members on ports from BASE, sets eps.
launch_members() {
  local bin=$1 name=$2 n=$3 first=$4 initial="" i
  eps=""
  for ((i = 0; i < n; i++)); do
    initial+="${initial:+,}$name$i=http://127.0.0.1:$((first + 2 * i + 1))"
  done
  for ((i = 0; i < n; i++)); do
    local c=$((first + 2 * i)) p=$((first + 2 * i + 1))
    "$bin" --name "$name$i" --data-dir "$work/$name$i" --log-level error "${tls_server[@]}" \
      --listen-client-urls "$scheme://127.0.0.1:$c" --advertise-client-urls "$scheme://127.0.0.1:$c" \
      --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
      --initial-cluster "$initial" --initial-cluster-token "$name" >>"$work/$name$i.log" 2>&1 &
    pids+=($!)
    all_pids+=($!)
    eps+="${eps:+,}127.0.0.1:$c"
  done
}

wait_healthy() {
  local tries=0
  until "$ref/etcdctl" "${tls[@]}" --endpoints "$eps" --command-timeout 2s endpoint health >/dev/null 2>&1; do
    tries=$((tries + 1))
    if ((tries > 100)); then echo "cluster $1 did not become healthy" >&2; exit 1; fi
    sleep 0.2
  done
}

stop_cluster() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

# Both servers' clusters run side by side and each line runs on one, then
# at once on the other, the order flipping from line to line: the load
# other tenants put on the machine moves by more than many of the
# differences measured, and it moves less between two halves of one line
# (a minute) than between two halves of the whole run (five). use SYSTEM
# makes SYSTEM's cluster the current one (pids, eps).
declare -A sys_pids sys_eps
keep_cluster() { sys_pids[$1]="${pids[*]}"; sys_eps[$1]=$eps; }
use() {
  read -ra pids <<<"${sys_pids[$1]}"
  eps=${sys_eps[$1]}
}
# both FN ARGS...: runs FN SYSTEM ARGS... for each server, in the order of
# the line before flipped. Dirty pages the other server's line left (1.5 GB
# after the 1 MiB line) are written back first, so that they are not
# charged to this one's fsyncs.
flip=0
both() {
  local s order="cairn etcd"
  ((flip)) && order="etcd cairn"
  flip=$((1 - flip))
  for s in $order; do
    use "$s"
    sync
    "$@" "$s"
  done
}

# cpu_ticks: CPU time (user+system, clock ticks) the running members used.
cpu_ticks() {
  local t=0 p
  for p in "${pids[@]}"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
tck=$(getconf CLK_TCK)

# rate KEY EPS TOTAL ARGS...: runs one benchmark line; records requests/s,
# p99 latency (ms), failed requests and the servers' CPU seconds per 10,000
# requests under result, p99, failed and cpu [KEY]. (A rate is noisy on a
# shared machine; CPU per request much less.)
declare -A result cpu p99 failed
rate() {
  local key=$1 eps=$2 total=$3 out=$work/rate.out
  shift 3
  local before after
  before=$(cpu_ticks)
  if [[ $total == events=* ]]; then # watch-get has no --total: CPU per event
    total=${total#events=}
    "$ref/benchmark" "${tls[@]}" --endpoints "$eps" "$@" >"$out" 2>/dev/null || true
  else
    "$ref/benchmark" "${tls[@]}" --endpoints "$eps" "$@" --total "$total" >"$out" 2>/dev/null || true
  fi
  after=$(cpu_ticks)
  result[$key]=$(summary_value "$out" "Summary:" "Requests/sec:")
  p99[$key]=$(awk -v s="$(summary_value "$out" "Summary:" "99%")" 'BEGIN { if (s != "") printf "%.1f", s * 1000 }')
  failed[$key]=$(tr '\r' '\n' <"$out" | awk '/^Error distribution:/ {e = 1; next} e && /^ *\[[0-9]+\]/ {gsub(/[][]/, "", $1); n += $1} END {print n + 0}')
  cpu[$key]=$(awk -v t=$((after - before)) -v hz="$tck" -v n="$total" 'BEGIN { printf "%.3f", t / hz / n * 10000 }')
}

# fsync_rate: synchronous 4 KiB writes per second to $work's disk (dd
# with oflag=dsync: each write waits for the disk, as a WAL append's
# fdatasync does). A put from one client costs one such wait on each
# member (Cairn's WAL; its pebble batches are not synced per put), so
# this bounds the put-1c line.
fsync_rate() {
  local out
  out=$(dd if=/dev/zero of="$work/fsync.test" bs=4k count=1000 oflag=dsync 2>&1 | tail -1)
  rm -f "$work/fsync.test"
  # "4096000 bytes (4.1 MB, 3.9 MiB) copied, 1.2 s, 3.4 MB/s"
  awk -v l="$out" 'BEGIN { split(l, f, ", "); split(f[3], t, " "); if (t[1] > 0) printf "%.0f", 1000 / t[1] }'
}

lines=()
[[ " $benches " == *" kv "* ]] && lines+=("put-1c" "put-100c" "range-l" "range-s")
[[ " $benches " == *" lease "* ]] && lines+=("lease-ka")
[[ " $benches " == *" txn "* ]] && lines+=("txn-put" "txn-mixed" "stm")
[[ " $benches " == *" range100 "* ]] && lines+=("range100-l" "range100-s")
[[ " $benches " == *" watchget "* ]] && lines+=("watch-get")
[[ " $benches " == *" big "* ]] && lines+=("put-1mib")
[[ " $benches " == *" scale "* ]] && lines+=("load-1m")
# Each line below is LINE_FN N SYSTEM, on the current cluster (eps).
# Writes go to the leader, as etcd's benchmark docs run them, with the
# docs' flags: --sequential-keys without --key-space-size puts every
# value to one key (the tool's key is i % key-space-size, 1 by default).
put1c() {
  rate "$2,$1,put-1c" "$eps" $((2000 * scale)) --target-leader --conns 1 --clients 1 \
    put --key-size 8 --sequential-keys --val-size 256
}
put100c() {
  rate "$2,$1,put-100c" "$eps" $((40000 * scale)) --target-leader --conns 10 --clients 100 \
    put --key-size 8 --sequential-keys --val-size 256
  "$ref/etcdctl" "${tls[@]}" --endpoints "$eps" put foo bar >/dev/null
}
range_l() { rate "$2,$1,range-l" "$eps" $((40000 * scale)) --conns 10 --clients 100 range foo --consistency l; }
range_s() { rate "$2,$1,range-s" "$eps" $((40000 * scale)) --conns 10 --clients 100 range foo --consistency s; }

# txn lines: txn-put (4 puts of 256 bytes over 100,000 keys), txn-mixed (a
# range of at most 100 keys and a put, reads and writes half each, 10,000
# keys), stm (serializable-snapshot STM transactions over 1,000 keys, 4 keys
# each, half of them written), 100 clients over 10 connections.
txn_put() {
  rate "$2,$1,txn-put" "$eps" $((20000 * scale)) --target-leader --conns 10 --clients 100 \
    txn-put --txn-ops 4 --key-size 8 --key-space-size 100000 --val-size 256
}
txn_mixed() {
  rate "$2,$1,txn-mixed" "$eps" $((20000 * scale)) --conns 10 --clients 100 \
    txn-mixed --key-size 8 --key-space-size 10000 --val-size 256 --limit 100 --rw-ratio 1
}
stm() {
  rate "$2,$1,stm" "$eps" $((10000 * scale)) --conns 10 --clients 100 \
    stm --keys 1000 --keys-per-txn 4 --txn-wr-percent 50 --isolation ss --val-size 256
}

# range100 lines: 20,000 keys of 256 bytes, then ranges over all but the
# first of them (keys 0x01.. to 0xff) limited to 100, both consistencies:
# each answer counts the whole range and returns 100 keys.
range100_load() {
  "$ref/benchmark" "${tls[@]}" --endpoints "$eps" --target-leader --conns 10 --clients 100 \
    put --key-size 8 --sequential-keys --key-space-size 20000 --val-size 256 --total 20000 >/dev/null 2>&1
}
range100_l() {
  rate "$2,$1,range100-l" "$eps" $((20000 * scale)) --conns 10 --clients 100 \
    range $'\x01' $'\xff' --limit 100 --consistency l
}
range100_s() {
  rate "$2,$1,range100-s" "$eps" $((20000 * scale)) --conns 10 --clients 100 \
    range $'\x01' $'\xff' --limit 100 --consistency s
}

# summary_value FILE SECTION FIELD: FIELD's value (e.g. "Requests/sec:",
# "Average:", "99%") in the benchmark report SECTION (e.g. "Put summary:").
summary_value() {
  tr '\r' '\n' <"$1" | awk -v sec="$2" -v f="$3" '
    $0 == sec { in_sec = 1; next }
    /summary:$/ { in_sec = 0 }
    in_sec && $1 == f { print (f == "99%" ? $3 : $2); exit }'
}

# Watch lines: events delivered per second and server CPU per 10,000 events
# (benchmark watch: 10 streams x 100 watchers on one key, 1000 puts), and
# event latency (benchmark watch-latency: 10 streams x 10 watchers, puts at
# 200/s, 32-byte values).
declare -A wrate wcpu wavg wp99 wlcpu
watch_lines() {
  local n=$1 system=$2 before after out=$work/watch.out puts=$((1000 * scale))
  before=$(cpu_ticks)
  "$ref/benchmark" "${tls[@]}" --endpoints "$eps" --target-leader watch --streams 10 --watch-per-stream 100 \
    --put-total "$puts" >"$out" 2>/dev/null
  after=$(cpu_ticks)
  wrate[$system,$n]=$(summary_value "$out" "Watch events received summary:" "Requests/sec:")
  wcpu[$system,$n]=$(awk -v t=$((after - before)) -v hz="$tck" -v n=$((puts * 1000)) 'BEGIN { printf "%.3f", t / hz / n * 10000 }')
  before=$(cpu_ticks)
  "$ref/benchmark" "${tls[@]}" --endpoints "$eps" --target-leader watch-latency --streams 10 --watchers-per-stream 10 \
    --put-total "$puts" --put-rate 200 >"$out" 2>/dev/null
  after=$(cpu_ticks)
  wavg[$system,$n]=$(summary_value "$out" "Watch events summary:" "Average:")
  wp99[$system,$n]=$(summary_value "$out" "Watch events summary:" "99%")
  wlcpu[$system,$n]=$(awk -v t=$((after - before)) -v hz="$tck" -v n=$((puts * 100)) 'BEGIN { printf "%.3f", t / hz / n * 10000 }')
}

# scale_lines SYSTEM N BINARY NAME: the scale lines, on a fresh cluster.
# Loads 1,000,000 keys of 256-byte values (100 clients; its rate is the
# load-1m line), lets the members settle, then reads the largest member's
# RSS (VmRSS) and data directory (du), the first member's peak RSS growth
# (VmHWM, reset through clear_refs) while it answers one range of 100,000
# keys, and the time from starting every member again, after a SIGTERM
# and after a SIGKILL, to the first linearizable read answered.
declare -A srss sdisk sgrow sterm skill
rss_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
scale_lines() {
  local system=$1 n=$2 bin=$3 name=$4 p i m d
  rate "$system,$n,load-1m" "$eps" 1000000 --target-leader --conns 10 --clients 100 \
    put --key-size 8 --sequential-keys --key-space-size 1000000 --val-size 256
  sleep 10 # let flushes and compactions that the load started finish
  m=0
  for p in "${pids[@]}"; do
    ((m < $(rss_kib "$p" VmRSS))) && m=$(rss_kib "$p" VmRSS)
  done
  srss[$system,$n]=$((m / 1024))
  m=0
  for ((i = 0; i < n; i++)); do
    d=$(du -sk "$work/$name$i" | cut -f1)
    ((m < d)) && m=$d
  done
  sdisk[$system,$n]=$((m / 1024))
  p=${pids[0]}
  echo 5 >"/proc/$p/clear_refs" # VmHWM := VmRSS
  m=$(rss_kib "$p" VmRSS)
  "$ref/etcdctl" "${tls[@]}" --endpoints "${eps%%,*}" --command-timeout 120s get "" --prefix --limit 100000 >/dev/null
  sgrow[$system,$n]=$((($(rss_kib "$p" VmHWM) - m) / 1024))
  restart_time TERM "$bin" "$name" "$n"
  sterm[$system,$n]=$elapsed
  restart_time KILL "$bin" "$name" "$n"
  skill[$system,$n]=$elapsed
}

# restart_time SIGNAL BINARY NAME N: stops every member with SIGNAL, waits
# for them to exit, starts them again and sets elapsed to the seconds until a
# linearizable read is answered. (Not run in a subshell: it
# waits for the members and records the new pids.)
elapsed=0
restart_time() {
  local sig=$1 p start tries=0
  for p in "${pids[@]}"; do kill -"$sig" "$p"; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  start=$(date +%s.%N)
  launch_members "$2" "$3" "$4" "$base"
  until "$ref/etcdctl" "${tls[@]}" --endpoints "$eps" --command-timeout 1s get foo >/dev/null 2>&1; do
    tries=$((tries + 1))
    if ((tries > 3000)); then echo "cluster $3 did not answer after a restart" >&2; exit 1; fi
    sleep 0.05
  done
  elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
}

# watch_get N SYSTEM: 10,000 watchers on 10 streams, each catching up on 8
# events, while 10 clients get a key: the gets' rate and latency (the
# tool's report), the members' CPU per 10,000 events.
watch_get() {
  rate "$2,$1,watch-get" "$eps" events=80000 --conns 10 --clients 10 watch-get --watchers 10000 --streams 10 --events 8
}
put1mib() {
  rate "$2,$1,put-1mib" "$eps" 1500 --target-leader --conns 10 --clients 100 \
    put --key-size 8 --sequential-keys --val-size 1048576
}
lease_ka() { rate "$2,$1,lease-ka" "$eps" $((20000 * scale)) --conns 10 --clients 100 lease-keepalive; }

for n in $sizes; do
  if [[ " ${benches//scale/} " == *[a-z]* ]]; then # groups other than scale
    for system in cairn etcd; do
      bin=$work/cairn
      [[ $system == etcd ]] && bin=$ref/etcd
      rm -rf "$work"/"$system"*/
      pids=()
      start_cluster "$bin" "$system$n-" "$n"
      keep_cluster "$system"
    done
    if [[ " $benches " == *" kv "* ]]; then
      both put1c "$n"
      both put100c "$n"
      both range_l "$n"
      both range_s "$n"
    fi
    [[ " $benches " == *" watch "* ]] && both watch_lines "$n"
    [[ " $benches " == *" lease "* ]] && both lease_ka "$n"
    # range100 before txn: txn-put writes 55,000 more keys, which its
    # ranges would count.
    if [[ " $benches " == *" range100 "* ]]; then
      both range100_load "$n"
      both range100_l "$n"
      both range100_s "$n"
    fi
    if [[ " $benches " == *" txn "* ]]; then
      both txn_put "$n"
      both txn_mixed "$n"
      both stm "$n"
    fi
    [[ " $benches " == *" watchget "* ]] && both watch_get "$n"
    [[ " $benches " == *" big "* ]] && both put1mib "$n"
    for system in cairn etcd; do
      use "$system"
      stop_cluster
    done
    rm -rf "$work"/cairn*/ "$work"/etcd*/
  fi
  if [[ " $benches " == *" scale "* ]]; then
    # One server at a time: the restarts are CPU-bound, and RSS is read
    # at rest.
    for system in cairn etcd; do
      bin=$work/cairn
      [[ $system == etcd ]] && bin=$ref/etcd
      rm -rf "$work"/"$system"*/
      pids=()
      start_cluster "$bin" "$system$n-s" "$n"
      scale_lines "$system" "$n" "$bin" "$system$n-s"
      stop_cluster
      rm -rf "$work"/"$system"*/
    done
  fi
done

if [[ " $benches " == *" watch "* ]]; then
  printf '| members | benchmark | Cairn | etcd | Cairn vs etcd | Cairn CPU-s/10k events | etcd CPU-s/10k events | etcd/Cairn CPU |\n'
  printf '| --- | --- | --- | --- | --- | --- | --- | --- |\n'
  for n in $sizes; do
    c=${wrate[cairn,$n]:-0} e=${wrate[etcd,$n]:-0} cc=${wcpu[cairn,$n]:-0} ce=${wcpu[etcd,$n]:-0}
    printf '| %s | watch: events/s | %.0f | %.0f | %s | %s | %s | %s |\n' "$n" "$c" "$e" \
      "$(awk -v c="$c" -v e="$e" 'BEGIN { if (e > 0) printf "%.2fx", c / e; else print "n/a" }')" "$cc" "$ce" \
      "$(awk -v c="$cc" -v e="$ce" 'BEGIN { if (c > 0) printf "%.2f", e / c; else print "n/a" }')"
    for stat in avg p99; do
      if [[ $stat == avg ]]; then c=${wavg[cairn,$n]:-0} e=${wavg[etcd,$n]:-0}; else c=${wp99[cairn,$n]:-0} e=${wp99[etcd,$n]:-0}; fi
      printf '| %s | watch-latency: %s ms | %.2f | %.2f | %s | %s | %s | %s |\n' "$n" "$stat" \
        "$(awk -v v="$c" 'BEGIN { print v * 1000 }')" "$(awk -v v="$e" 'BEGIN { print v * 1000 }')" \
        "$(awk -v c="$c" -v e="$e" 'BEGIN { if (c > 0) printf "%.2fx faster", e / c; else print "n/a" }')" \
        "${wlcpu[cairn,$n]:-0}" "${wlcpu[etcd,$n]:-0}" \
        "$(awk -v c="${wlcpu[cairn,$n]:-0}" -v e="${wlcpu[etcd,$n]:-0}" 'BEGIN { if (c > 0) printf "%.2f", e / c; else print "n/a" }')"
    done
  done
  echo
fi
if [[ " $benches " == *" scale "* ]]; then
  printf '| members | 1M keys x 256 B | Cairn | etcd | Cairn/etcd |\n'
  printf '| --- | --- | --- | --- | --- |\n'
  for n in $sizes; do
    for l in srss sdisk sgrow sterm skill; do
      declare -n v=$l
      case $l in
        srss) desc="RSS at rest, largest member, MiB" ;;
        sdisk) desc="disk, largest member's data directory, MiB" ;;
        sgrow) desc="peak RSS growth answering a range of 100k keys, MiB" ;;
        sterm) desc="restart after SIGTERM to the first linearizable read, s" ;;
        skill) desc="restart after SIGKILL to the first linearizable read, s" ;;
      esac
      c=${v[cairn,$n]:-0} e=${v[etcd,$n]:-0}
      printf '| %s | %s | %s | %s | %s |\n' "$n" "$desc" "$c" "$e" \
        "$(awk -v c="$c" -v e="$e" 'BEGIN { if (e > 0) printf "%.2f", c / e; else print "n/a" }')"
      unset -n v
    done
  done
  echo
fi
((${#lines[@]} > 0)) || exit 0

[[ -z ${BENCH_TLS:-} ]] || echo "client URLs: https://, client certificates required (BENCH_TLS)"
if [[ " $benches " == *" kv "* ]]; then
  f=$(fsync_rate)
  for n in $sizes; do
    printf 'disk: %s synchronous 4 KiB writes/s (dd oflag=dsync); put, 1 client, %s member(s): Cairn %.0f/s (%s of it), etcd %.0f/s\n' \
      "$f" "$n" "${result[cairn,$n,put-1c]:-0}" \
      "$(awk -v p="${result[cairn,$n,put-1c]:-0}" -v f="$f" 'BEGIN { if (f > 0) printf "%.0f%%", 100 * p / f; else print "n/a" }')" \
      "${result[etcd,$n,put-1c]:-0}"
  done
  echo
fi

printf '| members | benchmark | Cairn req/s | etcd req/s | Cairn/etcd | Cairn p99 ms | etcd p99 ms | Cairn CPU-s/10k | etcd CPU-s/10k | etcd/Cairn CPU | failed (Cairn/etcd) |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for n in $sizes; do
  for l in "${lines[@]}"; do
    c=${result[cairn,$n,$l]:-0} e=${result[etcd,$n,$l]:-0}
    cc=${cpu[cairn,$n,$l]:-0} ce=${cpu[etcd,$n,$l]:-0}
    ratio=$(awk -v c="$c" -v e="$e" 'BEGIN { if (e > 0) printf "%.2f", c / e; else print "n/a" }')
    cratio=$(awk -v c="$cc" -v e="$ce" 'BEGIN { if (c > 0) printf "%.2f", e / c; else print "n/a" }')
    case $l in
      put-1c) desc="put, 1 client, 1 conn" ;;
      put-100c) desc="put, 100 clients, 10 conns" ;;
      range-l) desc="range linearizable, 100 clients" ;;
      range-s) desc="range serializable, 100 clients" ;;
      lease-ka) desc="lease keep-alive, 100 clients" ;;
      txn-put) desc="txn-put, 4 puts per txn, 100 clients" ;;
      txn-mixed) desc="txn-mixed, range limit 100 / put, 100 clients" ;;
      stm) desc="stm, 4 keys per txn, serializable snapshot, 100 clients" ;;
      range100-l) desc="range --limit 100 over 20k keys, linearizable" ;;
      range100-s) desc="range --limit 100 over 20k keys, serializable" ;;
      watch-get) desc="watch-get: gets during 10k watchers' catch-up (CPU per 10k events)" ;;
      put-1mib) desc="put 1 MiB values, 100 clients" ;;
      load-1m) desc="load 1M keys of 256 B (scale), 100 clients" ;;
    esac
    printf '| %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$desc" "$c" "$e" "$ratio" \
      "${p99[cairn,$n,$l]:-n/a}" "${p99[etcd,$n,$l]:-n/a}" "$cc" "$ce" "$cratio" \
      "${failed[cairn,$n,$l]:-0}/${failed[etcd,$n,$l]:-0}"
  done
done
