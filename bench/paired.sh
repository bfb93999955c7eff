#!/usr/bin/env bash
# Two relays under load at the same time: a drift-free comparison of what one configuration costs against another.
#
#   bench/paired.sh                  relay-off vs relay-on (metrics + info JSON request lines to a file), 12 rounds
#   bench/paired.sh --aa             relay-off vs relay-off (A against itself: the noise floor of this method)
#   bench/paired.sh --rounds 6       fewer rounds (no interval below 6)
#   B=logs|metrics|devnull bench/paired.sh   relay-on's parts alone (as OBS_B in run.sh --observability)
#   A=default B=pooled bench/paired.sh       one provider against three pooled ones (as run.sh --routing)
#   A=noclients B=clients bench/paired.sh    no clients against every request carrying a client key with limits and
#                                    budgets (the ledger off in both): the cost of the client-key checks and settlement
#   A=on B=on RELAY_B=/tmp/new/cc-relay.dll bench/paired.sh
#                                    one configuration, two builds: the relay built here (A) against another
#                                    (e.g. `dotnet publish src/CcRelay.Cli -c Release -o /tmp/new` of a change)
#   A=default B=default CLIENT_B=system bench/paired.sh
#                                    one build, the plain-http upstream client chosen per relay: the relay's own
#                                    HTTP/1.1 client (builtin, the default) against SocketsHttpHandler (system), set
#                                    through CC_RELAY_UPSTREAM_CLIENT
#   ENV_B="DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0" A=default B=default bench/paired.sh
#                                    one build, B started with extra environment variables (ENV_A for A; space-separated
#                                    NAME=VALUE pairs)
#   UPSTREAM=realistic|https|https-realistic bench/paired.sh
#                                    another upstream (bench/real-path.sh's): realistic = FakeUpstream answering after
#                                    200-800 ms (CONNS 128 and ROUND_S 20 by default: latency-bound, so read the CPU
#                                    ratio); https = TLS (throwaway CA, SSL_CERT_FILE) in front of the fixed answer;
#                                    https-realistic = TLS in front of the delayed FakeUpstream. Default: instant (nginx's
#                                    fixed answer over plain http)
#
# A and B are bench/lib.sh's relay variants: off, on, logs, metrics, devnull, default, pooled, noclients, clients (A defaults to off,
# B to on). RELAY_A / RELAY_B name a cc-relay.dll to run instead of the one this script builds.
#
# Each round starts both relays afresh (each round is an independent draw of tiered-JIT outcomes), warms them up
# together, then loads both at once for ROUND_S seconds: one wrk with CONNS connections per relay, both against the
# same nginx upstream. Both share the machine's cores at every moment, so the machine's drift (other tenants,
# frequency, the page cache) hits them alike; what differs is the relays' own cost per request. Per round: the ratio
# B ÷ A of their request rates, and of their CPU per request (/proc/<pid>/stat over the round); over the rounds, the
# median of each and a distribution-free 95 % interval (order statistics). The CPU ratio is the cost: the
# throughput ratio understates it, as the CPU is not shared equally (a relay with more to do gets more of it).
#
# NOTE: this is not what bench/run.sh --observability measures. There each relay has the machine to itself for its
# measurement, which is the situation the issue's bar names; here neither does. Effects that exist only when one
# process has both cores (its idle cores waking, its own cache footprint) do not show here. Use this to compare
# the relays' cost per request at a resolution run.sh cannot reach on a noisy machine, not to replace it.
#
# Needs: wrk, nginx (apt-get install -y wrk nginx-light), curl. Everything listens on 127.0.0.1; every process is
# stopped on exit (by PID). Results: bench/out/paired-<stamp>.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
# MESSAGE_JSON, RELAY_VARIANTS, write_relay_config, and the pieces every script here shares (bench_scratch, …)
source "$BENCH/lib.sh"
ROUNDS=12 AA=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --aa) AA=1; shift ;;
        *) echo "unknown option: $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
: "${UPSTREAM:=instant}" "${CLIENT_A:=}" "${CLIENT_B:=}"
case "$UPSTREAM" in
    instant) TLS=0 REAL=0 ;;
    realistic) TLS=0 REAL=1 ;;
    https) TLS=1 REAL=0 ;;
    https-realistic) TLS=1 REAL=1 ;;
    *) echo "UPSTREAM must be instant, realistic, https or https-realistic (got '$UPSTREAM')" >&2; exit 2 ;;
esac
for client in "$CLIENT_A" "$CLIENT_B"; do
    [[ -z $client || $client == builtin || $client == system ]] || { echo "CLIENT_A / CLIENT_B must be builtin or system (got '$client')" >&2; exit 2; }
done
# the delayed upstream bounds throughput by latency: more connections and longer rounds, so the CPU ticks resolve ~1 %
[[ $REAL == 1 ]] && : "${CONNS:=128}" "${ROUND_S:=20}"
: "${CONNS:=16}" "${ROUND_S:=10}" "${WARM_S:=20}" "${A:=off}" "${B:=on}"
[[ $AA == 1 ]] && B=$A
for variant in "$A" "$B"; do
    relay_variant_ok "$variant" || { echo "A and B must each be one of: ${RELAY_VARIANTS[*]} (got '$variant')" >&2; exit 2; }
done
for dll in "${RELAY_A:-}" "${RELAY_B:-}"; do
    [[ -z $dll || -f $dll ]] || { echo "no such relay build: $dll (RELAY_A / RELAY_B name a cc-relay.dll)" >&2; exit 2; }
done
for tool in wrk nginx curl; do command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install -y wrk nginx-light curl)" >&2; exit 1; }; done

bench_scratch ccpaired
OUT="$BENCH/out/paired-$(date -u +%Y%m%dT%H%M%SZ).txt"

cd "$ROOT"
build_tools src/CcRelay.Cli bench/LoadGen
[[ $REAL == 1 ]] && build_tools bench/FakeUpstream
RELAY_DLL="$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll"
DLL_A="${RELAY_A:-$RELAY_DLL}" DLL_B="${RELAY_B:-$RELAY_DLL}"

# free loopback ports (as run.sh picks them)
read -r P_UP P_A P_B P_FAKE P_TLS <<<"$(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll" ports 5)"

# the upstream: nginx answering every request with one fixed Message (the one bench/run.sh uses); realistic:
# FakeUpstream (its head delay asked for by the request's knobs); https: TLS in front of either
UP_URL="http://127.0.0.1:$P_UP"
if [[ $REAL == 1 ]]; then
    dotnet "$ROOT/artifacts/bin/FakeUpstream/release/fake-upstream.dll" --port "$P_FAKE" --seed 22 >"$WORK/fake.log" 2>&1 &
    PIDS+=($!)
    UP_URL="http://127.0.0.1:$P_FAKE"
elif [[ $TLS == 0 ]]; then
    start_upstream "$WORK/up" "$P_UP"
fi
if [[ $TLS == 1 ]]; then
    make_test_tls "$WORK/tls"
    if [[ $REAL == 1 ]]; then location="$(nginx_to_fake)"; else location="return 200 '$MESSAGE_JSON';"; fi
    mkdir -p "$WORK/tlsup/tmp"
    { nginx_common "$WORK/tlsup"; echo "worker_processes auto;"; echo "http {"; nginx_http_common "$WORK/tlsup"
      nginx_tls_check_log; nginx_fake_upstream "$P_FAKE"
      nginx_tls_server "$P_TLS" "$WORK/tls" "$WORK/tlsup/check.log" "$location"; echo "}"; } >"$WORK/tlsup/nginx.conf"
    nginx -c "$WORK/tlsup/nginx.conf" -p "$WORK/tlsup" >/dev/null 2>&1 &
    PIDS+=($!)
    UP_URL="https://127.0.0.1:$P_TLS"
fi
UP_PIDS=("${PIDS[@]}")

# the request: the benchmark's Claude Code request (non-streaming), as a wrk script; realistic: its knobs ask for the
# head delay, and the warm-up sends the plain one (instant answers: the JIT sees many requests)
if [[ $REAL == 1 ]]; then
    sed "s/__BENCH__/cc-bench:deltas=0,interval_us=0,head_min_us=$REAL_HEAD_MIN_US,head_max_us=$REAL_HEAD_MAX_US/" \
        "$BENCH/payloads/messages.template.json" >"$WORK/realistic.json"
    write_wrk_script "$WORK" "$WORK/realistic.json"
else
    write_wrk_script "$WORK"
fi
write_wrk_script "$WORK" "" warm

write_relay_config "$WORK/a.yaml" "$P_A" "$P_UP" "$A"
write_relay_config "$WORK/b.yaml" "$P_B" "$P_UP" "$B"
sed -i "s#\"http://127.0.0.1:$P_UP\"#\"$UP_URL\"#g" "$WORK/a.yaml" "$WORK/b.yaml"

# relay_env CLIENT EXTRA: the environment a relay starts with (its upstream client; the throwaway CA with TLS; EXTRA:
# space-separated NAME=VALUE pairs)
relay_env() {
    if [[ -n $1 ]]; then echo "CC_RELAY_UPSTREAM_CLIENT=$1"; fi
    if [[ $TLS == 1 ]]; then echo "SSL_CERT_FILE=$WORK/tls/ca.pem"; fi
    if [[ -n $2 ]]; then tr ' ' '\n' <<<"$2" | grep .; fi
}
ENV_A_TEXT="${ENV_A:-}" ENV_B_TEXT="${ENV_B:-}"
mapfile -t ENV_A < <(relay_env "$CLIENT_A" "${ENV_A:-}")
mapfile -t ENV_B < <(relay_env "$CLIENT_B" "${ENV_B:-}")

load() { # $1 = port, $2 = seconds [$3 = wrk script name, default post] -> requests per second
    wrk -t1 -c"$CONNS" -d"$2"s --timeout 10s -s "$WORK/${3:-post}.lua" "http://127.0.0.1:$1/v1/messages" 2>&1 | awk '/Requests\/sec/{printf "%d", $2}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_health() { for _ in $(seq 100); do curl -sf -m 1 "http://127.0.0.1:$1/health" | grep -q '"fake"' && return 0; sleep 0.1; done; return 1; }

B_NAME=$([[ $AA == 1 ]] && echo "$A-again" || echo "$B")
{
    echo "bench/paired.sh: relay-$A (A${RELAY_A:+, $RELAY_A}${CLIENT_A:+, upstream client $CLIENT_A}${ENV_A_TEXT:+, $ENV_A_TEXT}) vs relay-$B_NAME (B${RELAY_B:+, $RELAY_B}${CLIENT_B:+, upstream client $CLIENT_B}${ENV_B_TEXT:+, $ENV_B_TEXT}), both loaded at once; $ROUNDS round(s) of ${ROUND_S}s after ${WARM_S}s of warm-up, wrk $CONNS connections each; upstream $UPSTREAM ($UP_URL)"
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
for r in $(seq "$ROUNDS"); do
    env "${ENV_A[@]}" dotnet "$DLL_A" serve --config "$WORK/a.yaml" >"$WORK/a.log" 2>&1 &
    PA=$!; PIDS+=("$PA")
    env "${ENV_B[@]}" dotnet "$DLL_B" serve --config "$WORK/b.yaml" >"$WORK/b.log" 2>&1 &
    PB=$!; PIDS+=("$PB")
    if ! { wait_health "$P_A" && wait_health "$P_B"; }; then
        say "a relay did not start; its output:"; tail -n 20 "$WORK/a.log" "$WORK/b.log" >&2; exit 1
    fi
    load "$P_A" "$WARM_S" warm >/dev/null & load "$P_B" "$WARM_S" warm >/dev/null; wait %%
    ca=$(cpu_ticks "$PA") cb=$(cpu_ticks "$PB")
    load "$P_A" "$ROUND_S" >"$WORK/ra" & load "$P_B" "$ROUND_S" >"$WORK/rb"; wait %%
    ca=$(($(cpu_ticks "$PA") - ca)) cb=$(($(cpu_ticks "$PB") - cb))
    a=$(cat "$WORK/ra") b=$(cat "$WORK/rb")
    kill -TERM "$PA" "$PB"; wait "$PA" "$PB" 2>/dev/null || true
    PIDS=("${UP_PIDS[@]}")
    awk -v r="$r" -v a="$a" -v b="$b" -v ca="$ca" -v cb="$cb" -v s="$ROUND_S" 'BEGIN {
        cpa = ca * 1e4 / (a * s); cpb = cb * 1e4 / (b * s)
        printf "round %d: A %d req/s, %.1f us CPU/request; B %d req/s, %.1f us CPU/request; B/A throughput %.3f cpu %.3f\n",
            r, a, cpa, b, cpb, b / a, cpb / cpa }' | tee -a "$OUT"
done
ratio_summary "$OUT" 2 "throughput"
ratio_summary "$OUT" 0 "CPU per request"
say "written: $OUT"
