#!/usr/bin/env bash
# Fixed-rate latency of several relays at once: what each configuration (or build) adds to the upstream's latency.
#
#   bench/latency.sh off on                      relay-off against relay-on, 8 rounds
#   bench/latency.sh off on logs metrics         any of bench/lib.sh's variants (off, on, logs, metrics, devnull,
#                                                default, pooled); the first is the reference of the ratios
#   bench/latency.sh old=on@/tmp/old/cc-relay.dll new=on
#                                                NAME=VARIANT@DLL: a label, a variant, and a cc-relay.dll to run instead
#                                                of the one this script builds (e.g. a `dotnet publish` of another commit)
#   bench/latency.sh --rounds 12 --rate 200 --count 3000 --warmup-s 10 off on
#
# Each round starts every relay afresh (an independent draw of tiered-JIT outcomes), warms each up under load (wrk,
# 32 connections, --warmup-s seconds: tiered JIT needs load to settle), then sends one interleaved
# open-loop schedule (bench/LoadGen `rate`): request i goes to target i mod n, the upstream itself ("direct")
# included, each target at --rate requests a second, so all of them meet the same moments of the machine. Per round
# and relay: the latency it adds (its p50 or p99 minus direct's), and that divided by the reference's. Over the rounds:
# the median of each, with a distribution-free 95 % interval (order statistics; none below 6 rounds).
#
# NOTE: this is the measurement of bench/run.sh --observability's "added latency" rows, for more than two relays
# and without its throughput and SSE passes: a quicker way to take a latency difference apart. At a low rate every
# request finds the relay's caches cold, so it weighs the size of the relay's working set, not its warm CPU cost.
#
# Needs: wrk, nginx (apt-get install -y wrk nginx-light), curl. Everything listens on 127.0.0.1; every process is stopped on
# exit (by PID). Results: bench/out/latency-<stamp>.txt (raw records: .jsonl beside it).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
# MESSAGE_JSON, RELAY_VARIANTS, write_relay_config, and the pieces every script here shares (bench_scratch, …)
source "$BENCH/lib.sh"
CMDLINE="bench/latency.sh${*:+ $*}"
ROUNDS=8 RATE=200 COUNT=3000 WARM_S=10 SPECS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --count) COUNT="$2"; shift 2 ;;
        --warmup-s) WARM_S="$2"; shift 2 ;;
        -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
        -*) echo "unknown option: $1 (see the header of $0)" >&2; exit 2 ;;
        *) SPECS+=("$1"); shift ;;
    esac
done
[[ ${#SPECS[@]} -ge 2 ]] || { echo "name at least two relays, e.g. bench/latency.sh off on (see the header of $0)" >&2; exit 2; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $RATE =~ ^[1-9][0-9]*$ && $COUNT =~ ^[1-9][0-9]*$ && $WARM_S =~ ^[0-9]+$ ]] ||
    { echo "--rounds, --rate and --count must be positive integers, --warmup-s a whole number of seconds" >&2; exit 2; }
NAMES=() VARIANTS=() DLLS=()
for spec in "${SPECS[@]}"; do
    name="${spec%%=*}" rest="${spec#*=}"
    variant="${rest%%@*}" dll=""
    [[ $rest == *@* ]] && dll="${rest#*@}"
    relay_variant_ok "$variant" || { echo "'$spec': the variant must be one of: ${RELAY_VARIANTS[*]} (got '$variant')" >&2; exit 2; }
    [[ $name =~ ^[A-Za-z0-9_-]+$ && $name != direct ]] || { echo "'$spec': a name is letters, digits, - and _, not 'direct'" >&2; exit 2; }
    for seen in "${NAMES[@]}"; do [[ $seen != "$name" ]] || { echo "'$name' is named twice" >&2; exit 2; }; done
    [[ -z $dll || -f $dll ]] || { echo "'$spec': no such relay build: $dll" >&2; exit 2; }
    NAMES+=("$name") VARIANTS+=("$variant") DLLS+=("$dll")
done
for tool in wrk nginx curl python3; do command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install -y wrk nginx-light curl python3)" >&2; exit 1; }; done

bench_scratch cclatency
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/out/latency-$STAMP.txt" RAW="$BENCH/out/latency-$STAMP.jsonl"
: >"$RAW"

cd "$ROOT"
build_tools src/CcRelay.Cli bench/LoadGen
RELAY_DLL="$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll"
LOADGEN=(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll")

N=${#NAMES[@]}
read -r -a PORTS <<<"$("${LOADGEN[@]}" ports $((N + 1)))"
P_UP=${PORTS[0]}

# the upstream: nginx answering every request with one fixed Message (the one bench/run.sh uses)
start_upstream "$WORK/up" "$P_UP"
PID_NGINX=${PIDS[-1]}

for k in "${!NAMES[@]}"; do write_relay_config "$WORK/${NAMES[$k]}.yaml" "${PORTS[$((k + 1))]}" "$P_UP" "${VARIANTS[$k]}"; done
wait_health() { for _ in $(seq 150); do curl -sf -m 1 "http://127.0.0.1:$1/health" | grep -q '"fake"' && return 0; sleep 0.1; done; return 1; }

{
    echo "$CMDLINE: $ROUNDS round(s), each relay warmed up ${WARM_S}s, then $RATE req/s per target, $COUNT requests per target"
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
for r in $(seq "$ROUNDS"); do
    # the start order turns each round, so no relay always starts (and warms up) first
    labels=direct urls="http://127.0.0.1:$P_UP/v1/messages" pids="" started=()
    for i in $(seq 0 $((N - 1))); do
        k=$(((i + r - 1) % N))
        dotnet "${DLLS[$k]:-$RELAY_DLL}" serve --config "$WORK/${NAMES[$k]}.yaml" >"$WORK/${NAMES[$k]}.log" 2>&1 &
        PIDS+=($!) started+=($!)
        labels+=",${NAMES[$k]}" urls+=",http://127.0.0.1:${PORTS[$((k + 1))]}/v1/messages" pids+="/$!"
    done
    for k in "${!NAMES[@]}"; do
        wait_health "${PORTS[$((k + 1))]}" || { say "relay ${NAMES[$k]} did not start; its output:"; tail -n 20 "$WORK/${NAMES[$k]}.log" >&2; exit 1; }
    done
    if [[ $WARM_S -gt 0 ]]; then
        for k in "${!NAMES[@]}"; do
            "${LOADGEN[@]}" throughput --label "${NAMES[$k]}" --url "http://127.0.0.1:${PORTS[$((k + 1))]}/v1/messages" --conns 32 \
                --duration "$WARM_S" --max-requests 2000000 --body "$BENCH/payloads/messages.template.json" \
                --headers "$BENCH/payloads/headers.txt" --out "$WORK/warmup.jsonl" >"$WORK/warmup.log" 2>&1 ||
                { tail -20 "$WORK/warmup.log" >&2; exit 1; }
        done
    fi
    DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 "${LOADGEN[@]}" rate --run "$r" --label "$labels" --url "$urls" --rate "$RATE" \
        --count "$COUNT" --pids "$pids" --body "$BENCH/payloads/messages.template.json" --headers "$BENCH/payloads/headers.txt" \
        --out "$RAW" >"$WORK/loadgen.log" 2>&1 || { tail -20 "$WORK/loadgen.log" >&2; exit 1; }
    kill -TERM "${started[@]}"; wait "${started[@]}" 2>/dev/null || true
    PIDS=("$PID_NGINX")
    say "round $r/$ROUNDS done"
done

python3 - "$RAW" "${NAMES[@]}" <<'PY' | tee -a "$OUT"
import json, math, statistics, sys

raw, names = sys.argv[1], sys.argv[2:]
runs = {}
for line in open(raw):
    x = json.loads(line)
    runs.setdefault(x["run"], {})[x["target"]] = x
rounds = [runs[r] for r in sorted(runs)]
n = len(rounds)

def interval(values):
    # [v_k, v_(n+1-k)], k the largest with P(Binomial(n, 1/2) < k) <= 2.5 %
    v, k, cdf = sorted(values), 0, 0.0
    for i in range(n):
        cdf += math.comb(n, i) * 0.5 ** n
        if cdf > 0.025:
            break
        k = i + 1
    return f"{v[k - 1]:.3f} - {v[n - k]:.3f}" if k >= 1 else "n/a (fewer than 6 rounds)"

ref = names[0]
for field in ("p50_ms", "p99_ms"):
    print(f"added latency {field[:3]} (relay - direct), ratios against {ref}:")
    for name in names:
        added = [(r[name][field] - r["direct"][field]) * 1000 for r in rounds]
        ratios = [(r[name][field] - r["direct"][field]) / (r[ref][field] - r["direct"][field]) for r in rounds]
        print(f"  {name:12s} {statistics.median(added):8.1f} us   ratio {statistics.median(ratios):.3f} ({interval(ratios)})"
              f"   per round {' '.join(f'{x:.3f}' for x in ratios)}")
PY
say "written: $OUT"
