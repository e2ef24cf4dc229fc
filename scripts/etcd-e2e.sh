#!/usr/bin/env bash
# Runs etcd's own end-to-end tests against Cairn: the module
# go.etcd.io/etcd/tests/v3 (v3.7.3), its tests/common cases run through the
# e2e framework (-tags e2e) and its tests/e2e, with cairn as the framework's
# `etcd`, cairnutl as its `etcdutl` and stock etcdctl of the same release
# beside them.
#
#   scripts/etcd-e2e.sh                      # the selection (CI runs this)
#   ETCD_E2E_STOCK=1 scripts/etcd-e2e.sh     # the same selection against stock etcd
#   ETCD_E2E_ALL=1 scripts/etcd-e2e.sh       # every test, waiting ones included (hours; not CI)
#   ETCD_E2E_RUN='TestKVPut|TestCtlV3Elect' scripts/etcd-e2e.sh   # these tests, minus waiting.txt
#   ETCD_E2E_ALL=1 ETCD_E2E_RUN='TestAlarm' scripts/etcd-e2e.sh  # these tests, waiting ones included
#
# The selection is tests/etcde2e/selection.txt (package and top-level test
# name a line), minus the tests and subtests tests/etcde2e/waiting.txt lists
# as waiting for a feature Cairn has not built, and those
# tests/etcde2e/differences.txt lists as checking what Cairn deliberately
# does otherwise (README.md says what and why). A test of the selection that
# fails is a Cairn bug or a difference README.md must explain; the script
# prints each failure with the end of its output and the pass/fail/skip
# counts, and exits 1 when a test failed.
#
# The etcd tests module imports etcd's server, which Cairn must never import:
# it is built outside the repository, in a throwaway module under the cache
# folder, never through Cairn's go.mod. What it builds is cached there:
#   ~/.cache/etcd-e2e/v3.7.3/mod   the module (go.mod/go.sum, a main for stock etcd)
#   ~/.cache/etcd-e2e/v3.7.3/bin   common.test, e2e.test, etcdctl, etcdutl, etcd (stock, when asked)
#
# Other settings:
#   ETCD_E2E_ETCD=/path      the binary to run as `etcd` instead of the freshly built cairn
#   ETCD_E2E_BUILD_ONLY=1    build (or find in the cache) etcd's test binaries, etcdctl and
#                            etcdutl, print the folder they are in, run nothing
#   ETCD_E2E_TIMEOUT=20m     the time all tests may take; past it the rest fail unrun
#   ETCD_E2E_TEST_TIMEOUT=3m the time one top-level test may take (go test's -timeout)
#   ETCD_E2E_OUT=/dir        keep the test2json streams, stderr and a results.txt (one
#                            'PASS|FAIL|SKIP package test seconds' line per leaf test) there
#   ETCD_E2E_NICE=10         run the tests under nice (a shared machine)
#   ETCD_E2E_PROXY=1         build the tests with etcd's cluster_proxy tag: every member the
#                            framework starts is fronted by `etcd grpc-proxy start`, and the
#                            clients speak to the proxies (how etcd tests its proxy; not CI)
#   ETCD_E2E_VERSION, ETCD_E2E_CACHE   the etcd release and the cache folder
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
all=${ETCD_E2E_ALL:-}
run_override=${ETCD_E2E_RUN:-}
version=${ETCD_E2E_VERSION:-v3.7.3}
cache=${ETCD_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/etcd-e2e/$version}
timeout=${ETCD_E2E_TIMEOUT:-20m}
test_timeout=${ETCD_E2E_TEST_TIMEOUT:-3m}
nice=${ETCD_E2E_NICE:-0}
selection_file=$repo/tests/etcde2e/selection.txt
waiting_file=$repo/tests/etcde2e/waiting.txt
differences_file=$repo/tests/etcde2e/differences.txt

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=${ETCD_E2E_OUT:-$work/out}
mkdir -p "$out"

step() { echo "etcd-e2e: $*" >&2; }
seconds_since() { echo $(($(date +%s) - $1)); }

# --- the throwaway module and the binaries it builds
mod=$cache/mod
bin=$cache/bin
mkdir -p "$mod/etcd" "$bin"
if [[ ! -f $mod/ready ]]; then
  step "fetching go.etcd.io/etcd/tests/v3@$version and its dependencies into $mod"
  printf 'module etcde2erun\n\ngo 1.24\n' >"$mod/go.mod"
  rm -f "$mod/go.sum"
  cat >"$mod/etcd/main.go" <<'GO'
// Command etcd is stock etcd, built here only to run etcd's end-to-end
// tests against it for comparison (ETCD_E2E_STOCK=1).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  if ! (cd "$mod" && go get -t \
    "go.etcd.io/etcd/tests/v3/e2e@$version" "go.etcd.io/etcd/tests/v3/common@$version" \
    "go.etcd.io/etcd/etcdctl/v3@$version" "go.etcd.io/etcd/etcdutl/v3@$version" \
    "go.etcd.io/etcd/server/v3@$version") >"$work/go-get.log" 2>&1; then
    cat "$work/go-get.log" >&2
    exit 1
  fi
  touch "$mod/ready"
fi

# build NAME SUBCOMMAND ARGS...: builds $bin/NAME with `go SUBCOMMAND -o
# $bin/NAME ARGS...` in the throwaway module, unless it is there.
build() {
  local name=$1 subcommand=$2
  shift 2
  [[ -x $bin/$name ]] && return
  local start
  start=$(date +%s)
  (cd "$mod" && nice -n "$nice" go "$subcommand" -o "$bin/$name.partial" "$@") >&2
  mv "$bin/$name.partial" "$bin/$name"
  step "built $name in $(seconds_since "$start")s"
}
# sfx: the test binaries' suffix; -proxy ones are built with cluster_proxy.
sfx='' tags=e2e
if [[ -n ${ETCD_E2E_PROXY:-} ]]; then
  sfx=-proxy tags=e2e,cluster_proxy
fi
build "e2e$sfx.test" test -c -tags "$tags" go.etcd.io/etcd/tests/v3/e2e
build "common$sfx.test" test -c -tags "$tags" go.etcd.io/etcd/tests/v3/common
build etcdctl build go.etcd.io/etcd/etcdctl/v3
build etcdutl build go.etcd.io/etcd/etcdutl/v3
tests_dir=$(cd "$mod" && go list -m -f '{{.Dir}}' go.etcd.io/etcd/tests/v3)
if [[ -n ${ETCD_E2E_BUILD_ONLY:-} ]]; then
  # .ci/run builds first, so that stock etcdutl is there for tests/diff.
  echo "$bin"
  exit 0
fi

# --- the bin folder the framework runs: etcd, etcdctl, etcdutl. No
# etcd-last-release: the mixed-version cases need one, and skip without it.
mkdir "$work/bin"
if [[ -n ${ETCD_E2E_ETCD:-} ]]; then
  label=$ETCD_E2E_ETCD
  ln -s "$(realpath "$ETCD_E2E_ETCD")" "$work/bin/etcd"
elif [[ -n ${ETCD_E2E_STOCK:-} ]]; then
  label="etcd $version"
  build etcd build ./etcd
  ln -s "$bin/etcd" "$work/bin/etcd"
else
  label=cairn
  start=$(date +%s)
  (cd "$repo" && go build -o "$work/cairn" ./cmd/cairn) >&2
  step "built cairn in $(seconds_since "$start")s"
  # cairn run under the name etcd is etcd 3.7's stand-in (its --version
  # answers as etcd does, which the framework parses).
  ln -s "$work/cairn" "$work/bin/etcd"
fi
ln -s "$bin/etcdctl" "$work/bin/"
if [[ $label == cairn ]]; then
  # Installed under etcd's names, Cairn's tools speak as etcd's: the
  # framework's etcdutl (snapshot status and restore, defrag, hashkv) is
  # cairnutl, since only it reads and writes a cairn data directory.
  (cd "$repo" && go build -o "$work/cairnutl" ./cmd/cairnutl) >&2
  ln -s "$work/cairnutl" "$work/bin/etcdutl"
else
  ln -s "$bin/etcdutl" "$work/bin/"
fi
(cd "$repo" && go build -o "$work/summary" ./tests/etcde2e/summary) >&2

# --- what to run: go test -run and -skip patterns, a package at a time.

# pattern NAME: the go test pattern matching exactly the test NAME
# (TestA/sub_name), a level at a time; "*" matches any test at its level.
pattern() {
  local IFS=/ elem parts=() quoted
  read -ra parts <<<"$1"
  local out=()
  for elem in "${parts[@]}"; do
    if [[ $elem == "*" ]]; then
      out+=("")
    else
      quoted=$(sed 's/[][\.*^$()+?{}|]/\\&/g' <<<"$elem")
      out+=("^$quoted\$")
    fi
  done
  echo "${out[*]}"
}

# entries FILE PKG: the test names FILE lists for package PKG (first two
# columns; # starts a comment).
entries() { sed 's/#.*//' "$1" | awk -v pkg="$2" '$1 == pkg { print $2 }'; }

# alternatives: joins the patterns of the names on stdin with |, names of
# fewer levels first. The order matters to -skip: go test takes the first
# alternative that matches a test at all, and one of more levels than the
# test has matches only partly, which does not skip it (a top-level test
# named in waiting.txt would run if "*/PeerTLS" came before it).
alternatives() {
  local p joined=""
  while read -r p; do
    joined+="${joined:+|}$(pattern "$p")"
  done < <(awk -F/ '{ print NF "\t" $0 }' | sort -s -n -k1,1 | cut -f2-)
  echo "$joined"
}

# The tests run each in a folder like the one they have in etcd's
# repository, but writable: some start etcd with no --data-dir (it lands in
# the working folder), read ../fixtures, or ../../etcd.conf.yml.sample, the
# repository's example configuration. That file is not in the tests module;
# the root module of 3.7 is not published, and 3.6.6's sample is 3.7's.
tree=$work/tree
mkdir -p "$tree/tests/common" "$tree/tests/e2e"
ln -s "$tests_dir/fixtures" "$tree/tests/fixtures"
root_dir=$(cd "$mod" && go mod download -json go.etcd.io/etcd/v3@v3.6.6 | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
cp "$root_dir/etcd.conf.yml.sample" "$tree/"

# The framework hands its environment to every etcd it starts, and etcd
# warns about ETCD_* variables it does not know: ours go.
unset ETCD_E2E_STOCK ETCD_E2E_ALL ETCD_E2E_RUN ETCD_E2E_ETCD ETCD_E2E_TIMEOUT ETCD_E2E_TEST_TIMEOUT \
  ETCD_E2E_OUT ETCD_E2E_NICE ETCD_E2E_VERSION ETCD_E2E_CACHE

# Each top-level test runs in a process of its own: the framework skips
# every test after one that leaked a goroutine (a failed one often does),
# and a test that hangs takes only itself down.
budget=$(($(date +%s) + $(sed 's/m$/*60/; s/s$//; s/h$/*3600/' <<<"$timeout")))
start_all=$(date +%s)
status=0
unrun=0
for pkg in common e2e; do
  mkdir -p "$out/$pkg"
  if [[ -n $all ]]; then
    run=${run_override:-.*} skip=''
  else
    if [[ -n $run_override ]]; then
      run=$run_override
    else
      run=$(entries "$selection_file" "$pkg" | alternatives)
      [[ -z $run ]] && continue
    fi
    skip=$( (entries "$waiting_file" "$pkg" && entries "$differences_file" "$pkg") | alternatives)
  fi
  mapfile -t tests < <(cd "$tree/tests/$pkg" && "$bin/$pkg$sfx.test" -test.list "$run" -bin-dir="$work/bin" | grep '^Test')
  step "running ${#tests[@]} tests of $pkg against $label"
  start=$(date +%s)
  for t in "${tests[@]}"; do
    if (($(date +%s) >= budget)); then
      unrun=$((unrun + 1))
      continue
    fi
    (cd "$tree/tests/$pkg" &&
      timeout -k 1m "$test_timeout" nice -n "$nice" go tool test2json -t -p "$pkg" \
        "$bin/$pkg$sfx.test" -test.v=test2json -test.count=1 -test.timeout="$test_timeout" \
        -test.run="^$t\$" ${skip:+-test.skip="$skip"} -bin-dir="$work/bin" \
        >"$out/$pkg/$t.json" 2>"$out/$pkg/$t.stderr") || {
      # A failed package is the summary's to judge (etcd's leak check can
      # fail one whose tests all passed: a note, not a failure); a stream
      # that never reached its package's result (killed, crashed, never
      # started) is a failure here.
      if ! grep -v '"Test":' "$out/$pkg/$t.json" | grep -q '"Action":"\(pass\|fail\)"'; then
        echo "FAIL: $pkg $t ended without a result (see $out/$pkg/$t.stderr)"
        status=1
      fi
    }
  done
  step "$pkg took $(seconds_since "$start")s"
done

"$work/summary" -label "$label" -results "$out/results.txt" "$out"/*/*.json || status=1
if ((unrun > 0)); then
  echo "FAIL: $unrun tests not run: the $timeout the tests may take (ETCD_E2E_TIMEOUT) ran out"
  status=1
fi
step "all took $(seconds_since "$start_all")s"
exit "$status"
