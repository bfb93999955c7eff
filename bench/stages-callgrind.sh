#!/usr/bin/env bash
# What routing-stage classification costs per request, in instructions (issue 20 §6: "classification adds no
# measurable CPU per request on passthrough"): the relay under valgrind's callgrind, counted only while it serves a
# fixed number of requests after a warm-up, for two configs — `default` (no routing.stages: the body is read
# without its stage facts) and `staged` (every stage configured, all on the one provider: the route is default's,
# the difference is reading the stage facts and classifying). The benchmark's request is Claude Code-shaped
# (bench/payloads). Instruction counts do not depend on the machine's load, so the ratio is repeatable where
# bench/paired.sh's is not.
#
#   bench/stages-callgrind.sh                   1 run of each variant, this worktree's build
#   RUNS=2 REQUESTS=2000 bench/stages-callgrind.sh
#   BUILDS="before=/tmp/old/release after=artifacts/bin/CcRelay.Cli/release" bench/stages-callgrind.sh
#                                               each build's default and staged, interleaved: two builds side by side
#   KEEP=/tmp/dumps bench/stages-callgrind.sh   also keep the dumps, for callgrind_annotate
#
# Tiered compilation is off (DOTNET_TieredCompilation=0: every method is compiled once, fully optimised, during the
# warm-up), so the measured window holds the steady state, not the JIT. The count includes every thread of the
# relay (Kestrel, the accounting thread, GC). Needs: valgrind, nginx, curl. Everything listens on 127.0.0.1; every
# process is stopped on exit (by PID). Results: bench/out/stages-callgrind-<stamp>.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
source "$BENCH/lib.sh"
: "${RUNS:=1}" "${REQUESTS:=1000}" "${WARMUP:=1500}"
for tool in valgrind callgrind_control nginx curl; do command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done

bench_scratch stgrind
OUT="$BENCH/out/stages-callgrind-$(date -u +%Y%m%dT%H%M%SZ).txt"
cd "$ROOT"
[[ -f "$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll" ]] || build_tools src/CcRelay.Cli
[[ -f "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll" ]] || build_tools bench/LoadGen
: "${BUILDS:=this=$ROOT/artifacts/bin/CcRelay.Cli/release}"
read -r P_UP P_RELAY <<<"$(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll" ports 2)"
start_upstream "$WORK/up" "$P_UP"
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

measure() { # $1 = variant, $2 = build label, $3 = build dir -> "instructions-per-request"
    write_relay_config "$WORK/$1.yaml" "$P_RELAY" "$P_UP" "$1"
    DOTNET_TieredCompilation=0 DOTNET_EnableWriteXorExecute=0 \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.$1.%p" \
        dotnet "$3/cc-relay.dll" serve --config "$WORK/$1.yaml" >"$WORK/$1.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1200); do curl -sf -m 2 "http://127.0.0.1:$P_RELAY/health" | grep -q '"fake"' && break; sleep 0.5; done
    say "$2 $1: warm-up ($WARMUP requests: $(send "$WARMUP"))"
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
    local ir
    ir="$(cat "$WORK"/cg."$1".* 2>/dev/null | awk '/^totals:/ {s += $2} END {print s + 0}')"
    mkdir -p "$WORK/kept"; mv "$WORK"/cg."$1".* "$WORK/kept/" 2>/dev/null || true
    say "$2 $1: $codes; $ir instructions"
    awk -v ir="$ir" -v n="$REQUESTS" 'BEGIN {printf "%.0f", ir / n}'
}

{
    echo "bench/stages-callgrind.sh: default (A) vs staged (B) for $BUILDS, $RUNS run(s) each, interleaved; $REQUESTS measured requests after $WARMUP"
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
for r in $(seq "$RUNS"); do
    for build in $BUILDS; do
        label="${build%%=*}" dir="${build#*=}"
        a="$(measure default "$label" "$dir")"
        b="$(measure staged "$label" "$dir")"
        awk -v r="$r" -v l="$label" -v a="$a" -v b="$b" 'BEGIN {printf "run %d, %s: A %d instructions/request, B %d instructions/request, B/A %.4f\n", r, l, a, b, b / a}' | tee -a "$OUT"
    done
done
# KEEP=DIR: the dumps, for callgrind_annotate (where the instructions go)
[[ -n ${KEEP:-} ]] && mkdir -p "$KEEP" && cp "$WORK"/kept/* "$KEEP/"
say "written: $OUT"
