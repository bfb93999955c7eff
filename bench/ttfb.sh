#!/usr/bin/env bash
# Time to first event: the relay beside nginx (the reference proxy) and the upstream itself, in one interleaved
# schedule (bench/LoadGen `ttfb`).
#
#   bench/ttfb.sh                    both shapes of the first events (see GAPS), 1 stream at a time and 50 at once (~2 min)
#   bench/ttfb.sh --quick            fewer rounds (~1 min): checks the harness, numbers are rough
#   GAPS="0" bench/ttfb.sh           only content_block_start together with message_start
#   RELAY=/tmp/new/cc-relay.dll bench/ttfb.sh    another build of the relay
#   RELAY_B=/tmp/old/cc-relay.dll bench/ttfb.sh  a second relay (relay-b) in the same schedule: another build, or
#   ENV_B="NAME=VALUE ..." bench/ttfb.sh         the same build with extra environment variables; relay-b's figures
#                                                are also given against relay's (relay-b − relay, with intervals)
#
# The upstream is bench/FakeUpstream, streaming message_start, then content_block_start GAP µs later (0: both in one
# write, as one TCP segment), then DELTAS deltas INTERVAL_MS apart. Every stream of every target starts on a warm
# keep-alive connection; a round visits the targets in turn (order rotated per round) and starts one stream (or 50 at
# once) on each. Per stream the client records the time from its request's socket write to the read that completed
# `event: message_start` (ttfb), and message_start's delay from the upstream's write (bench_ts) to that read.
# The relay's added delay is its figure minus the upstream's own (direct) in the same rounds, per block of rounds,
# with a 95 % interval over the blocks. The relay holds message_start until the next deciding event (or 500 ms,
# src/CcRelay.Host/Forwarding/StreamPeek.cs): with GAP > 0 that hold shows in its first-event delay.
#
# Needs: nginx (apt-get install -y nginx-light), curl. Everything listens on 127.0.0.1; every process is stopped on
# exit (by PID). Report: bench/out/ttfb-<stamp>.md (and .jsonl).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
source "$BENCH/lib.sh"
quick_option "$@"
if [[ $QUICK == 1 ]]; then : "${ROUNDS_1:=80}" "${ROUNDS_50:=20}"; fi
: "${GAPS:=0 3000}" "${ROUNDS_1:=300}" "${ROUNDS_50:=60}" "${DELTAS:=3}" "${INTERVAL_MS:=5}"
for tool in nginx curl; do command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install -y nginx-light curl)" >&2; exit 1; }; done

bench_scratch ccttfb
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/out/ttfb-$STAMP.md" JSONL="$BENCH/out/ttfb-$STAMP.jsonl"

cd "$ROOT"
build_tools src/CcRelay.Cli bench/LoadGen bench/FakeUpstream
RELAY_DLL="${RELAY:-$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll}"
LOADGEN=(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll")
read -r P_UP P_NG P_RELAY P_RELAY_B <<<"$("${LOADGEN[@]}" ports 4)"
SECOND=$([[ -n ${RELAY_B:-} || -n ${ENV_B:-} ]] && echo 1 || echo 0)
[[ -z ${RELAY_B:-} || -f ${RELAY_B:-} ]] || { echo "no such relay build: $RELAY_B" >&2; exit 2; }

start_fake "$WORK/fake.log" "$P_UP"
start_proxy_nginx "$WORK/nginx" "$P_NG" "$P_UP"
start_relay relay "$P_RELAY" "$P_UP" default
PID_RELAY=${PIDS[-1]}
URLS="http://127.0.0.1:$P_UP/v1/messages,http://127.0.0.1:$P_NG/v1/messages,http://127.0.0.1:$P_RELAY/v1/messages"
LABELS=direct,nginx,relay TARGET_PIDS="/${PIDS[1]}/$PID_RELAY" BASELINES=direct
if [[ $SECOND == 1 ]]; then
    # relay-b: the same configuration, another build (RELAY_B) and/or extra environment variables (ENV_B)
    write_relay_config "$WORK/relay-b.yaml" "$P_RELAY_B" "$P_UP" default
    mapfile -t EXTRA_ENV < <(tr ' ' '\n' <<<"${ENV_B:-}" | grep . || true)
    env "${EXTRA_ENV[@]}" dotnet "${RELAY_B:-$RELAY_DLL}" serve --config "$WORK/relay-b.yaml" >"$WORK/relay-b.log" 2>&1 &
    PIDS+=($!)
    URLS+=",http://127.0.0.1:$P_RELAY_B/v1/messages" LABELS+=",relay-b" TARGET_PIDS+="/${PIDS[-1]}" BASELINES=direct,relay
fi
wait_listen "$P_UP"; wait_listen "$P_NG"; wait_relay "$P_RELAY"
[[ $SECOND == 0 ]] || wait_relay "$P_RELAY_B"

TARGETS=(--url "$URLS" --label "$LABELS" --pids "$TARGET_PIDS" --baseline "$BASELINES"
    --body "$BENCH/payloads/messages.template.json" --headers "$BENCH/payloads/headers.txt" --deltas "$DELTAS" --interval-ms "$INTERVAL_MS")

bench_header "bench/ttfb.sh: time to first event, upstream (direct) vs nginx vs relay$([[ $SECOND == 1 ]] && echo " vs relay-b (${RELAY_B:-this build}${ENV_B:+, $ENV_B})"), interleaved; GAPS=\"$GAPS\" ROUNDS_1=$ROUNDS_1 ROUNDS_50=$ROUNDS_50 DELTAS=$DELTAS INTERVAL_MS=$INTERVAL_MS" | tee "$OUT"
echo "times in ms; ttfb = request write → read completing message_start; first-event delay = upstream's write of message_start → that read; CPU per stream is the process's CPU over the phase ÷ its streams (nginx: its workers)" | tee -a "$OUT"
say "warming up (8 streams at once, 40 rounds per target)"
"${LOADGEN[@]}" ttfb "${TARGETS[@]}" --concurrency 8 --rounds 40 --warmup-rounds 5 --first-us 0 --tag warmup >/dev/null 2>&1 || true
for gap in $GAPS; do
    for conc in 1 50; do
        rounds=$([[ $conc == 1 ]] && echo "$ROUNDS_1" || echo "$ROUNDS_50")
        say "content_block_start $gap us after message_start, $conc stream(s) at once, $rounds rounds"
        echo >>"$OUT"
        "${LOADGEN[@]}" ttfb "${TARGETS[@]}" --concurrency "$conc" --rounds "$rounds" --first-us "$gap" \
            --tag "ttfb_c${conc}_gap${gap}" --out "$JSONL" --report "$OUT" >/dev/null || say "some streams failed (see $OUT)"
    done
done
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
cat "$OUT"
say "written: $OUT"
