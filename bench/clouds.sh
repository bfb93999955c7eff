#!/usr/bin/env bash
# The cloud paths beside the Anthropic one: relay → fake Bedrock (AWS event stream, SigV4-signed by the relay with
# static test credentials) and relay → fake Vertex (bearer key) against relay → fake Anthropic (SSE passthrough),
# in one run.
#
#   bench/clouds.sh                  streams (time to first event, per-event delay, CPU per stream), then CPU per
#                                    request of bedrock vs anthropic_compatible by the paired method (~6 min)
#   bench/clouds.sh --quick          fewer rounds (~3 min): checks the harness, numbers are rough
#   PAIRED="bedrock vertex" bench/clouds.sh      the paired CPU ratio for vertex too (+3 min)
#   PAIRED= bench/clouds.sh          streams only
#
# Streams: one bench/FakeUpstream serves all three paths (it verifies every Bedrock request's SigV4 signature with
# its own implementation of the AWS algorithm, and every Vertex request's bearer token; the counts are in the
# report). Three relays (anthropic_compatible with a key, bedrock with static keys, vertex with keys[].key) and the
# upstream itself (direct) are measured in one interleaved schedule (LoadGen `ttfb`, one stream at a time, order
# rotated per round): time to first event, and per-event delay (upstream write → client read, from the bench_ts each
# event carries through the relay's event-stream conversion), added against direct and against the Anthropic relay,
# per block of rounds with 95 % intervals. Bar: per-event added delay of bedrock/vertex within +0.1 ms of anthropic.
#
# CPU per request: bench/paired.sh with A=default (anthropic_compatible with a key) and B=bedrock (SigV4), both
# loaded at once against the nginx JSON upstream, fresh relays every round; the ratio B ÷ A of CPU per request with
# a 95 % interval. Bar: ≤ 1.3.
#
# Needs: nginx, wrk, curl (apt-get install -y nginx-light wrk curl). Everything listens on 127.0.0.1; every process is
# stopped on exit (by PID). Report: bench/out/clouds-<stamp>.md (and .jsonl, and paired.sh's own file).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
source "$BENCH/lib.sh"
quick_option "$@"
if [[ $QUICK == 1 ]]; then : "${ROUNDS:=50}" "${PAIRED_ROUNDS:=6}" "${WARM_S:=6}" "${ROUND_S:=5}"; fi
: "${ROUNDS:=150}" "${CONC:=1}" "${DELTAS:=10}" "${INTERVAL_MS:=5}" "${PAIRED_ROUNDS:=8}" "${WARM_S:=10}" "${ROUND_S:=8}"
PAIRED="${PAIRED-bedrock}"
for tool in nginx wrk curl; do command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install -y nginx-light wrk curl)" >&2; exit 1; }; done

bench_scratch ccclouds
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/out/clouds-$STAMP.md" JSONL="$BENCH/out/clouds-$STAMP.jsonl"

cd "$ROOT"
build_tools src/CcRelay.Cli bench/LoadGen bench/FakeUpstream
RELAY_DLL="${RELAY:-$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll}"
LOADGEN=(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll")
read -r P_UP P_A P_B P_V <<<"$("${LOADGEN[@]}" ports 4)"

start_fake "$WORK/fake.log" "$P_UP"
PID_FAKE=${PIDS[-1]}
start_relay relay-anthropic "$P_A" "$P_UP" default; PID_A=${PIDS[-1]}
start_relay relay-bedrock "$P_B" "$P_UP" bedrock; PID_B=${PIDS[-1]}
start_relay relay-vertex "$P_V" "$P_UP" vertex; PID_V=${PIDS[-1]}
wait_listen "$P_UP"; wait_relay "$P_A"; wait_relay "$P_B"; wait_relay "$P_V"

TARGETS=(--url "http://127.0.0.1:$P_UP/v1/messages,http://127.0.0.1:$P_A/v1/messages,http://127.0.0.1:$P_B/v1/messages,http://127.0.0.1:$P_V/v1/messages"
    --label direct,relay-anthropic,relay-bedrock,relay-vertex --pids "/$PID_A/$PID_B/$PID_V" --baseline direct,relay-anthropic
    --body "$BENCH/payloads/messages.template.json" --headers "$BENCH/payloads/headers.txt" --deltas "$DELTAS" --interval-ms "$INTERVAL_MS")

bench_header "bench/clouds.sh: relay → fake Anthropic / Bedrock (event stream, SigV4) / Vertex (bearer), interleaved; ROUNDS=$ROUNDS CONC=$CONC DELTAS=$DELTAS INTERVAL_MS=$INTERVAL_MS; paired: ${PAIRED:-none} ($PAIRED_ROUNDS rounds, ${WARM_S}s warm-up, ${ROUND_S}s)" | tee "$OUT"
echo "times in ms; ttfb = request write → read completing message_start (content_block_start in the same write); later events' delay = upstream write → client read of each event after message_start; CPU per stream = the relay's CPU over the phase ÷ its streams" | tee -a "$OUT"
say "warming up (8 streams at once, 40 rounds per target)"
"${LOADGEN[@]}" ttfb "${TARGETS[@]}" --concurrency 8 --rounds 40 --warmup-rounds 5 --first-us 0 --tag warmup >/dev/null 2>&1 || true
say "streams: $ROUNDS rounds of $CONC stream(s) per target"
echo >>"$OUT"
"${LOADGEN[@]}" ttfb "${TARGETS[@]}" --concurrency "$CONC" --rounds "$ROUNDS" --first-us 0 --tag "clouds_c$CONC" \
    --out "$JSONL" --report "$OUT" >/dev/null || say "some streams failed (see $OUT)"

# the fake's verdict on what the relays sent: every SigV4 signature and bearer token it checked
kill -TERM "$PID_FAKE"; wait "$PID_FAKE" 2>/dev/null || true
{ echo; echo "fake upstream's checks of the relays' requests (warm-up included): $(grep '^CHECKS' "$WORK/fake.log" || echo 'no CHECKS line')"
  grep -A12 '^CHECK FAILED' "$WORK/fake.log" | head -40 || true; } | tee -a "$OUT"
for pid in "$PID_A" "$PID_B" "$PID_V"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
PIDS=()

for b in $PAIRED; do
    say "CPU per request, paired: relay-default (A) vs relay-$b (B)"
    echo >>"$OUT"
    A=default B="$b" CONNS=16 WARM_S="$WARM_S" ROUND_S="$ROUND_S" RELAY_A="${RELAY:-}" RELAY_B="${RELAY:-}" \
        "$BENCH/paired.sh" --rounds "$PAIRED_ROUNDS" 2>&1 | grep -v '^\[' | tee -a "$OUT"
done
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
say "written: $OUT"
