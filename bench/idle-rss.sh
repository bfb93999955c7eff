#!/usr/bin/env bash
# bench/run.sh's "RSS idle after warm-up" alone, for one or two builds side by side, with where the memory is.
# Each round starts a fresh relay (the zero-config bench config of bench/lib.sh's write_relay_config) per build, runs
# `loadgen hold`'s warm-up (2,000 JSON requests + 20 short streams, 3 s settle), reads VmRSS (the floor's number) and
# /proc/PID/smaps_rollup (anonymous vs file pages), then opens a few streams and stops the relay.
#
#   bash bench/idle-rss.sh [--rounds N]                              this tree's Release build (default 3 rounds)
#   RELAY_A=/tmp/old/cc-relay.dll bash bench/idle-rss.sh             old (A) against this tree (B), interleaved
#   RELAY_A=… RELAY_B=… ENV_B="DOTNET_GCgen0size=0x600000" bash bench/idle-rss.sh   one build, two environments
#
# Everything listens on 127.0.0.1; every process is stopped by its PID. Results: bench/out/idle-rss-<stamp>.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
source "$BENCH/lib.sh"
ROUNDS=3
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        *) echo "usage: bash bench/idle-rss.sh [--rounds N]" >&2; exit 2 ;;
    esac
done
bench_scratch idlerss
cd "$ROOT"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
THIS="$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll"
[[ -n ${RELAY_A:-} && -n ${RELAY_B:-} ]] || build_tools src/CcRelay.Cli
[[ -f "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll" ]] || build_tools bench/LoadGen
[[ -f "$ROOT/artifacts/bin/FakeUpstream/release/fake-upstream.dll" ]] || build_tools bench/FakeUpstream
DLL_A="${RELAY_A:-$THIS}" DLL_B="${RELAY_B:-$THIS}"
LG=(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll")
OUT="$BENCH/out/idle-rss-$(date -u +%Y%m%dT%H%M%SZ).txt"
read -r P_UP P_RELAY <<<"$("${LG[@]}" ports 2)"
start_fake "$WORK/fake.log" "$P_UP"
"${LG[@]}" wait-port --port "$P_UP" --timeout-s 30 >/dev/null
UP_PIDS=("${PIDS[@]}")

{
    bench_header "bench/idle-rss.sh: RSS idle after warm-up (loadgen hold's reading), A = $DLL_A ${ENV_A:-}, B = $DLL_B ${ENV_B:-}"
    echo "round build rss_idle_mb anon_mb file_mb"
} | tee "$OUT"

measure() { # $1 = A|B, $2 = dll, $3 = extra environment ("K=V K=V"), $4 = round
    write_relay_config "$WORK/relay.yaml" "$P_RELAY" "$P_UP" default
    # shellcheck disable=SC2086
    env $3 dotnet "$2" serve --config "$WORK/relay.yaml" --listen "127.0.0.1:$P_RELAY" >"$WORK/relay-$1-$4.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_relay "$P_RELAY"
    # --streams 4: only the warm-up and the idle reading matter here; the results file keeps rss_idle_mb
    "${LG[@]}" hold --label "$1" --url "http://127.0.0.1:$P_RELAY/v1/messages" --streams 4 --deltas 2 --interval-ms 100 \
        --pids "$pid" --body "$BENCH/payloads/messages.template.json" --headers "$BENCH/payloads/headers.txt" \
        --smaps-out "$WORK/smaps-$1-$4" --out "$WORK/hold-$1-$4.jsonl" >/dev/null
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    PIDS=("${UP_PIDS[@]}")
    local idle anon file
    idle=$(grep -o '"rss_idle_mb":[0-9.]*' "$WORK/hold-$1-$4.jsonl" | cut -d: -f2)
    anon=$(awk '/^Anonymous:/ {printf "%.1f", $2 / 1024}' "$WORK/smaps-$1-$4" 2>/dev/null || echo "?")
    file=$(awk '/^Rss:/ {r = $2} /^Anonymous:/ {a = $2} END {printf "%.1f", (r - a) / 1024}' "$WORK/smaps-$1-$4" 2>/dev/null || echo "?")
    echo "$4 $1 $idle $anon $file" | tee -a "$OUT"
    if [[ $4 == 1 ]]; then
        # where: resident MB per mapping name (anonymous mappings as [anon]), the largest 25
        awk '/^[0-9a-f]+-[0-9a-f]+ / {name = NF >= 6 ? $6 : "[anon]"} /^Rss:/ {rss[name] += $2}
            END {for (n in rss) printf "%8.1f MB  %s\n", rss[n] / 1024, n}' "$WORK/smaps-$1-$4.full" | sort -rn | head -25 \
            | sed "s/^/    $1 /" >>"$OUT.where"
    fi
}

for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then measure A "$DLL_A" "${ENV_A:-}" "$round"; measure B "$DLL_B" "${ENV_B:-}" "$round"
    else measure B "$DLL_B" "${ENV_B:-}" "$round"; measure A "$DLL_A" "${ENV_A:-}" "$round"; fi
done
for b in A B; do
    awk -v b="$b" '$2 == b && $3 ~ /^[0-9]/ {print $3}' "$OUT" | sort -n | awk -v b="$b" '{v[NR] = $1} END {
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%s: median RSS idle %.1f MB (n = %d)\n", b, m, NR }' | tee -a "$OUT"
done
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
{ echo; echo "Resident memory by mapping at the idle reading, round 1:"; cat "$OUT.where"; } >>"$OUT"; rm -f "$OUT.where"
say "wrote $OUT"
