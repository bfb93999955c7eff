#!/usr/bin/env bash
# What a pipeline of three byte-edit transformers costs per request, in instructions (issue 20 §6: ≤ 5 µs): the
# Core benchmark's operations under valgrind's callgrind, each run twice with a different number of calls; the
# difference of the two totals divided by the difference of the calls is the cost of one call (start-up, the JIT
# and the warm-up cancel out). Instruction counts do not depend on the machine's load; the time they take does.
#
#   bench/pipeline-callgrind.sh                 three byte edits, the reader pass and inspect, small body (5.6 KB)
#   SIZE=large bench/pipeline-callgrind.sh      the ≈ 120 KB body
#   LOW=1000 HIGH=11000 bench/pipeline-callgrind.sh
#
# Tiered compilation is off (every method compiled once, fully optimised, before the counted calls). Needs valgrind.
# Results: printed, one line per operation (instructions per call).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SIZE:=small}" "${LOW:=1000}" "${HIGH:=6000}" "${OPS:=three reader inspect}"
dotnet build -c Release bench/Core.Bench >/dev/null
dll=artifacts/bin/Core.Bench/release/Core.Bench.dll
[ -f "$dll" ] || { echo "not built: $dll" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
total() { # op n -> total instructions of the run
  DOTNET_TieredCompilation=0 DOTNET_TieredPGO=0 valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" \
    dotnet "$dll" pipeline-count "$1" "$SIZE" "$2" >"$out/log" 2>&1
  local f; f=$(ls -t "$out"/cg.* | head -1)
  grep -E '^(summary|totals):' "$f" | head -1 | awk '{print $2}'
  rm -f "$out"/cg.*
}
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) size=$SIZE calls $LOW vs $HIGH, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for op in $OPS; do
  low=$(total "$op" "$LOW"); high=$(total "$op" "$HIGH")
  awk -v op="$op" -v l="$low" -v h="$high" -v a="$LOW" -v b="$HIGH" \
    'BEGIN { printf "%-8s %12.0f instructions per call  (totals %d / %d)\n", op, (h - l) / (b - a), l, h }'
done
echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
