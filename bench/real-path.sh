#!/usr/bin/env bash
# The path users take: the relay beside nginx (the reference proxy) against an https upstream and/or an upstream that
# answers after realistic delays, measured in one run. Started by bench/run.sh --upstream MODE (or directly, the same
# options):
#
#   bench/run.sh --upstream https             TLS upstream (HTTP/2 or HTTP/1.1 by ALPN) that answers at once
#   bench/run.sh --upstream realistic         plain-http upstream: first byte after 200-800 ms, 60 events 40 ms apart
#   bench/run.sh --upstream https-realistic   both: TLS, and the realistic delays behind it
#   bench/run.sh --upstream plain             today's default (bench/run.sh without --upstream)
#   ... --quick      1 short run: checks the harness, numbers are rough
#   ... --runs N     N runs (default 3); the relay ÷ nginx ratios get a 95 % interval from 6 runs on
#   ... --no-install do not apt-get missing tools
#   ... --out FILE   the report (default bench/out/<stamp>/real-path.md; bench/RESULTS.md is never written)
#   CC_RELAY_UPSTREAM_CLIENT=system bench/run.sh --upstream realistic
#                    the relay's plain-http upstream requests through SocketsHttpHandler instead of its own HTTP/1.1
#                    client (https always goes through SocketsHttpHandler)
#
# The upstreams. JSON: nginx answering a fixed Message (https), or bench/FakeUpstream (realistic: nginx cannot wait a
# drawn time). SSE: bench/FakeUpstream. With TLS, an nginx terminates it in front of them (`listen … ssl http2`, a
# certificate for 127.0.0.1 from a throwaway CA made here with openssl) and passes events on one by one
# (proxy_buffering off). The relay trusts the CA through SSL_CERT_FILE (its process only; .NET on Linux reads it, and a
# check pass shows a relay without it refused); nginx through proxy_ssl_trusted_certificate with proxy_ssl_verify on,
# TLS sessions reused and an upstream keep-alive pool. A check pass records, in the TLS nginx's log, the protocol each
# proxy speaks to the upstream.
#
# The realistic upstream draws each answer's wait before its head from one seeded sequence per lane (`?lane=` in the
# URL, forwarded by both proxies): in every test every target's n-th request waits the same time, so the latency
# percentiles of nginx and the relay differ by what they add, not by the draw.
#
# What is measured, per run (targets in an order rotated per run): throughput and CPU per request with wrk at fixed
# concurrency (latency-bound with the delayed upstream: read the CPU per request); latency at a fixed rate, the targets
# interleaved request by request, and the latency each proxy adds to the upstream's own (direct); time to first event
# and per-event delay (loadgen ttfb, interleaved); per-event delay of many streams at once (loadgen sse); RSS per open
# stream (loadgen hold, fresh processes). Every row has the relay ÷ nginx ratio of the same run. "direct" with TLS:
# LoadGen's own clients speak no TLS, so their direct is the same upstream over plain http (the fixed-answer nginx's
# plain listener, or FakeUpstream behind the TLS nginx); wrk speaks TLS, so direct throughput is over https.
#
# Everything listens on 127.0.0.1 (ports picked at random); every process started here is stopped by PID on exit,
# error or Ctrl-C; every load step is bounded in time and in requests. Raw data and logs: bench/out/<stamp>/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
CMDLINE="bench/run.sh${*:+ $*}"

MODE="" RUNS=3 QUICK=0 INSTALL=1 REPORT=""
ARGS=("$@")
while [[ $# -gt 0 ]]; do
    case "$1" in
        --upstream) MODE="$2"; shift ;;
        --quick) QUICK=1; RUNS=1 ;;
        --runs) RUNS="$2"; shift ;;
        --no-install) INSTALL=0 ;;
        --out) REPORT="$(realpath -m "$2")"; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
        *) echo "bench/run.sh --upstream: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done
case "$MODE" in
    plain) # today's default: bench/run.sh without --upstream
        rest=() skip=0
        for a in "${ARGS[@]}"; do
            if [[ $skip == 1 ]]; then skip=0; elif [[ $a == --upstream ]]; then skip=1; else rest+=("$a"); fi
        done
        exec "$BENCH/run.sh" "${rest[@]}" ;;
    https) TLS=1 REAL=0 ;;
    realistic) TLS=0 REAL=1 ;;
    https-realistic) TLS=1 REAL=1 ;;
    *) echo "--upstream must be https, realistic or https-realistic (plain: bench/run.sh without it), not '$MODE'" >&2; exit 2 ;;
esac

# ---- parameters (env overrides allowed) -------------------------------------------------------------------------
if [[ $REAL == 1 ]]; then
    # latency-bound: wrk at fixed concurrency long enough for CPU ticks (10 ms) to resolve ~1 %; a low fixed rate
    # (3 targets × RATE × up to 0.8 s in flight) with enough workers; streams shaped as answers are (60 events 40 ms
    # apart); the warm-ups short, every request waits 0.5 s on average
    if [[ $QUICK == 1 ]]; then
        : "${TP_CONNS:=128}" "${TP_SECONDS:=8}" "${RATE_COUNT:=100}" "${SSE_STREAMS:=32}" "${TTFB_ROUNDS:=6}" "${HOLD_DELTAS:=5}" "${WARMUP_SECONDS:=3}"
    else
        : "${TP_CONNS:=64 256}" "${TP_SECONDS:=20}" "${RATE_COUNT:=400}" "${SSE_STREAMS:=64}" "${TTFB_ROUNDS:=20}" "${HOLD_DELTAS:=10}" "${WARMUP_SECONDS:=10}"
    fi
    : "${TP_WARMUP:=2}" "${RATE:=20}" "${RATE_WORKERS:=128}" "${RATE_WARMUP:=10}"
    : "${SSE_ROUNDS:=1}" "${SSE_DELTAS:=55}" "${SSE_INTERVAL_MS:=40}" "${SSE_LATE_MS:=5}"
    : "${TTFB_CONC:=10}" "${TTFB_DELTAS:=10}" "${TTFB_INTERVAL_MS:=40}" "${HOLD_WARMUP_JSON:=10}"
else
    if [[ $QUICK == 1 ]]; then
        : "${TP_SECONDS:=3}" "${TP_WARMUP:=1}" "${RATE_COUNT:=1000}" "${SSE_STREAMS:=32}" "${SSE_ROUNDS:=1}" "${TTFB_ROUNDS:=80}" "${HOLD_DELTAS:=5}" "${WARMUP_SECONDS:=3}"
    else
        : "${TP_SECONDS:=6}" "${TP_WARMUP:=2}" "${RATE_COUNT:=3000}" "${SSE_STREAMS:=64}" "${SSE_ROUNDS:=2}" "${TTFB_ROUNDS:=300}" "${HOLD_DELTAS:=10}" "${WARMUP_SECONDS:=10}"
    fi
    : "${TP_CONNS:=32 128}" "${RATE:=200}" "${RATE_WORKERS:=16}" "${RATE_WARMUP:=500}"
    : "${SSE_DELTAS:=40}" "${SSE_INTERVAL_MS:=20}" "${SSE_LATE_MS:=5}"
    : "${TTFB_CONC:=1}" "${TTFB_DELTAS:=3}" "${TTFB_INTERVAL_MS:=5}" "${HOLD_WARMUP_JSON:=2000}"
fi
: "${TP_MAX_REQUESTS:=2000000}" "${HOLD_STREAMS:=1000}" "${HOLD_INTERVAL_MS:=1000}" "${SEED:=22}"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/out/$STAMP"
WORK="$(mktemp -d /tmp/ccrealpath.XXXXXX)"
# The relays keep their default usage ledger (on), in the scratch dir rather than the user's ~/.local/state
export XDG_STATE_HOME="$WORK/state"
mkdir -p "$OUT"
: "${REPORT:=$OUT/real-path.md}"
RESULTS="$OUT/results.jsonl" LOG="$OUT/run.log" TTFB_DETAIL="$WORK/ttfb-detail.md"
: > "$RESULTS"

PIDS=()
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for f in "$WORK"/*.log "$WORK"/*/*.log; do [[ -f $f ]] && { cp "$f" "$OUT/$(echo "${f#"$WORK"/}" | tr / _)" 2>/dev/null || true; }; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }

# stop_pid PID: stop one process started here and forget it
stop_pid() {
    local pid="$1" keep=() p
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ $p != "$pid" ]] && keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# MESSAGE_JSON, nginx_common, nginx_http_common, write_relay_config, make_test_tls, realistic_template, nginx_tls_*
source "$BENCH/lib.sh"

# ---- tools, build ---------------------------------------------------------------------------------------------------
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v openssl >/dev/null || need+=(openssl)
if [[ ${#need[@]} -gt 0 ]]; then
    [[ $INSTALL == 1 ]] || { echo "missing: ${need[*]} (run without --no-install)" >&2; exit 1; }
    say "installing ${need[*]}"
    apt-get update -qq >>"$LOG" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >>"$LOG" 2>&1
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cd "$ROOT"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
for project in bench/FakeUpstream bench/LoadGen src/CcRelay.Cli; do
    say "building $project (Release)"
    dotnet build -c Release "$project" >>"$LOG" 2>&1 || { tail -30 "$LOG"; exit 1; }
done
RELAY_DLL="$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll"
FAKE="$ROOT/artifacts/bin/FakeUpstream/release/fake-upstream.dll"
LOADGEN=(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll")
export DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1
lg() { "${LOADGEN[@]}" "$@"; }

# The request: the benchmark's Claude Code request, its knobs asking for message_start and content_block_start in one
# write (as Anthropic sends them; a gap between them is what bench/ttfb.sh measures, with the relay's hold of
# message_start) and, for the realistic upstream, for the head delay. The one-off warm-ups use the plain request
# (instant answers: the JIT sees many requests).
WARM_TEMPLATE="$BENCH/payloads/messages.template.json" TEMPLATE="$WORK/messages.template.json"
if [[ $REAL == 1 ]]; then
    realistic_template "$WARM_TEMPLATE" "$TEMPLATE"
else
    sed "s/__BENCH__/__BENCH__,first_us=0/" "$WARM_TEMPLATE" >"$TEMPLATE"
fi
HEADERS="$BENCH/payloads/headers.txt"

# ---- the upstreams ------------------------------------------------------------------------------------------------
read -r P_FAKE P_UP_PLAIN P_TLS_JSON P_TLS_SSE P_NG_JSON P_NG_SSE P_NG_HOLD P_RL_JSON P_RL_SSE P_RL_HOLD P_NOCA <<<"$(lg ports 11)"
TLSDIR="$WORK/tls"

say "starting FakeUpstream (seed $SEED)"
dotnet "$FAKE" --port "$P_FAKE" --seed "$SEED" >"$WORK/fake-upstream.log" 2>&1 &
PIDS+=($!)
lg wait-port --port "$P_FAKE" --timeout-s 30

start_nginx() { # DIR: nginx with DIR/nginx.conf; echoes its pid
    nginx -t -q -p "$1" -c "$1/nginx.conf" >>"$LOG" 2>&1 || { cat "$1/error.log" >&2; exit 1; }
    nginx -p "$1" -c "$1/nginx.conf" >"$1/stdout.log" 2>&1 &
    echo $!
}

if [[ $TLS == 1 ]]; then
    say "making a throwaway CA and a certificate for 127.0.0.1 (openssl, in $WORK)"
    make_test_tls "$TLSDIR"
    # One nginx terminates TLS for both upstreams: JSON (the fixed answer, or FakeUpstream when realistic) and SSE
    # (FakeUpstream, event by event); with the instant JSON upstream, a plain listener of the same server is LoadGen's
    # "direct" (LoadGen speaks no TLS).
    if [[ $REAL == 1 ]]; then JSON_LOCATION="$(nginx_to_fake)"; else JSON_LOCATION="add_header request-id req_bench_nginx_upstream; return 200 '$MESSAGE_JSON';"; fi
    mkdir -p "$WORK/up/tmp"
    { nginx_common "$WORK/up"; echo "worker_processes auto;"; echo "http {"; nginx_http_common "$WORK/up"
      nginx_tls_check_log; nginx_fake_upstream "$P_FAKE"
      nginx_tls_server "$P_TLS_JSON" "$TLSDIR" "$WORK/up/check-json.log" "$JSON_LOCATION"
      nginx_tls_server "$P_TLS_SSE" "$TLSDIR" "$WORK/up/check-sse.log" "$(nginx_to_fake)"
      if [[ $REAL == 0 ]]; then
          echo "    server { listen 127.0.0.1:$P_UP_PLAIN backlog=8192; default_type application/json; location / { $JSON_LOCATION } }"
      fi
      echo "}"
    } >"$WORK/up/nginx.conf"
    PID_UP="$(start_nginx "$WORK/up")"; PIDS+=("$PID_UP")
    lg wait-port --port "$P_TLS_JSON" --timeout-s 30
    UP_JSON="https://127.0.0.1:$P_TLS_JSON" UP_SSE="https://127.0.0.1:$P_TLS_SSE"
    DIRECT_WRK="https://127.0.0.1:$P_TLS_JSON"
    if [[ $REAL == 1 ]]; then DIRECT_JSON="http://127.0.0.1:$P_FAKE"; else DIRECT_JSON="http://127.0.0.1:$P_UP_PLAIN"; fi
else
    UP_JSON="http://127.0.0.1:$P_FAKE" UP_SSE="http://127.0.0.1:$P_FAKE"
    DIRECT_WRK="$UP_JSON" DIRECT_JSON="$UP_JSON"
fi
DIRECT_SSE="http://127.0.0.1:$P_FAKE"

# The reference proxy. $1 = dir name, then pairs of "listen_port upstream_url".
write_proxy_nginx() {
    local d="$WORK/$1" i=0 url
    shift
    mkdir -p "$d/tmp"
    { nginx_common "$d"; echo "worker_processes auto;"; echo "http {"; nginx_http_common "$d"
      cat <<EOF
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    proxy_read_timeout 600s;
    proxy_send_timeout 600s;
EOF
      while [[ $# -gt 0 ]]; do
          url="$2"
          echo "    upstream up$i { server ${url#*://}; keepalive 256; keepalive_requests 1000000; keepalive_timeout 300s; }"
          if [[ $url == https://* ]]; then
              echo "    server { listen 127.0.0.1:$1 backlog=8192; location / { $(nginx_https_proxy "up$i" "$TLSDIR") } }"
          else
              echo "    server { listen 127.0.0.1:$1 backlog=8192; location / { proxy_pass http://up$i; } }"
          fi
          shift 2; i=$((i + 1))
      done
      echo "}"
    } >"$d/nginx.conf"
}

# The relay: the real `cc-relay serve`, the default benchmark config (one anthropic_compatible provider "fake", warn
# logs) with base_url at the upstream; with TLS it trusts the throwaway CA through SSL_CERT_FILE (unless $4 = noca).
start_relay_to() { # NAME PORT UPSTREAM_URL [noca]; echoes pid
    write_relay_config "$WORK/$1.yaml" "$2" 0 default
    sed -i "s#base_url: \"http://127.0.0.1:0\"#base_url: \"$3\"#" "$WORK/$1.yaml"
    grep -q "base_url: \"$3\"" "$WORK/$1.yaml" || { say "could not set base_url in $WORK/$1.yaml"; exit 1; }
    if [[ $TLS == 1 && ${4:-} != noca ]]; then
        SSL_CERT_FILE="$TLSDIR/ca.pem" dotnet "$RELAY_DLL" serve --config "$WORK/$1.yaml" --listen "127.0.0.1:$2" >"$WORK/$1.log" 2>&1 &
    else
        env -u SSL_CERT_FILE dotnet "$RELAY_DLL" serve --config "$WORK/$1.yaml" --listen "127.0.0.1:$2" >"$WORK/$1.log" 2>&1 &
    fi
    echo $!
}
relay_ready() { # PORT: its /health lists the benchmark provider (otherwise it would forward off the machine)
    for _ in $(seq 300); do curl -sf -m 1 "http://127.0.0.1:$1/health" | grep -q '"name":"fake"' && return 0; sleep 0.1; done
    say "the relay on $1 did not come up with the benchmark config"; return 1
}

say "starting nginx (reference proxy) and the relay ($MODE upstream: JSON $UP_JSON, SSE $UP_SSE)"
write_proxy_nginx proxy "$P_NG_JSON" "$UP_JSON" "$P_NG_SSE" "$UP_SSE"
PID_NG="$(start_nginx "$WORK/proxy")"; PIDS+=("$PID_NG")
PID_RL_JSON="$(start_relay_to relay-json "$P_RL_JSON" "$UP_JSON")"; PIDS+=("$PID_RL_JSON")
PID_RL_SSE="$(start_relay_to relay-sse "$P_RL_SSE" "$UP_SSE")"; PIDS+=("$PID_RL_SSE")
lg wait-port --port "$P_NG_JSON" --timeout-s 30
relay_ready "$P_RL_JSON"; relay_ready "$P_RL_SSE"

declare -A URL_JSON=([direct]="$DIRECT_JSON/v1/messages" [nginx]="http://127.0.0.1:$P_NG_JSON/v1/messages" [relay]="http://127.0.0.1:$P_RL_JSON/v1/messages")
declare -A URL_WRK=([direct]="$DIRECT_WRK/v1/messages" [nginx]="${URL_JSON[nginx]}" [relay]="${URL_JSON[relay]}")
declare -A URL_SSE=([direct]="$DIRECT_SSE/v1/messages" [nginx]="http://127.0.0.1:$P_NG_SSE/v1/messages" [relay]="http://127.0.0.1:$P_RL_SSE/v1/messages")
declare -A PID_JSON=([direct]="" [nginx]="$PID_NG" [relay]="$PID_RL_JSON") PID_SSE=([direct]="" [nginx]="$PID_NG" [relay]="$PID_RL_SSE")

# ---- check pass ---------------------------------------------------------------------------------------------------
# check URL STREAM AGENT -> 0 if 200 and the body looks right (AGENT: the user agent, cc-bench-check/… is logged by the
# TLS nginx with the protocol it was spoken to in)
check() {
    local url="$1" stream="$2" agent="$3" body="$WORK/check-body.json" out="$WORK/check.out" code h hdr=()
    sed -e "s/__STREAM__/$stream/" -e "s/__BENCH__/cc-bench:deltas=3,interval_us=1000/" "$TEMPLATE" >"$body"
    while IFS= read -r h; do [[ -n $h && ${h,,} != user-agent:* ]] && hdr+=(-H "$h"); done <"$HEADERS"
    code="$(curl -s -m 20 -o "$out" -w '%{http_code}' "${hdr[@]}" -H "user-agent: $agent" --data-binary "@$body" "$url" || true)"
    if [[ $code != 200 ]]; then say "check $url stream=$stream: HTTP $code $(head -c 300 "$out" 2>/dev/null)"; return 1; fi
    if [[ $stream == true ]]; then grep -q 'event: message_stop' "$out"; else grep -q '"end_turn"' "$out"; fi
}
say "check pass"
for t in direct nginx relay; do
    for i in 1 2 3; do
        check "${URL_JSON[$t]}?lane=check" false "cc-bench-check/$t-json" || { say "$t failed the JSON check"; exit 1; }
        check "${URL_SSE[$t]}?lane=check" true "cc-bench-check/$t-sse" || { say "$t failed the SSE check"; exit 1; }
    done
done
PROTOCOLS="" NOCA=""
if [[ $TLS == 1 ]]; then
    curl -s -m 10 --cacert "$TLSDIR/ca.pem" -o /dev/null -A cc-bench-check/curl-https "$DIRECT_WRK/v1/messages" -d '{}' || true
    sleep 1
    # what each proxy spoke to the TLS upstream: "<agent> <protocol> <TLS version> session_reused=… connection=… request_on_it=…"
    PROTOCOLS="$(cat "$WORK/up/check-json.log" "$WORK/up/check-sse.log" 2>/dev/null | awk '{print $1, $2, $3, $4}' | sort | uniq -c)"
    say "protocols spoken to the TLS upstream:"; echo "$PROTOCOLS" | tee -a "$LOG" >&2
    # The relay verifies the upstream's certificate: without the CA (no SSL_CERT_FILE) it must refuse the upstream.
    pid="$(start_relay_to relay-noca "$P_NOCA" "$UP_JSON" noca)"; PIDS+=("$pid")
    relay_ready "$P_NOCA"
    if check "http://127.0.0.1:$P_NOCA/v1/messages?lane=check" false cc-bench-check/relay-noca 2>>"$LOG"; then
        say "a relay without the CA reached the TLS upstream: its certificate validation is not in force; stopping"; exit 1
    fi
    NOCA="$(head -c 200 "$WORK/check.out"); log: $(grep -m1 -o 'upstream connection failed[^"]*' "$WORK/relay-noca.log" || echo '?')"
    say "relay without the CA: $NOCA"
    stop_pid "$pid"
fi

# ---- measurements -------------------------------------------------------------------------------------------------
TARGETS=(direct nginx relay)
COMMON=(--body "$TEMPLATE" --headers "$HEADERS" --out "$RESULTS")
rotate() { # RUN: TARGETS rotated by RUN-1
    local n=${#TARGETS[@]} k=$(( ($1 - 1) % ${#TARGETS[@]} )) i
    for ((i = 0; i < n; i++)); do echo -n "${TARGETS[$(( (i + k) % n ))]} "; done
}
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

for t in nginx relay; do
    say "warm-up $t (${WARMUP_SECONDS}s JSON + SSE, instant answers)"
    lg throughput --label "$t" --url "${URL_JSON[$t]}?lane=warm" --conns 32 --duration "$WARMUP_SECONDS" \
        --max-requests "$TP_MAX_REQUESTS" --body "$WARM_TEMPLATE" --headers "$HEADERS" --out "$OUT/warmup.jsonl" >>"$LOG"
    lg sse --label "$t" --url "${URL_SSE[$t]}?lane=warm" --streams 32 --rounds 1 --deltas 100 --interval-ms 2 \
        --body "$WARM_TEMPLATE" --headers "$HEADERS" --out "$OUT/warmup.jsonl" >>"$LOG"
done

for run in $(seq "$RUNS"); do
    order=($(rotate "$run"))
    say "run $run/$RUNS (order: ${order[*]})"
    for conns in $TP_CONNS; do
        for t in "${order[@]}"; do
            say "  throughput $t c=$conns"
            lg throughput --run "$run" --label "$t" --url "${URL_WRK[$t]}?lane=tp-$run-$t" --conns "$conns" \
                --duration "$TP_SECONDS" --warmup-s "$TP_WARMUP" --max-requests "$TP_MAX_REQUESTS" --pids "${PID_JSON[$t]}" \
                "${COMMON[@]}" >>"$LOG" || say "  throughput $t failed (see $LOG)"
        done
    done

    # one pid group per target, '/' between groups (direct's is empty)
    labels="" urls="" groups=()
    for t in "${order[@]}"; do
        labels+="${labels:+,}$t" urls+="${urls:+,}${URL_JSON[$t]}?lane=rate-$run-$t" groups+=("${PID_JSON[$t]}")
    done
    pids="$(IFS=/; echo "${groups[*]}")"
    say "  fixed rate, interleaved: $labels ($RATE req/s each, $RATE_COUNT each)"
    lg rate --run "$run" --label "$labels" --url "$urls" --pids "$pids" --rate "$RATE" --count "$RATE_COUNT" \
        --workers "$RATE_WORKERS" --warmup "$RATE_WARMUP" "${COMMON[@]}" >>"$LOG" || say "  fixed rate failed (see $LOG)"

    urls="" groups=()
    for t in "${order[@]}"; do urls+="${urls:+,}${URL_SSE[$t]}?lane=ttfb-$run-$t" groups+=("${PID_SSE[$t]}"); done
    pids="$(IFS=/; echo "${groups[*]}")"
    say "  time to first event, interleaved: $labels ($TTFB_ROUNDS rounds of $TTFB_CONC stream(s) each)"
    echo "run $run:" >>"$TTFB_DETAIL"
    lg ttfb --run "$run" --label "$labels" --url "$urls" --pids "$pids" --baseline direct,nginx --concurrency "$TTFB_CONC" \
        --rounds "$TTFB_ROUNDS" --warmup-rounds 3 --deltas "$TTFB_DELTAS" --interval-ms "$TTFB_INTERVAL_MS" --first-us 0 \
        --tag ttfb --report "$TTFB_DETAIL" "${COMMON[@]}" >>"$LOG" 2>&1 || say "  some ttfb streams failed (see the ttfb detail)"

    for t in "${order[@]}"; do
        say "  sse $t ($SSE_STREAMS streams × $SSE_ROUNDS, $SSE_DELTAS deltas $SSE_INTERVAL_MS ms apart)"
        lg sse --run "$run" --label "$t" --url "${URL_SSE[$t]}?lane=sse-$run-$t" --streams "$SSE_STREAMS" --rounds "$SSE_ROUNDS" \
            --deltas "$SSE_DELTAS" --interval-ms "$SSE_INTERVAL_MS" --late-ms "$SSE_LATE_MS" "${COMMON[@]}" >>"$LOG" \
            || say "  sse $t failed (see $LOG)"
    done

    # Memory: fresh processes each run ("idle" = warmed up, unloaded)
    for t in "${order[@]}"; do
        [[ $t == direct ]] && continue
        if [[ $t == nginx ]]; then
            write_proxy_nginx hold "$P_NG_HOLD" "$UP_SSE"
            pid="$(start_nginx "$WORK/hold")"; port="$P_NG_HOLD"; PIDS+=("$pid")
            lg wait-port --port "$port" --timeout-s 30
        else
            pid="$(start_relay_to relay-hold "$P_RL_HOLD" "$UP_SSE")"; port="$P_RL_HOLD"; PIDS+=("$pid")
            relay_ready "$port"
        fi
        say "  hold $t ($HOLD_STREAMS streams)"
        lg hold --run "$run" --label "$t" --url "http://127.0.0.1:$port/v1/messages?lane=hold-$run-$t" --streams "$HOLD_STREAMS" \
            --deltas "$HOLD_DELTAS" --interval-ms "$HOLD_INTERVAL_MS" --warmup-json "$HOLD_WARMUP_JSON" --pids "$pid" \
            "${COMMON[@]}" >>"$LOG" || say "  hold $t failed (see $LOG)"
        stop_pid "$pid"
    done
done
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- report -------------------------------------------------------------------------------------------------------
# Per row: medians over runs of each target; relay ÷ nginx and relay − nginx within each run, their median, and a
# distribution-free 95 % interval for the ratio (order statistics: [r_k, r_(n+1-k)], none below 6 runs). No ratio when
# in some run nginx's figure is not positive or the relay's negative (an added p99 can come out below zero): read the
# difference then.
REPORT_JQ="$(cat <<'JQ'
      def med: sort | if length == 0 then null elif length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
      def binom_cdf($n; $m): reduce range(0; $m + 1) as $i ({c: 1, s: 0}; .s += .c | .c = .c * ($n - $i) / ($i + 1)) | .s / pow(2; $n);
      def k95($n): [range(1; $n + 1) | select(binom_cdf($n; . - 1) <= 0.025)] | if length == 0 then 0 else max end;
      def ci: sort as $r | ($r | length) as $n | k95($n) as $k | if $k == 0 then null else [$r[$k - 1], $r[$n - $k]] end;
      def f($d): if . == null then "–" else (. * pow(10; $d) | round / pow(10; $d) | tostring) end;
      def val($rs; $t; $run; $key; $added):
        ($rs | map(select(.target == $t and .run == $run)) | first | if . == null then null else .[$key] end) as $v
        | if $added | not then $v
          else ($rs | map(select(.target == "direct" and .run == $run)) | first | if . == null then null else .[$key] end) as $d
               | if $v == null or $d == null then null else $v - $d end end;
      def row($name; $test; $conns; $key; $added; $d):
        map(select(.test == $test and ($conns == null or .conns == $conns))) as $rs
        | if ($rs | length) == 0 then empty else
          ([$rs[].run] | unique) as $runs
          | (["direct", "nginx", "relay"] | map(. as $t | [$runs[] as $r | val($rs; $t; $r; $key; $added) | select(. != null)] | med)) as $m
          | select($m | map(select(. != null)) | length > 0)
          | [$runs[] as $r | {a: val($rs; "relay"; $r; $key; $added), b: val($rs; "nginx"; $r; $key; $added)} | select(.a != null and .b != null)] as $pairs
          | (if any($pairs[]; .b <= 0 or .a < 0) then [] else [$pairs[] | .a / .b] end) as $ratios
          | ($ratios | ci) as $ci
          | "| \($name) | \(if $added then "–" else ($m[0] | f($d)) end) | \($m[1] | f($d)) | \($m[2] | f($d)) | \(if ($ratios | length) == 0 then "–" else "**\($ratios | med | f(2))×**" + (if $ci == null then "" else " [\($ci[0] | f(2)), \($ci[1] | f(2))]" end) end) | \([$pairs[] | .a - .b] | med | if . == null then "–" else (if . >= 0 then "+" else "" end) + f($d) end) |"
          end;
      map(if .test == "rate" and .cpu_s_per_10k != null then .cpu_us = .cpu_s_per_10k * 100 else . end) as $all
      | ([$all[] | select(.test == "throughput") | .conns] | unique) as $conns
      | ($conns[] as $c | ($all | row("throughput req/s, wrk \($c) connections"; "throughput"; $c; "rps"; false; 0)),
                          ($all | row("proxy CPU µs per request, wrk \($c) connections"; "throughput"; $c; "cpu_us_per_req"; false; 1)),
                          ($all | row("latency p50 ms, wrk \($c) connections"; "throughput"; $c; "p50_ms"; false; 3))),
        ($all | row("latency p50 ms, fixed rate"; "rate"; null; "p50_ms"; false; 3)),
        ($all | row("latency p99 ms, fixed rate"; "rate"; null; "p99_ms"; false; 3)),
        # with the realistic upstream every response says how long the upstream waited: latency less that wait ("net"),
        # request by request, is what the path added to it; the added rows are computed from it then
        ([$all[] | select(.test == "rate" and .net_p50_ms != null)] | length > 0) as $net
        | ($all | row("latency less the upstream's own wait p50 ms, fixed rate"; "rate"; null; "net_p50_ms"; false; 3)),
        ($all | row("latency less the upstream's own wait p99 ms, fixed rate"; "rate"; null; "net_p99_ms"; false; 3)),
        ($all | row("added latency p50 ms, fixed rate\(if $net then " (net of the upstream's wait)" else "" end)"; "rate"; null; if $net then "net_p50_ms" else "p50_ms" end; true; 3)),
        ($all | row("added latency p99 ms, fixed rate\(if $net then " (net of the upstream's wait)" else "" end)"; "rate"; null; if $net then "net_p99_ms" else "p99_ms" end; true; 3)),
        ($all | row("added latency mean ms, fixed rate (net of the upstream's wait)"; "rate"; null; "net_mean_ms"; true; 3)),
        ($all | row("proxy CPU µs per request, fixed rate"; "rate"; null; "cpu_us"; false; 1)),
        ($all | row("time to first event p50 ms (request write → message_start read)"; "ttfb"; null; "ttfb_p50_ms"; false; 3)),
        ($all | row("time to first event p99 ms"; "ttfb"; null; "ttfb_p99_ms"; false; 3)),
        ($all | row("time to first event less the upstream's own wait p50 ms"; "ttfb"; null; "ttfb_net_p50_ms"; false; 3)),
        ($all | row("time to first event less the upstream's own wait p99 ms"; "ttfb"; null; "ttfb_net_p99_ms"; false; 3)),
        ([$all[] | select(.test == "ttfb" and .ttfb_net_p50_ms != null)] | length > 0) as $tnet
        | ($all | row("added time to first event p50 ms\(if $tnet then " (net of the upstream's wait)" else "" end)"; "ttfb"; null; if $tnet then "ttfb_net_p50_ms" else "ttfb_p50_ms" end; true; 3)),
        ($all | row("added time to first event p99 ms\(if $tnet then " (net of the upstream's wait)" else "" end)"; "ttfb"; null; if $tnet then "ttfb_net_p99_ms" else "ttfb_p99_ms" end; true; 3)),
        ($all | row("first-event delay p50 ms (upstream write → client read)"; "ttfb"; null; "first_event_delay_p50_ms"; false; 3)),
        ($all | row("first-event delay p99 ms"; "ttfb"; null; "first_event_delay_p99_ms"; false; 3)),
        ($all | row("later events delay p50 ms (ttfb streams)"; "ttfb"; null; "later_event_delay_p50_ms"; false; 3)),
        ($all | row("proxy CPU ms per stream (ttfb streams)"; "ttfb"; null; "cpu_ms_per_stream"; false; 3)),
        ($all | row("per-event delay p50 ms (sse, many streams at once)"; "sse"; null; "p50_ms"; false; 3)),
        ($all | row("per-event delay p99 ms (sse)"; "sse"; null; "p99_ms"; false; 3)),
        ($all | row("events coalesced with the next % (sse)"; "sse"; null; "coalesced_pct"; false; 3)),
        ($all | row("failed streams (sse)"; "sse"; null; "failed_streams"; false; 0)),
        ($all | row("RSS idle after warm-up MB (hold)"; "hold"; null; "rss_idle_mb"; false; 1)),
        ($all | row("RSS while holding the streams MB"; "hold"; null; "rss_hold_mb"; false; 1)),
        ($all | row("RSS per open stream KB"; "hold"; null; "kb_per_stream"; false; 1)),
        ($all | row("failed of the held streams"; "hold"; null; "failed_streams"; false; 0))
JQ
)"
case "$MODE" in
    https) DESC="https upstream (TLS 1.2/1.3, HTTP/2 and HTTP/1.1 by ALPN; certificate from a throwaway CA, verified by both proxies) answering at once: JSON from nginx's fixed answer, SSE from FakeUpstream behind the TLS nginx" ;;
    realistic) DESC="plain-http upstream answering after realistic delays: FakeUpstream, each answer's head after a uniform draw in [$((REAL_HEAD_MIN_US / 1000)), $((REAL_HEAD_MAX_US / 1000))] ms (seed $SEED, the same sequence per target)" ;;
    https-realistic) DESC="https upstream (as --upstream https) in front of FakeUpstream answering after realistic delays (head after [$((REAL_HEAD_MIN_US / 1000)), $((REAL_HEAD_MAX_US / 1000))] ms, seed $SEED, the same sequence per target)" ;;
esac
if [[ $TLS == 1 ]]; then
    DIRECT_NOTE="direct: wrk (throughput) over https to the upstream; LoadGen's tests (fixed rate, ttfb, sse) speak no TLS, so their direct is the same upstream over plain http ($([[ $REAL == 1 ]] && echo "FakeUpstream itself, behind the TLS nginx" || echo "the fixed-answer nginx's plain listener; SSE: FakeUpstream behind the TLS nginx")): the proxies' added latency includes their TLS hop"
else
    DIRECT_NOTE="direct: the load tool to the upstream itself"
fi
{
    echo "# The path users take: relay vs nginx, $MODE upstream"
    echo
    echo "- **Command**: \`$CMDLINE\`$([[ -n ${CC_RELAY_UPSTREAM_CLIENT:-} ]] && echo " with CC_RELAY_UPSTREAM_CLIENT=$CC_RELAY_UPSTREAM_CLIENT")"
    echo "- **Date (UTC)**: $(date -u '+%Y-%m-%d %H:%M'); commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src bench || echo ' (+ uncommitted changes)')"
    echo "- **Machine**: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo); $(uname -sr); .NET SDK $(dotnet --version); $(nginx -v 2>&1 | sed 's/nginx version: //'); $(openssl version | cut -d' ' -f1-2)"
    echo "- **Load average**: $LOAD_START at the start of the measurements, $LOAD_END at the end (the machine is shared: other engineers build on it)"
    echo "- **Upstream**: $DESC"
    echo "- **Parameters**: wrk at ${TP_CONNS// /, } connections for ${TP_SECONDS}s (+${TP_WARMUP}s); fixed rate $RATE req/s per target × $RATE_COUNT, interleaved; ttfb $TTFB_ROUNDS rounds × $TTFB_CONC stream(s) per target, $TTFB_DELTAS deltas $TTFB_INTERVAL_MS ms apart; sse $SSE_STREAMS streams × $SSE_ROUNDS, $SSE_DELTAS deltas $SSE_INTERVAL_MS ms apart; hold $HOLD_STREAMS streams × ($HOLD_DELTAS+5) events $HOLD_INTERVAL_MS ms apart; $RUNS run(s), targets rotated per run"
    echo "- **$DIRECT_NOTE**"
    if [[ $TLS == 1 ]]; then
        echo "- **Protocol each proxy spoke to the TLS upstream** (check pass, the TLS nginx's log: count, user agent, \`\$server_protocol\`, \`\$ssl_protocol\`, \`\$ssl_session_reused\`):"
        echo '```'; echo "$PROTOCOLS"; echo '```'
        echo "- **Certificate validation in force**: a relay started without SSL_CERT_FILE was refused by the same upstream: $NOCA"
    fi
    echo
    echo "Medians over runs. relay ÷ nginx and relay − nginx are computed within each run, then the median taken (95 % interval from 6 runs)."
    echo "Added = a proxy's figure − direct's in the same run."
    echo
    echo "| Metric | direct | nginx | relay | relay ÷ nginx | relay − nginx |"
    echo "|---|---:|---:|---:|---:|---:|"
    jq -rs "$REPORT_JQ" "$RESULTS"
    echo
    echo "Errors: $(jq -rs '[.[] | select((.errors // 0) > 0 or (.failed_streams // 0) > 0) | "\(.test) run \(.run) \(.target): errors \(.errors // 0), failed streams \(.failed_streams // 0)\(if .first_failure then " (" + .first_failure + ")" else "" end)"] | if length == 0 then "none" else join("; ") end' "$RESULTS")"
    echo
    echo "## Time to first event, per run (loadgen ttfb: added against direct and against nginx, per block of rounds)"
    echo
    cat "$TTFB_DETAIL" 2>/dev/null
} >"$REPORT"
[[ $REPORT == "$OUT/real-path.md" ]] || cp "$REPORT" "$OUT/real-path.md"
cat "$REPORT"
say "done: $REPORT (raw data: ${OUT#"$ROOT"/})"
