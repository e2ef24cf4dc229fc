#!/usr/bin/env bash
# Shows that the member simulator has teeth: plants each bug of
# internal/membersim/testdata/bugs/*.patch, one at a time, in a scratch
# worktree of HEAD, runs the simulator over SEEDS seeds (default 100) of
# STEPS steps (default 2000), stopping a bug's run at its MAXFAIL-th
# catching seed (default 8), and prints, per bug, the seeds that caught it
# among those run and the violation the first found. A bug no seed
# catches makes the script exit 1.
#
#   scripts/plant-bugs.sh              # every bug
#   SEEDS=300 scripts/plant-bugs.sh 3  # bugs whose file starts with 3
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${SEEDS:-100}
steps=${STEPS:-2000}
maxfail=${MAXFAIL:-8}
only=${1:-}
root=$(pwd)
scratch=$(mktemp -d)
logs=${LOGS:-$scratch}  # each bug's test log; LOGS=dir keeps them
trap 'git -C "$root" worktree remove --force "$scratch/wt" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
git worktree add --detach "$scratch/wt" HEAD >/dev/null 2>&1
missed=0
printf '%-42s %-9s %s\n' bug caught "first seeds (violation of the first)"
for patch in "$root"/internal/membersim/testdata/bugs/${only}*.patch; do
  name=$(basename "$patch" .patch)
  git -C "$scratch/wt" checkout -q -- .
  git -C "$scratch/wt" apply "$patch"
  mkdir -p "$logs"
  log="$logs/$name.log"
  (cd "$scratch/wt" && CAIRN_MEMBERSIM_SEEDS=$seeds CAIRN_MEMBERSIM_STEPS=$steps CAIRN_MEMBERSIM_MAXFAIL=$maxfail \
    go test -count=1 -timeout 60m ./internal/membersim -run 'TestMemberSimulation$' -v >"$log" 2>&1) || true
  caught=$(grep -o 'FAILED SEED [0-9]*' "$log" | awk '{print $3}' | tr '\n' ' ' || true)
  n=$(wc -w <<<"$caught")
  ran=$seeds
  if stop=$(grep -o 'STOPPED after [0-9]* failing seeds, at seed [0-9]*' "$log" || true) && [[ -n $stop ]]; then
    ran=$(( $(awk '{print $NF}' <<<"$stop") + 1 ))
  fi
  first=$(grep -m1 -o 'FAILED SEED [0-9]*: .*' "$log" | cut -c1-150 || true)
  if [[ $n -eq 0 ]]; then
    missed=$((missed + 1))
    first="NOT CAUGHT ($(grep -m1 -E '^(ok|FAIL|---)' "$log" || true))"
  fi
  printf '%-42s %3d/%-5d %s\n' "$name" "$n" "$ran" "$(cut -d' ' -f1-8 <<<"$caught")| $first"
done
exit $((missed > 0))
