#!/bin/sh
# Makes the stock etcd 3.7.3 snapshot files the unit tests read (kept in
# git so the tests run without an etcd binary). Usage: make.sh DIR_OF_ETCD_BINARIES
# Ports 11701/11702; the files land in the current directory.
set -eu
B=$1
run() {
	rm -rf "$T/data"
	timeout 120 "$B/etcd" --name d --data-dir "$T/data" \
		--listen-client-urls http://127.0.0.1:11701 --advertise-client-urls http://127.0.0.1:11701 \
		--listen-peer-urls http://127.0.0.1:11702 --initial-advertise-peer-urls http://127.0.0.1:11702 \
		--initial-cluster d=http://127.0.0.1:11702 --log-level error "$@" >"$T/etcd.log" 2>&1 &
	PID=$!
	until timeout 5 "$B/etcdctl" --endpoints 127.0.0.1:11701 endpoint health >/dev/null 2>&1; do sleep 0.2; done
}
C="timeout 20 $B/etcdctl --endpoints 127.0.0.1:11701"
T=$(mktemp -d)

# kv.db: puts, overwrites, a delete, a txn, a lease with keys, a compaction.
run
$C put a 1; $C put a 2; $C put b 1                    # revs 2 3 4
L=$($C lease grant 600 | awk '{print $2}')
$C put c 1 --lease="$L"; $C del b                      # revs 5 6
printf 'value("a") = "2"\n\nput a 3\nput d 4 --lease=%s\n\nput e 5\n\n' "$L" | $C txn   # rev 7 (subs 0, 1)
$C put b 2                                             # rev 8
$C compact 5
$C snapshot save kv.db >/dev/null 2>&1
kill $PID; wait $PID || true

# auth-alarm.db: auth enabled with a user and a role, and a NOSPACE alarm.
run --quota-backend-bytes 32768
$C user add root:pw; $C user grant-role root root; $C role add r1; $C auth enable
V=$(head -c 6000 /dev/zero | tr '\0' x)
i=0; while $C --user root:pw put "big$i" "$V" >/dev/null 2>&1; do i=$((i+1)); done
$C --user root:pw alarm list
$C --user root:pw snapshot save auth-alarm.db >/dev/null 2>&1
kill $PID; wait $PID || true
rm -rf "$T"
