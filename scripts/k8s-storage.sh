#!/usr/bin/env bash
# Runs Kubernetes' own storage tests against Cairn: the packages
# k8s.io/apiserver/pkg/storage/etcd3 (the etcd3 store and watcher, among them
# the RangeStream tests TestGetListStream* and TestWatchChanSyncStream*),
# pkg/storage/cacher (the watch cache, which Kubernetes 1.37 initialises with
# RangeStream: the EtcdRangeStream feature gate is on by default) and
# pkg/storage/storagebackend/factory (health checks, TLS) of v0.37.2, each
# test server a `cairn` process.
#
#   scripts/k8s-storage.sh                            # all three packages against cairn
#   K8S_STORAGE_RUN=Stream scripts/k8s-storage.sh     # go test -run pattern (each package)
#   K8S_STORAGE_PKGS=etcd3 scripts/k8s-storage.sh     # some of etcd3 cacher factory
#   K8S_STORAGE_STOCK=1 scripts/k8s-storage.sh        # the same against stock etcd 3.7.3
#
# How the tests reach a server process. Upstream, every test gets its server
# from k8s.io/apiserver/pkg/storage/etcd3/testserver (RunEtcd, NewTestConfig),
# which embeds etcd in the test binary and has no hook for an external one.
# This script swaps that one file, and nothing else, for
# tests/k8sstorage/testdata/test_server.go: same functions, same *embed.Config
# the tests adjust, but RunEtcd turns the config into flags and runs the
# binary $K8S_STORAGE_SERVER (cairn, or stock etcd). The swap is go test's
# -overlay, which refuses files inside the module cache; so k8s.io/apiserver
# is copied out of it, unchanged, and the throwaway module `replace`s it by
# the copy, on which the overlay acts. The tests themselves are upstream's,
# byte for byte.
#
# The throwaway module imports etcd's server (embed, for the config type the
# tests use; and etcdmain, for a stock etcd when none is at hand), which
# Cairn must never import: it lives under the cache folder, never in Cairn's
# go.mod, as scripts/etcd-e2e.sh does. What it builds is cached there:
#   ~/.cache/k8s-storage/v0.37.2/apiserver   the copy of k8s.io/apiserver
#   ~/.cache/k8s-storage/v0.37.2/mod         the module (go.mod/go.sum, a main for stock etcd)
#   ~/.cache/k8s-storage/v0.37.2/bin         PKG-<shim hash>.test, etcd (stock, when built)
# A fresh machine downloads k8s.io/apiserver's dependencies and compiles them
# (etcd's server included): minutes, which is why CI does not run this.
#
# Each package runs in one test process (Kubernetes has no goroutine-leak
# check that would skip tests after a failure), in its folder of the copy.
# The script prints each failed test with the end of its output (the shim
# logs the end of the server's log when a test failed) and the pass, fail and
# skip counts, and exits 1 when a test failed.
#
# Other settings:
#   K8S_STORAGE_SERVER=/path  the binary to test instead of a freshly built cairn
#   K8S_STORAGE_SERVER_FLAGS='--max-request-bytes=4096'
#                             flags added to every server's command line (this one
#                             makes RangeStream answer the tests' lists in many chunks)
#   REFERENCE_ETCD_BINARY     stock etcd for K8S_STORAGE_STOCK=1 (default
#                             /root/.cache/etcd-reference/v3.7.3/etcd; built from the
#                             module when it is not there)
#   K8S_STORAGE_TIMEOUT=25m   the time one package's tests may take
#   K8S_STORAGE_OUT=/dir      keep the test2json streams and a results.txt (one
#                             'PASS|FAIL|SKIP package test seconds' line per leaf test)
#   K8S_STORAGE_NICE=10       run builds and tests under nice (a shared machine)
#   K8S_STORAGE_VERSION, K8S_STORAGE_ETCD_VERSION, K8S_STORAGE_CACHE
#                             k8s.io/apiserver's and etcd's versions, the cache folder
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
version=${K8S_STORAGE_VERSION:-v0.37.2}
etcd_version=${K8S_STORAGE_ETCD_VERSION:-v3.7.3}
cache=${K8S_STORAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-storage/$version}
run=${K8S_STORAGE_RUN:-.}
pkgs=${K8S_STORAGE_PKGS:-etcd3 cacher factory}
timeout=${K8S_STORAGE_TIMEOUT:-25m}
nice=${K8S_STORAGE_NICE:-0}
shim=$repo/tests/k8sstorage/testdata/test_server.go

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=${K8S_STORAGE_OUT:-$work/out}
mkdir -p "$out"

step() { echo "k8s-storage: $*" >&2; }
seconds_since() { echo $(($(date +%s) - $1)); }

# import path of each package the script knows
declare -A import=(
  [etcd3]=k8s.io/apiserver/pkg/storage/etcd3
  [cacher]=k8s.io/apiserver/pkg/storage/cacher
  [factory]=k8s.io/apiserver/pkg/storage/storagebackend/factory
)
for p in $pkgs; do
  [[ -n ${import[$p]:-} ]] || {
    echo "k8s-storage: unknown package $p (known: ${!import[*]})" >&2
    exit 2
  }
done

# --- the throwaway module, the copy of k8s.io/apiserver, the test binaries
mod=$cache/mod
bin=$cache/bin
copy=$cache/apiserver
mkdir -p "$mod/etcd" "$bin"
if [[ ! -f $mod/ready ]]; then
  step "fetching k8s.io/apiserver@$version and its dependencies into $mod"
  printf 'module k8sstoragerun\n\ngo 1.26\n' >"$mod/go.mod"
  rm -f "$mod/go.sum"
  cat >"$mod/etcd/main.go" <<'GO'
// Command etcd is stock etcd, built here only to run Kubernetes' storage
// tests against it for comparison (K8S_STORAGE_STOCK=1).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  if ! (cd "$mod" && dir=$(go mod download -json "k8s.io/apiserver@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') &&
    rm -rf "$copy" && cp -r "$dir" "$copy" && chmod -R u+w "$copy" &&
    go mod edit -replace "k8s.io/apiserver=$copy" &&
    go get -t "${import[@]/%/@$version}" \
      "go.etcd.io/etcd/server/v3@$etcd_version" "go.etcd.io/etcd/client/v3@$etcd_version" \
      "go.etcd.io/etcd/api/v3@$etcd_version" "go.etcd.io/etcd/server/v3/etcdmain@$etcd_version") >"$work/go-get.log" 2>&1; then
    cat "$work/go-get.log" >&2
    exit 1
  fi
  touch "$mod/ready"
fi
overlay=$work/overlay.json
printf '{"Replace":{"%s":"%s"}}\n' "$copy/pkg/storage/etcd3/testserver/test_server.go" "$shim" >"$overlay"
shim_hash=$(sha256sum "$shim" | cut -c1-12)

# test_binary PKG: builds (unless cached for this shim) PKG's test binary
# and prints its path.
test_binary() {
  local path=$bin/$1-$shim_hash.test start
  if [[ ! -x $path ]]; then
    start=$(date +%s)
    (cd "$mod" && nice -n "$nice" go test -c -overlay "$overlay" -o "$path.partial" "${import[$1]}") >&2
    mv "$path.partial" "$path"
    step "built $1's tests in $(seconds_since "$start")s"
  fi
  echo "$path"
}

# --- the server under test
if [[ -n ${K8S_STORAGE_SERVER:-} ]]; then
  server=$(realpath "$K8S_STORAGE_SERVER")
  label=$server
elif [[ -n ${K8S_STORAGE_STOCK:-} ]]; then
  label="etcd $etcd_version"
  server=${REFERENCE_ETCD_BINARY:-/root/.cache/etcd-reference/$etcd_version/etcd}
  if [[ ! -x $server ]]; then
    server=$bin/etcd
    if [[ ! -x $server ]]; then
      start=$(date +%s)
      (cd "$mod" && nice -n "$nice" go build -o "$server.partial" ./etcd) >&2
      mv "$server.partial" "$server"
      step "built etcd in $(seconds_since "$start")s"
    fi
  fi
else
  label=cairn
  start=$(date +%s)
  (cd "$repo" && go build -o "$work/cairn" ./cmd/cairn) >&2
  step "built cairn in $(seconds_since "$start")s"
  server=$work/cairn
fi
(cd "$repo" && go build -o "$work/summary" ./tests/etcde2e/summary) >&2

# --- run: a package at a time, in its folder of the copy (some tests read
# testdata beside them).
export K8S_STORAGE_SERVER=$server
status=0
start_all=$(date +%s)
for p in $pkgs; do
  tb=$(test_binary "$p")
  step "running $p's tests (-run '$run') against $label"
  start=$(date +%s)
  (cd "$copy/${import[$p]#k8s.io/apiserver/}" &&
    timeout -k 1m "$timeout" nice -n "$nice" go tool test2json -t -p "$p" \
      "$tb" -test.v=test2json -test.count=1 -test.timeout="$timeout" -test.run="$run" \
      >"$out/$p.json" 2>"$out/$p.stderr") || {
    # A failed package is the summary's to judge; a stream that never
    # reached its package's result (killed, crashed) is a failure here.
    if ! grep -v '"Test":' "$out/$p.json" | grep -q '"Action":"\(pass\|fail\)"'; then
      echo "FAIL: $p ended without a result (see $out/$p.stderr)"
      status=1
    fi
  }
  step "$p took $(seconds_since "$start")s"
done

files=()
for p in $pkgs; do files+=("$out/$p.json"); done
"$work/summary" -label "$label" -results "$out/results.txt" "${files[@]}" || status=1
step "all took $(seconds_since "$start_all")s"
exit "$status"
