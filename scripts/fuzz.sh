#!/usr/bin/env bash
# Runs every Go fuzz target of the workspace, one after the other, each for
# FUZZTIME (default 30s). Targets are found by grepping the test files of the
# workspace modules for "func FuzzX(f *testing.F)", which needs no compile.
#
#   FUZZTIME=30s      how long each target runs (a duration or Nx executions)
#   FUZZ=regexp       only targets whose "pkgdir.FuzzName" matches
#   FUZZPARALLEL=1    fuzzing workers per target (go test -parallel)
#
# A crash fails the run; go test writes the failing input to
# <pkg>/testdata/fuzz/<FuzzName>/ so it becomes a regression seed once committed.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-30s}
filter=${FUZZ:-.}
parallel=${FUZZPARALLEL:-1}

# Module directories from go.work's use block.
mapfile -t modules < <(sed -n '/^use (/,/^)/{s/^[[:space:]]*\(\.[^[:space:]]*\).*/\1/p}' go.work)

targets=()
for m in "${modules[@]}"; do
  while IFS=: read -r file name; do
    target="./$(dirname "${file#./}") $name"
    [[ "./$(dirname "${file#./}").$name" =~ $filter ]] && targets+=("$target")
  done < <(grep -rHo --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' "$m" |
    sed -E 's/:func (Fuzz[A-Za-z0-9_]*)\(.*/:\1/' | sort)
done

if [[ ${#targets[@]} -eq 0 ]]; then
  echo "fuzz: no targets match $filter"
  exit 0
fi

# count_inputs prints how many inputs a target's corpus directory holds (0 if none).
count_inputs() {
  if [[ -d $1 ]]; then find "$1" -type f | wc -l; else echo 0; fi
}

echo "fuzz: ${#targets[@]} targets, $fuzztime each"
start=$SECONDS
failed=()
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "== $pkg $name"
  corpus="${pkg#./}/testdata/fuzz/$name"
  before=$(count_inputs "$corpus")
  ok=false
  for attempt in 1 2; do
    if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -parallel "$parallel" "$pkg"; then
      ok=true
      break
    fi
    # A real failure writes its input to the corpus. A failure that wrote
    # none is Go's coordinator stopping at the -fuzztime deadline while a
    # worker is mid-input ("context deadline exceeded", golang/go#75804,
    # fixed in Go 1.27): run the target once more instead of failing on it.
    if [[ $(count_inputs "$corpus") -ne $before ]]; then
      break
    fi
    echo "fuzz: $pkg $name stopped without a failing input (Go fuzz deadline race, golang/go#75804); running it again"
  done
  $ok || failed+=("$pkg $name")
done
echo "fuzz: ${#targets[@]} targets in $((SECONDS - start))s"
if [[ ${#failed[@]} -gt 0 ]]; then
  printf 'fuzz: FAILED %s\n' "${failed[@]}"
  exit 1
fi
