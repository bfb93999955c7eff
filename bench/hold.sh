#!/usr/bin/env bash
# bench/run.sh's hold phase alone ("RSS per open stream"), for one or two builds side by side, interleaved (ABBA…).
# Each round starts a fresh relay (bench/lib.sh's default bench config) per build on bench/FakeUpstream, and runs
# `loadgen hold` exactly as run.sh does: warm-up, idle reading, then HOLD_STREAMS streams of (HOLD_DELTAS+5) events
# every HOLD_INTERVAL_MS ms; kb_per_stream is the slope of RSS from half the streams open to all of them.
# With --smaps, /proc/PID/smaps_rollup is also read while all streams are open (anonymous vs file pages).
# With --warm, each relay then holds the streams a second time (same process, its own warm-up and idle reading
# again): rows A-warm / B-warm. The first hold (run.sh's figure) also pays what a fresh process grows only once
# (JIT code for the streaming path, thread-pool threads, the GC heap the idle-memory return trimmed); the second does
# not, but its streams also reuse the upstream connections the first left in the pool (bench/RESULTS.md).
#
#   bash bench/hold.sh [--rounds N] [--smaps] [--warm]            this tree's Release build (default 2 rounds)
#   RELAY_A=/tmp/old/cc-relay.dll bash bench/hold.sh              old (A) against this tree (B)
#   RELAY_A=… RELAY_B=… ENV_B="DOTNET_GCgen0size=0x600000" bash bench/hold.sh   one build, two environments
#   HOLD_STREAMS=1000 HOLD_DELTAS=10 HOLD_INTERVAL_MS=1000 (run.sh's full-run defaults)
#   HOLD_ARGS="--warmup 200"   more `loadgen hold` options for every hold (here: 200 warm-up streams instead of 20)
#
# Everything listens on 127.0.0.1; every process is stopped by its PID. Results: bench/out/hold-<stamp>.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
source "$BENCH/lib.sh"
ROUNDS=2
SMAPS=0
WARM=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --smaps) SMAPS=1; shift ;;
        --warm) WARM=1; shift ;;
        *) echo "usage: bash bench/hold.sh [--rounds N] [--smaps] [--warm]" >&2; exit 2 ;;
    esac
done
: "${HOLD_STREAMS:=1000}" "${HOLD_DELTAS:=10}" "${HOLD_INTERVAL_MS:=1000}"
say() { echo "[$(date +%H:%M:%S)] $*" >&2; }
bench_scratch hold
cd "$ROOT"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
THIS="$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll"
[[ -n ${RELAY_A:-} && -n ${RELAY_B:-} ]] || build_tools src/CcRelay.Cli
[[ -f "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll" ]] || build_tools bench/LoadGen
[[ -f "$ROOT/artifacts/bin/FakeUpstream/release/fake-upstream.dll" ]] || build_tools bench/FakeUpstream
DLL_A="${RELAY_A:-$THIS}" DLL_B="${RELAY_B:-$THIS}"
# as bench/run.sh runs the load generator
LG=(env DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll")
OUT="$BENCH/out/hold-$(date -u +%Y%m%dT%H%M%SZ).txt"
read -r P_UP P_RELAY <<<"$("${LG[@]}" ports 2)"
start_fake "$WORK/fake.log" "$P_UP"
"${LG[@]}" wait-port --port "$P_UP" --timeout-s 30 >/dev/null
UP_PIDS=("${PIDS[@]}")

{
    bench_header "bench/hold.sh: RSS per open stream (loadgen hold, $HOLD_STREAMS streams × ($HOLD_DELTAS+5) events every $HOLD_INTERVAL_MS ms), A = $DLL_A ${ENV_A:-}, B = $DLL_B ${ENV_B:-}${HOLD_ARGS:+, loadgen hold $HOLD_ARGS}"
    echo "round build kb_per_stream kb_per_stream_from_idle rss_idle_mb rss_half_mb rss_hold_mb failed_streams hold_anon_mb load1"
} | tee "$OUT"

measure() { # $1 = A|B, $2 = dll, $3 = extra environment ("K=V K=V"), $4 = round
    write_relay_config "$WORK/relay.yaml" "$P_RELAY" "$P_UP" default
    # shellcheck disable=SC2086
    env $3 dotnet "$2" serve --config "$WORK/relay.yaml" --listen "127.0.0.1:$P_RELAY" >"$WORK/relay-$1-$4.log" 2>&1 &
    local pid=$! anon="-" sampler=""
    PIDS+=("$pid")
    wait_relay "$P_RELAY"
    if [[ $SMAPS == 1 ]]; then
        # the largest anonymous reading while the streams are open
        (m=0; while kill -0 "$pid" 2>/dev/null; do
            a=$(awk '/^Anonymous:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
            ((a > m)) && { m=$a; echo "$m" >"$WORK/anon-$1-$4"; }; sleep 0.5; done) &
        sampler=$!
    fi
    local label
    for label in "$1" $([[ $WARM == 1 ]] && echo "$1-warm"); do
        # shellcheck disable=SC2086
        "${LG[@]}" hold --label "$label" --url "http://127.0.0.1:$P_RELAY/v1/messages" --streams "$HOLD_STREAMS" \
            --deltas "$HOLD_DELTAS" --interval-ms "$HOLD_INTERVAL_MS" --first-us 0 --pids "$pid" \
            --body "$BENCH/payloads/messages.template.json" --headers "$BENCH/payloads/headers.txt" \
            --out "$WORK/hold-$label-$4.jsonl" ${HOLD_ARGS:-} >/dev/null
    done
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    [[ -n $sampler ]] && { wait "$sampler" 2>/dev/null || true; anon=$(awk '{printf "%.1f", $1 / 1024}' "$WORK/anon-$1-$4" 2>/dev/null || echo "?"); }
    PIDS=("${UP_PIDS[@]}")
    for label in "$1" $([[ $WARM == 1 ]] && echo "$1-warm"); do
        jq -r --arg r "$4" --arg b "$label" --arg anon "$anon" --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
            '"\($r) \($b) \(.kb_per_stream) \(.kb_per_stream_from_idle) \(.rss_idle_mb) \(.rss_half_mb) \(.rss_hold_mb) \(.failed_streams) \($anon) \($load)"' \
            "$WORK/hold-$label-$4.jsonl" | tee -a "$OUT"
    done
}

for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then measure A "$DLL_A" "${ENV_A:-}" "$round"; measure B "$DLL_B" "${ENV_B:-}" "$round"
    else measure B "$DLL_B" "${ENV_B:-}" "$round"; measure A "$DLL_A" "${ENV_A:-}" "$round"; fi
done
for b in A B $([[ $WARM == 1 ]] && echo A-warm B-warm); do
    for f in 3 4 5; do
        awk -v b="$b" -v f="$f" '$2 == b && $f ~ /^[0-9]/ {print $f}' "$OUT" | sort -n | awk -v b="$b" -v f="$f" '{v[NR] = $1} END {
            m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            name = f == 3 ? "KB per stream (slope half→all)" : f == 4 ? "KB per stream from idle" : "RSS idle MB"
            printf "%s: median %s %.1f (n = %d)\n", b, name, m, NR }'
    done
done | tee -a "$OUT"
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
say "wrote $OUT"
