#!/usr/bin/env bash
# The translated providers beside the Anthropic passthrough, in one run (issue 18 §7): relay → fake OpenAI Chat
# Completions and relay → fake Gemini against relay → fake Anthropic (SSE passed through).
#
#   bench/translated.sh              streams and memory (~3-5 min on a loaded machine)
#   bench/translated.sh --quick      fewer rounds and streams: checks the harness, numbers are rough
#   ROUNDS=200 EVENTS=20 GAP_MS=5 HOLD=200 bench/translated.sh
#   RELAY_B=/path/other/cc-relay.dll bench/translated.sh   also three lanes anthropic-b/openai-b/gemini-b on that build,
#                                    interleaved in the same rounds (A = this tree's build, or RELAY)
#   GC_TRACE=1 bench/translated.sh   every relay runs with the bench/GcTrace startup hook (GC pauses and thread-pool
#                                    adjustments, CLOCK_MONOTONIC): the report lists what each relay's runtime did
#                                    while each coalesced event was held
#
# One fake upstream (bench/translated.mjs fake, Node) serves the three dialects: every streamed answer is EVENTS text
# events GAP_MS apart, each carrying its send time (CLOCK_MONOTONIC ns) in its text, which every translation carries
# through. Three relays (variants default, openai, gemini of bench/lib.sh), each serving only its lane. The client
# (translated.mjs client) runs one stream at a time, each round visiting every lane, order rotated per round, and
# measures per event after the first: delay = client read − upstream send (same clock), and coalesced events (one that
# arrived within a quarter gap of the previous one although sent at least half a gap after it). CPU per stream: each
# relay's utime+stime over the phase ÷ its streams. Memory: HOLD streams held open on every lane at once (each got its
# first event and waits for the next), RSS growth ÷ HOLD. Ratios and "added at p50" are against the Anthropic lane
# (added at p50: the median over rounds of the lane's round p50 minus the Anthropic lane's in the same round).
# A fourth lane, direct (the fake itself, Anthropic dialect, no relay), is the noise floor: what the client and the
# machine add on their own (its CPU and memory figures are the fake's, not a relay's).
# Bars (issue 18 §7): added ≤ +0.2 ms at p50, 0 % coalesced, CPU ≤ 2×, memory per open stream ≤ 1.5×.
#
# Everything listens on 127.0.0.1; every process is stopped on exit (by PID). Report: bench/out/translated-<stamp>.md.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
source "$BENCH/lib.sh"
quick_option "$@"
if [[ $QUICK == 1 ]]; then : "${ROUNDS:=30}" "${HOLD:=50}"; fi
: "${ROUNDS:=150}" "${EVENTS:=20}" "${GAP_MS:=5}" "${HOLD:=200}" "${WARMUP:=20}"
for tool in node curl timeout; do command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done

bench_scratch cctranslated
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/out/translated-$STAMP.md" JSON="$BENCH/out/translated-$STAMP.json"

cd "$ROOT"
build_tools src/CcRelay.Cli
RELAY_DLL="${RELAY:-$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll}"
free_ports() { node -e 'const n=require("net");const k=+process.argv[1];const ss=[];let d=0;for(let i=0;i<k;i++){const s=n.createServer();ss.push(s);s.listen(0,"127.0.0.1",()=>{if(++d===k){console.log(ss.map(x=>x.address().port).join(" "));ss.forEach(x=>x.close())}})}' "$1"; }
read -r P_A P_O P_G P_AB P_OB P_GB <<<"$(free_ports 6)"
if [[ ${GC_TRACE:-0} == 1 ]]; then
    build_tools bench/GcTrace
    HOOK="$ROOT/artifacts/bin/GcTrace/release/gctrace.dll"
fi
# start_lane NAME PORT VARIANT DLL: a relay (with the GC trace hook when asked); TRACES collects name=file
TRACES=""
start_lane() {
    local dll_was=$RELAY_DLL
    RELAY_DLL=$4
    if [[ -n ${HOOK:-} ]]; then
        export DOTNET_STARTUP_HOOKS=$HOOK CCRELAY_GC_TRACE="$WORK/gc-$1.txt"
        TRACES+="${TRACES:+,}$1=$WORK/gc-$1.txt"
    fi
    start_relay "relay-$1" "$2" "$P_UP" "$3"
    unset DOTNET_STARTUP_HOOKS CCRELAY_GC_TRACE
    RELAY_DLL=$dll_was
}

exec {fd}< <(exec node "$BENCH/translated.mjs" fake --port 0 2>"$WORK/fake.err")
PIDS+=($!); PID_UP=$!
read -r -t 15 -u "$fd" word P_UP && [[ $word == LISTENING ]] || { echo "fake upstream did not start" >&2; cat "$WORK/fake.err" >&2; exit 1; }
start_lane anthropic "$P_A" default "$RELAY_DLL"; PID_A=${PIDS[-1]}
start_lane openai "$P_O" openai "$RELAY_DLL"; PID_O=${PIDS[-1]}
start_lane gemini "$P_G" gemini "$RELAY_DLL"; PID_G=${PIDS[-1]}
wait_relay "$P_A"; wait_relay "$P_O"; wait_relay "$P_G"
LANES="anthropic=http://127.0.0.1:$P_A/v1/messages,openai=http://127.0.0.1:$P_O/v1/messages,gemini=http://127.0.0.1:$P_G/v1/messages"
LANE_PIDS="anthropic=$PID_A,openai=$PID_O,gemini=$PID_G"
TITLE_B=""
if [[ -n ${RELAY_B:-} ]]; then
    start_lane anthropic-b "$P_AB" default "$RELAY_B"; PID_AB=${PIDS[-1]}
    start_lane openai-b "$P_OB" openai "$RELAY_B"; PID_OB=${PIDS[-1]}
    start_lane gemini-b "$P_GB" gemini "$RELAY_B"; PID_GB=${PIDS[-1]}
    wait_relay "$P_AB"; wait_relay "$P_OB"; wait_relay "$P_GB"
    LANES+=",anthropic-b=http://127.0.0.1:$P_AB/v1/messages,openai-b=http://127.0.0.1:$P_OB/v1/messages,gemini-b=http://127.0.0.1:$P_GB/v1/messages"
    LANE_PIDS+=",anthropic-b=$PID_AB,openai-b=$PID_OB,gemini-b=$PID_GB"
    TITLE_B="; lanes *-b: RELAY_B=$RELAY_B"
fi

bench_header "bench/translated.sh: relay → fake Anthropic (passthrough) / OpenAI Chat / Gemini, interleaved; ROUNDS=$ROUNDS EVENTS=$EVENTS GAP_MS=$GAP_MS HOLD=$HOLD; A: $RELAY_DLL$TITLE_B${HOOK:+; GC trace hook on}" | tee "$OUT"
say "streams: $ROUNDS rounds × 3 lanes, then $HOLD streams held open per lane"
echo >>"$OUT"
timeout 1800 node "$BENCH/translated.mjs" client \
    --lanes "$LANES,direct=http://127.0.0.1:$P_UP/v1/messages" --pids "$LANE_PIDS,direct=$PID_UP" ${TRACES:+--gc-traces "$TRACES"} --rounds "$ROUNDS" --events "$EVENTS" --gap-ms "$GAP_MS" \
    --hold "$HOLD" --warmup "$WARMUP" --out "$JSON" | tee -a "$OUT"
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
if [[ -n ${HOOK:-} ]]; then
    mkdir -p "${OUT%.md}-gc" && cp "$WORK"/gc-*.txt "${OUT%.md}-gc/"
    say "GC traces: ${OUT%.md}-gc/"
fi
say "written: $OUT"
