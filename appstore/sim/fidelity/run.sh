#!/usr/bin/env bash
# run.sh: build storesync, start `storesync sim` on a free port, and run
# check.mjs (Apple's Node library) against it. Not part of `go test`: it
# needs node and `npm ci` in this directory.
#
#   appstore/sim/fidelity/run.sh [--subscribers N] [check.mjs args...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
subscribers=500
if [[ "${1:-}" == "--subscribers" ]]; then subscribers="$2"; shift 2; fi

if [[ ! -d "$here/node_modules/@apple/app-store-server-library" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund)
fi

work="$(mktemp -d)"
sim_pid=""
cleanup() {
  if [[ -n "$sim_pid" ]]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$repo" && go build -o "$work/storesync" ./cmd/storesync)
"$work/storesync" sim --subscribers "$subscribers" --listen 127.0.0.1:0 --seed 1 --dir "$work/sim" >"$work/sim.out" 2>&1 &
sim_pid=$!
for _ in $(seq 1 100); do
  grep -q "Serving until interrupted" "$work/sim.out" 2>/dev/null && break
  if ! kill -0 "$sim_pid" 2>/dev/null; then cat "$work/sim.out"; exit 1; fi
  sleep 0.1
done
grep -q "Serving until interrupted" "$work/sim.out" || { cat "$work/sim.out"; echo "simulator did not start" >&2; exit 1; }
# shellcheck disable=SC1090
source <(grep '^export ' "$work/sim.out")
echo "simulator at $APPSTORE_BASE_URL ($subscribers customers)"
node "$here/check.mjs" "$@"
