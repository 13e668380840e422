#!/usr/bin/env bash
# Runs every Go benchmark of the workspace; each prints its own figures and,
# where an issue names a peer, the ratio measured in the same run.
# Results are kept under bench-results/ with a timestamp.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench-results
out="bench-results/bench-$(date -u +%Y%m%dT%H%M%SZ).txt"
pattern=${BENCH:-.}
args=()
[[ -n ${BENCHTIME:-} ]] && args+=(-benchtime "$BENCHTIME")
echo "writing $out"
go test -run '^$' -bench "$pattern" "${args[@]}" -timeout 30m -p 1 \
  github.com/canopy-platform/canopy/... 2>&1 | tee "$out"
