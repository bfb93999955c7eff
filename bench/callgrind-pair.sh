#!/usr/bin/env bash
# What one relay configuration costs per request against another, in instructions: the relay under valgrind's
# callgrind, counted only while it serves a fixed number of requests after a warm-up, for two variants of
# bench/lib.sh's write_relay_config (A and B; run one after the other, interleaved over RUNS). Instruction counts do
# not depend on the machine's load (wall-clock figures on this shared 2-core machine do, by far more than a few %), so
# the ratio is repeatable where bench/paired.sh's is not.
#
#   A=default B=bedrock bench/callgrind-pair.sh          anthropic_compatible vs Bedrock (SigV4, reshape), 2 runs each
#   A=noclients B=clients bench/callgrind-pair.sh        the client-key checks (bench/client-keys-callgrind.sh)
#   RUNS=3 REQUESTS=4000 A=… B=… bench/callgrind-pair.sh
#   RELAY=/tmp/old/cc-relay.dll A=… B=… …               another build of the relay (for both variants)
#   A=default B=default RELAY_A=/tmp/old/cc-relay.dll …  two builds, one variant (RELAY_A and/or RELAY_B: the build
#                                                         each side runs; default RELAY, else this tree's Release build)
#   KEEP=/tmp/dumps A=… B=… bench/callgrind-pair.sh      also keep the dumps, with the JIT's method names resolved
#                                                         (callgrind_annotate --inclusive=yes KEEP/cg.B.* …)
#   A=clients B=shared bench/callgrind-pair.sh           shared state on PostgreSQL (bench/shared-state-callgrind.sh);
#                                                         PostgreSQL is started as bench/shared-state.sh starts it
#   A=default B=staged bench/callgrind-pair.sh           routing-stage classification (bench/stages-callgrind.sh)
#
# The request is the benchmark's Claude Code request (bench/payloads, non-streaming) against nginx answering every
# request with the same JSON message (start_upstream). Tiered compilation is off (DOTNET_TieredCompilation=0: every
# method is compiled once, fully optimised, during the warm-up), so the measured window holds the steady state, not
# the JIT. The count includes every thread of the relay (Kestrel, the accounting thread, GC). JIT-compiled methods have
# no symbols for valgrind: the relay writes its perf map (DOTNET_PerfMapEnabled=1) and bench/callgrind-jit.py renames
# the dumps' hex addresses to method names, so KEEP's dumps compare by method. Needs: valgrind, nginx, curl, python3.
# Everything listens on 127.0.0.1; every process is stopped on exit (by PID).
# Results: bench/out/callgrind-pair-<A>-<B>-<stamp>.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
source "$BENCH/lib.sh"
: "${RUNS:=2}" "${REQUESTS:=2000}" "${WARMUP:=3000}" "${A:?A=<variant> (bench/lib.sh write_relay_config)}" "${B:?B=<variant>}"
for tool in valgrind callgrind_control nginx curl python3; do command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done

bench_scratch ccgrind
OUT="$BENCH/out/callgrind-pair-$A-$B-$(date -u +%Y%m%dT%H%M%SZ).txt"
cd "$ROOT"
[[ -f "$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll" ]] || build_tools src/CcRelay.Cli
[[ -f "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll" ]] || build_tools bench/LoadGen
RELAY_DLL="${RELAY:-$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll}"
DLL_A="${RELAY_A:-$RELAY_DLL}" DLL_B="${RELAY_B:-$RELAY_DLL}"
for dll in "$DLL_A" "$DLL_B"; do [[ -f $dll ]] || { echo "no such relay build: $dll" >&2; exit 2; }; done
read -r P_UP P_RELAY <<<"$(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll" ports 2)"
start_upstream "$WORK/up" "$P_UP"
if [[ $A == shared || $B == shared ]]; then
    start_postgres "$WORK/pg"
    export CC_RELAY_BENCH_PG="Host=127.0.0.1;Port=$PG_PORT;Database=ccrelay;Username=ccrelay"
fi
UP_PIDS=("${PIDS[@]}")
write_wrk_script "$WORK"

# the request: the benchmark's Claude Code request and headers (x-api-key: bench-client-key), as a curl config
{
    while IFS= read -r h; do [[ -n $h ]] && printf 'header = "%s"\n' "${h//\"/\\\"}"; done <"$BENCH/payloads/headers.txt"
    printf 'data-binary = "@%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nurl = "http://127.0.0.1:%s/v1/messages"\n' "$WORK/body.json" "$P_RELAY"
} >"$WORK/curl.cfg"
send() { # $1 = count: that many requests, 8 at a time -> "count×status …"
    seq "$1" | xargs -P 8 -n 50 sh -c 'for _ in "$@"; do curl -s -K "$0"; done' "$WORK/curl.cfg" | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}'
}

mkdir -p "$WORK/kept"
measure() { # $1 = variant, $2 = cc-relay.dll, $3 = run -> "instructions-per-request"
    write_relay_config "$WORK/$1.yaml" "$P_RELAY" "$P_UP" "$1"
    DOTNET_TieredCompilation=0 DOTNET_EnableWriteXorExecute=0 DOTNET_PerfMapEnabled=1 DOTNET_PerfMapIgnoreSignal=1 \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.$1.%p" \
        dotnet "$2" serve --config "$WORK/$1.yaml" >"$WORK/$1.log" 2>&1 &
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
    PIDS=("${UP_PIDS[@]}")
    # the counters were zeroed before the window and stopped after it: every dump together (the one asked for, and
    # the one at exit) is the window
    local ir f
    ir="$(cat "$WORK"/cg."$1".* 2>/dev/null | awk '/^totals:/ {s += $2} END {print s + 0}')"
    for f in "$WORK"/cg."$1".*; do
        python3 "$BENCH/callgrind-jit.py" "/tmp/perf-$pid.map" <"$f" >"$WORK/kept/$(basename "$f").run$3"
        rm -f "$f"
    done
    rm -f "/tmp/perf-$pid.map" "/tmp/perfinfo-$pid.map"
    say "$1: $codes; $ir instructions"
    awk -v ir="$ir" -v n="$REQUESTS" 'BEGIN {printf "%.0f", ir / n}'
}

{
    echo "bench/callgrind-pair.sh: $A (A${RELAY_A:+, $RELAY_A}) vs $B (B${RELAY_B:+, $RELAY_B}), $RUNS run(s) each, interleaved; $REQUESTS measured requests after $WARMUP"
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
for r in $(seq "$RUNS"); do
    a="$(measure "$A" "$DLL_A" "$r")"
    b="$(measure "$B" "$DLL_B" "$r")"
    awk -v r="$r" -v a="$a" -v b="$b" 'BEGIN {printf "run %d: A %d instructions/request, B %d instructions/request, B/A %.4f\n", r, a, b, b / a}' | tee -a "$OUT"
done
# KEEP=DIR: the dumps, for callgrind_annotate (where the instructions go)
[[ -n ${KEEP:-} ]] && mkdir -p "$KEEP" && cp "$WORK"/kept/* "$KEEP/"
say "written: $OUT"
