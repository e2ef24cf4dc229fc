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
#
# With CLUSTER3_TLS=DIR (certificates made by cluster3_certs DIR) the
# client URLs are https:// with kubeadm's client TLS flags (the members'
# certificate, the CA, --client-cert-auth); cluster3_tls then holds the
# client's flags for etcdctl and the benchmark tool, and cluster3_curl
# reaches a member's HTTP endpoints with them. The peer URLs stay http://.
start_cluster3() {
  local bin=$1 dir=$2 port=$3 i tries=0 started=()
  shift 3
  launch_cluster3 "$bin" "$dir" "$port" "$@"
  started=("${pids[@]: -3}")
  until "$ref/etcdctl" --endpoints "$eps" "${cluster3_tls[@]}" --command-timeout 2s put warm x >/dev/null 2>&1; do
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
    "$bin" --name "m$i" --data-dir "$dir/m$i" --log-level error "${cluster3_server_tls[@]}" "$@" \
      --listen-client-urls "$cluster3_scheme://127.0.0.1:$c" --advertise-client-urls "$cluster3_scheme://127.0.0.1:$c" \
      --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
      --initial-cluster "$initial" >>"$dir/m$i.log" 2>&1 &
    pids+=($!)
    eps+="${eps:+,}127.0.0.1:$c"
  done
}

# cluster3_tls: the client's TLS flags for etcdctl and benchmark;
# cluster3_server_tls and cluster3_scheme: the members' client TLS flags
# (kubeadm's) and their client URLs' scheme. No TLS without CLUSTER3_TLS.
cluster3_tls=() cluster3_server_tls=() cluster3_scheme=http
if [[ -n ${CLUSTER3_TLS:-} ]]; then
  cluster3_tls=(--cacert "$CLUSTER3_TLS/ca.crt" --cert "$CLUSTER3_TLS/client.crt" --key "$CLUSTER3_TLS/client.key")
  cluster3_server_tls=(--cert-file "$CLUSTER3_TLS/server.crt" --key-file "$CLUSTER3_TLS/server.key"
    --trusted-ca-file "$CLUSTER3_TLS/ca.crt" --client-cert-auth)
  cluster3_scheme=https
fi

# cluster3_curl ENDPOINT PATH: curl -s of a member's HTTP endpoint
# (host:port of eps), over TLS with the client certificate if
# CLUSTER3_TLS is set.
cluster3_curl() {
  if [[ -n ${CLUSTER3_TLS:-} ]]; then
    curl -s --cacert "$CLUSTER3_TLS/ca.crt" --cert "$CLUSTER3_TLS/client.crt" --key "$CLUSTER3_TLS/client.key" "https://$1$2"
  else
    curl -s "http://$1$2"
  fi
}

# cluster3_certs DIR makes a CA, a server certificate for 127.0.0.1 and
# localhost, and a client certificate (CN root) in DIR, for CLUSTER3_TLS.
cluster3_certs() {
  local d=$1
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=cluster3-ca \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  local who
  for who in server client; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$([[ $who == client ]] && echo root || echo 127.0.0.1)" \
      -keyout "$d/$who.key" -out "$d/$who.csr" 2>/dev/null
    openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
      -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n') \
      -out "$d/$who.crt" 2>/dev/null
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
