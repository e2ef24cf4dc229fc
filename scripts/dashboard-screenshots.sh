#!/usr/bin/env bash
# Screenshots of the dashboard's pages, for a person to look at: runs the
# dashboard's browser test (a 3-member cluster, headless Chromium), which
# saves each page it checks as a PNG.
#
#   scripts/dashboard-screenshots.sh [dir]   # default: ./dashboard-screenshots
#
# Needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(realpath -m "${1:-dashboard-screenshots}")
mkdir -p "$dir"
command -v chromedriver >/dev/null && command -v chromium >/dev/null || {
  echo "chromium and chromedriver are needed: apt-get install chromium chromium-driver" >&2
  exit 1
}
CAIRN_DASHBOARD_SCREENSHOTS=$dir go test -count=1 -run '^TestDashboard(KeysLeasesLoad)?$' -v ./tests/e2e/ | grep -E "screenshot|^(--- |ok|FAIL)"
ls -l "$dir"/*.png
