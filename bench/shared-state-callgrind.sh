#!/usr/bin/env bash
# What shared state on PostgreSQL costs per request, in instructions (issue 21 §6, where bench/shared-state.sh's paired
# CPU ratio is too noisy on this shared machine to say why): the relay under valgrind's callgrind, counted only while
# it serves a fixed number of requests after a warm-up, for `clients` (A: the client-key relay on local state) and
# `shared` (B: the same relay with state.postgres), interleaved. The measured window of B includes everything the
# shared-state loop does meanwhile (flushes, NOTIFY wake-ups, timers), since it runs in the same process.
#
#   bench/shared-state-callgrind.sh                      2 runs of each variant, 2,000 measured requests each
#   RUNS=3 REQUESTS=4000 bench/shared-state-callgrind.sh
#   KEEP=/tmp/dumps bench/shared-state-callgrind.sh      also keep the dumps, with the JIT's method names resolved
#                                                        (callgrind_annotate --inclusive=yes KEEP/cg.shared.* …)
#   A=noclients B=clients bench/shared-state-callgrind.sh  any two of lib.sh's variants
#   RELAY_DLL=/tmp/before/cc-relay.dll bench/shared-state-callgrind.sh  another build of the relay
#
# JIT-compiled methods have no symbols for valgrind: the relay writes its perf map (DOTNET_PerfMapEnabled=1) and
# bench/callgrind-jit.py renames callgrind's hex addresses to the methods' names, so inclusive costs can be compared
# by method. Tiered compilation is off (every method compiled once, fully optimised, in the warm-up). PostgreSQL
# (when a variant is `shared`) is started as bench/shared-state.sh starts it, and stopped by PID on exit.
# Needs: valgrind, nginx, curl, python3. Results: bench/out/shared-state-callgrind-<stamp>.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
source "$BENCH/lib.sh"
: "${RUNS:=2}" "${REQUESTS:=2000}" "${WARMUP:=3000}" "${A:=clients}" "${B:=shared}"
for tool in valgrind callgrind_control nginx curl python3; do command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done
relay_variant_ok "$A" && relay_variant_ok "$B" || { echo "unknown variant: $A or $B (known: ${RELAY_VARIANTS[*]})" >&2; exit 1; }

bench_scratch sscgrind
OUT="$BENCH/out/shared-state-callgrind-$(date -u +%Y%m%dT%H%M%SZ).txt"
cd "$ROOT"
# RELAY_DLL=…/cc-relay.dll: another build (e.g. a copy of the one before a change)
: "${RELAY_DLL:=$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll}"
[[ -f $RELAY_DLL ]] || build_tools src/CcRelay.Cli
read -r P_UP P_RELAY <<<"$(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')"
start_upstream "$WORK/up" "$P_UP"
write_wrk_script "$WORK"
if [[ $A == shared || $B == shared ]]; then
    start_postgres "$WORK/pg"
    export CC_RELAY_BENCH_PG="Host=127.0.0.1;Port=$PG_PORT;Database=ccrelay;Username=ccrelay"
fi
KEEP_PIDS=("${PIDS[@]}")

{
    while IFS= read -r h; do [[ -n $h ]] && printf 'header = "%s"\n' "${h//\"/\\\"}"; done <"$BENCH/payloads/headers.txt"
    printf 'data-binary = "@%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nurl = "http://127.0.0.1:%s/v1/messages"\n' "$WORK/body.json" "$P_RELAY"
} >"$WORK/curl.cfg"
send() { # $1 = count: that many requests, 8 at a time -> "count×status …"
    seq "$1" | xargs -P 8 -n 50 sh -c 'for _ in "$@"; do curl -s -K "$0"; done' "$WORK/curl.cfg" | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}'
}

mkdir -p "$WORK/kept"
measure() { # $1 = variant, $2 = run -> "instructions-per-request"
    write_relay_config "$WORK/$1.yaml" "$P_RELAY" "$P_UP" "$1"
    DOTNET_TieredCompilation=0 DOTNET_EnableWriteXorExecute=0 DOTNET_PerfMapEnabled=1 DOTNET_PerfMapIgnoreSignal=1 \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.$1.%p" \
        dotnet "$RELAY_DLL" serve --config "$WORK/$1.yaml" >"$WORK/$1.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1200); do curl -sf -m 2 "http://127.0.0.1:$P_RELAY/health" | grep -q '"fake"' && break; sleep 0.5; done
    say "$1: warm-up ($WARMUP requests: $(send "$WARMUP"))"
    callgrind_control -z "$pid" >/dev/null
    callgrind_control -i on "$pid" >/dev/null
    local codes
    codes="$(send "$REQUESTS")"
    callgrind_control -i off "$pid" >/dev/null
    callgrind_control -d "$pid" >/dev/null
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    PIDS=("${KEEP_PIDS[@]}")
    local ir f
    ir="$(cat "$WORK"/cg."$1".* 2>/dev/null | awk '/^totals:/ {s += $2} END {print s + 0}')"
    for f in "$WORK"/cg."$1".*; do
        python3 "$BENCH/callgrind-jit.py" "/tmp/perf-$pid.map" <"$f" >"$WORK/kept/$(basename "$f").run$2"
        rm -f "$f"
    done
    rm -f "/tmp/perf-$pid.map" "/tmp/perfinfo-$pid.map"
    say "$1: $codes; $ir instructions"
    awk -v ir="$ir" -v n="$REQUESTS" 'BEGIN {printf "%.0f", ir / n}'
}

{
    echo "bench/shared-state-callgrind.sh: $A (A) vs $B (B), $RUNS run(s) each, interleaved; $REQUESTS measured requests after $WARMUP"
    echo "relay $RELAY_DLL, commit $(git -C "$ROOT" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
for r in $(seq "$RUNS"); do
    a="$(measure "$A" "$r")"
    b="$(measure "$B" "$r")"
    awk -v r="$r" -v a="$a" -v b="$b" 'BEGIN {printf "run %d: A %d instructions/request, B %d instructions/request, B/A %.4f\n", r, a, b, b / a}' | tee -a "$OUT"
done
[[ -n ${KEEP:-} ]] && mkdir -p "$KEEP" && cp "$WORK"/kept/* "$KEEP/"
say "written: $OUT"
