#!/usr/bin/env bash
# CcRelay benchmark: direct vs nginx (reference proxy) vs cc-relay, all in the same run, results in bench/RESULTS.md.
#
#   bench/run.sh                 full run (default 3 runs, ~9 minutes)
#   bench/run.sh --quick         1 short run (~1.5 minutes) to check the harness
#   bench/run.sh --runs 5        more runs (medians get steadier)
#   bench/run.sh --no-relay      direct + nginx only (relay column shows n/a)
#   bench/run.sh --no-diag       skip the diagnostic pass (perf stat: syscalls and context switches per request)
#   bench/run.sh --nice N        run everything at nice N (e.g. -10) to push back other load on a shared machine
#   bench/run.sh --no-install    do not apt-get missing tools
#   bench/run.sh --out FILE      write the report somewhere else than bench/RESULTS.md
#   bench/run.sh --observability the relay twice in one run: metrics off + warn logs vs metrics on + info JSON logs
#                                to a file; prints (and writes to bench/out/<stamp>/observability.md) the on ÷ off ratios
#   bench/run.sh --routing       the relay twice in one run: one provider with one key vs three providers (round robin)
#                                with four rate-limited keys each; prints (and writes to bench/out/<stamp>/routing.md)
#                                the pooled ÷ single ratios
#   OBS_B=logs bench/run.sh --observability     relay-on with JSON logs to a file only (metrics off); OBS_B=metrics:
#                                metrics only (warn logs); OBS_B=devnull: JSON logs made and written to /dev/null
#                                (metrics off): which part of the observability costs what
#   bench/run.sh --observability --aa   (or --routing --aa) adds an A/A control: a second relay configured exactly as
#                                the first, measured the same way, so the report shows the noise floor (how far two
#                                identical relays differ) next to the comparison
#   bench/run.sh --upstream https|realistic|https-realistic [--quick] [--runs N]
#                                the path users take (bench/real-path.sh): relay and nginx against a TLS upstream
#                                (HTTP/2 by ALPN) and/or one answering after 200-800 ms with events spread over seconds;
#                                report in bench/out/<stamp>/real-path.md (bench/RESULTS.md is left alone)
#
# Everything listens on 127.0.0.1 (ports picked at random). Every process started here is stopped here (by PID, on
# exit, error or Ctrl-C). Every load step is bounded in time and in request count. Raw data and logs: bench/out/<stamp>/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
CMDLINE="bench/run.sh${*:+ $*}"
# --upstream https|realistic|https-realistic: the path users take, measured by bench/real-path.sh (same options)
for arg in "$@"; do [[ $arg == --upstream ]] && exec "$BENCH/real-path.sh" "$@"; done

RUNS=3
QUICK=0
RELAY=1
INSTALL=1
DIAG=1
NICE=""
REPORT="$BENCH/RESULTS.md"
COMPARE=""
AA=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1; RUNS=1 ;;
        --runs) RUNS="$2"; shift ;;
        --no-relay) RELAY=0 ;;
        --no-install) INSTALL=0 ;;
        --no-diag) DIAG=0 ;;
        --nice) NICE="$2"; shift ;;
        --out) REPORT="$(realpath -m "$2")"; shift ;;
        --observability) COMPARE=observability ;;
        --routing) COMPARE=routing ;;
        --aa) AA=1 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

# ---- parameters (env overrides allowed) -------------------------------------------------------------------------
if [[ $QUICK == 1 ]]; then
    : "${TP_SECONDS:=3}" "${TP_WARMUP:=1}" "${RATE_COUNT:=1000}" "${SSE_STREAMS:=32}" "${SSE_ROUNDS:=1}"
    : "${HOLD_DELTAS:=5}" "${WARMUP_SECONDS:=3}"
else
    : "${TP_SECONDS:=6}" "${TP_WARMUP:=2}" "${RATE_COUNT:=3000}" "${SSE_STREAMS:=64}" "${SSE_ROUNDS:=2}"
    : "${HOLD_DELTAS:=10}" "${WARMUP_SECONDS:=10}"
fi
: "${TP_CONNS:=32 128}" "${TP_MAX_REQUESTS:=2000000}" "${RATE:=200}"
: "${SSE_DELTAS:=40}" "${SSE_INTERVAL_MS:=20}" "${SSE_LATE_MS:=5}"
: "${HOLD_STREAMS:=1000}" "${HOLD_INTERVAL_MS:=1000}"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/out/$STAMP"
WORK="$(mktemp -d /tmp/ccbench.XXXXXX)"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
META="$OUT/meta.txt"
LOG="$OUT/run.log"
: > "$RESULTS"

PIDS=()
cleanup() {
    local rc=$?
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
    for f in "$WORK"/*.log "$WORK"/*/*.log; do [[ -f $f ]] && cp "$f" "$OUT/$(echo "${f#"$WORK"/}" | tr / _)"; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }

# stop_pid PID: stop one process we started and forget it.
stop_pid() {
    local pid="$1" keep=()
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ $p != "$pid" ]] && keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# ---- tools --------------------------------------------------------------------------------------------------------
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if [[ ${#need[@]} -gt 0 ]]; then
    [[ $INSTALL == 1 ]] || { echo "missing: ${need[*]} (run without --no-install)" >&2; exit 1; }
    say "installing ${need[*]}"
    apt-get update -qq >>"$LOG" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >>"$LOG" 2>&1
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# Every process started below inherits this shell's priority.
[[ -n $NICE ]] && renice -n "$NICE" -p $$ >/dev/null

# ---- build --------------------------------------------------------------------------------------------------------
cd "$ROOT"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
say "building bench tools (Release)"
dotnet build -c Release bench/FakeUpstream >>"$LOG" 2>&1 || { tail -30 "$LOG"; exit 1; }
dotnet build -c Release bench/LoadGen >>"$LOG" 2>&1 || { tail -30 "$LOG"; exit 1; }
RELAY_NOTE="measured"
RELAY_DLL="$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll"
if [[ $RELAY == 1 ]]; then
    say "building relay (dotnet build -c Release src/CcRelay.Cli)"
    if ! dotnet build -c Release src/CcRelay.Cli >>"$LOG" 2>&1 || [[ ! -f $RELAY_DLL ]]; then
        say "relay build failed; continuing with direct + nginx only (see $LOG)"
        RELAY=0; RELAY_NOTE="not measured: build failed"
    fi
else
    RELAY_NOTE="not measured (--no-relay)"
fi

LOADGEN=(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll")
FAKE="$ROOT/artifacts/bin/FakeUpstream/release/fake-upstream.dll"
# Inline socket completions: timestamps are taken on the epoll thread, with no thread-pool hop in between.
export DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1
lg() { DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 "${LOADGEN[@]}" "$@"; }

# ---- processes ----------------------------------------------------------------------------------------------------
read -r P_UP_JSON P_UP_SSE P_NG_JSON P_NG_SSE P_RL_JSON P_RL_SSE P_NG_HOLD P_RL_HOLD P_AA_JSON P_AA_SSE <<<"$(lg ports 10)"

# MESSAGE_JSON, nginx_common, nginx_http_common, write_relay_config
source "$BENCH/lib.sh"

# Upstream for the JSON tests: nginx returning a fixed Anthropic Message (cheapest upstream there is).
write_upstream_nginx() {
    local d="$WORK/up"; mkdir -p "$d/tmp"
    { nginx_common "$d"; echo "worker_processes 1;"
      echo "http {"; nginx_http_common "$d"
      cat <<EOF
    server {
        listen 127.0.0.1:$P_UP_JSON backlog=8192;
        default_type application/json;
        add_header request-id req_bench_nginx_upstream;
        location / { return 200 '$MESSAGE_JSON'; }
    }
}
EOF
    } > "$d/nginx.conf"
}

# The reference proxy. $1 = name, then pairs of "listen_port upstream_port".
write_proxy_nginx() {
    local name="$1"; shift
    local d="$WORK/$name"; mkdir -p "$d/tmp"
    { nginx_common "$d"; echo "worker_processes auto;"
      echo "http {"; nginx_http_common "$d"
      cat <<EOF
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    proxy_read_timeout 600s;
    proxy_send_timeout 600s;
EOF
      local i=0
      while [[ $# -gt 0 ]]; do
          cat <<EOF
    upstream up$i { server 127.0.0.1:$2; keepalive 256; keepalive_requests 1000000; keepalive_timeout 300s; }
    server { listen 127.0.0.1:$1 backlog=8192; location / { proxy_pass http://up$i; } }
EOF
          shift 2; i=$((i + 1))
      done
      echo "}"
    } > "$d/nginx.conf"
}

start_nginx() { # $1 = dir name; echoes pid
    local d="$WORK/$1"
    nginx -t -q -p "$d" -c "$d/nginx.conf" >>"$LOG" 2>&1 || { cat "$d/error.log" >&2; exit 1; }
    nginx -p "$d" -c "$d/nginx.conf" >"$d/stdout.log" 2>&1 &
    echo $!
}

# The relay: the real `cc-relay serve --config FILE --listen ADDR` (what users run).
start_relay() { # $1 = name, $2 = listen, $3 = upstream, $4 = variant (see write_relay_config); echoes pid
    write_relay_config "$WORK/$1.yaml" "$2" "$3" "${4:-default}"
    dotnet "$RELAY_DLL" serve --config "$WORK/$1.yaml" --listen "127.0.0.1:$2" >"$WORK/$1.log" 2>&1 &
    echo $!
}

# Safety: no request may leave 127.0.0.1. Before any /v1/messages traffic, the relay's /health must list the
# benchmark provider "fake" (a relay that ignored the config would forward to api.anthropic.com).
relay_uses_bench_config() { # $1 = port
    curl -s -m 5 "http://127.0.0.1:$1/health" | grep -q '"name":"fake"'
}

wait_port() { # $1 = port, $2 = what
    lg wait-port --port "$1" --timeout-s 30 || { say "$2 did not start listening on $1"; return 1; }
}

# check URL STREAM(true/false) -> 0 if 200 and the body looks right
check() {
    local url="$1" stream="$2" body="$WORK/check-body.json" out="$WORK/check.out"
    sed -e "s/__STREAM__/$stream/" -e "s/__BENCH__/cc-bench:deltas=3,interval_us=1000/" "$BENCH/payloads/messages.template.json" > "$body"
    local hdr=(); while IFS= read -r h; do [[ -n $h ]] && hdr+=(-H "$h"); done < "$BENCH/payloads/headers.txt"
    local code
    code="$(curl -s -m 10 -o "$out" -w '%{http_code}' "${hdr[@]}" --data-binary "@$body" "$url" || true)"
    if [[ $code != 200 ]]; then say "check $url stream=$stream: HTTP $code $(head -c 300 "$out" 2>/dev/null)"; return 1; fi
    if [[ $stream == true ]]; then grep -q 'event: message_stop' "$out"; else grep -q '"end_turn"' "$out"; fi
}

say "starting upstreams and nginx proxy"
write_upstream_nginx
PID_UP_JSON="$(start_nginx up)"; PIDS+=("$PID_UP_JSON")
dotnet "$FAKE" --port "$P_UP_SSE" >"$WORK/fake-upstream.log" 2>&1 &
PID_UP_SSE=$!; PIDS+=("$PID_UP_SSE")
write_proxy_nginx proxy "$P_NG_JSON" "$P_UP_JSON" "$P_NG_SSE" "$P_UP_SSE"
PID_NG="$(start_nginx proxy)"; PIDS+=("$PID_NG")
wait_port "$P_UP_JSON" "upstream nginx"
wait_port "$P_UP_SSE" "fake upstream"
wait_port "$P_NG_JSON" "nginx proxy"

# ---- --observability / --routing: the relay twice, A vs B, in the same run ---------------------------------------
#   observability: relay-off (metrics off + warn logs)  vs relay-on (metrics on + info JSON logs to a file)
#   routing:       relay-single (1 provider, 1 key)     vs relay-pooled (3 providers round robin x 4 rate-limited keys)
#   --aa adds A' (relay-off-again / relay-single-again): configured as A, measured as A and B, compared with A.
if [[ -n $COMPARE ]]; then
    [[ $RELAY == 1 ]] || { say "--$COMPARE measures the relay; it did not build"; exit 1; }
    if [[ $COMPARE == observability ]]; then
        # OBS_B=logs or OBS_B=metrics measures one half of relay-on's settings at a time
        case "${OBS_B:=on}" in
            on) TITLE="Observability overhead: metrics on + info JSON logs to a file vs metrics off + warn logs" ;;
            logs) TITLE="Observability overhead, logging alone: info JSON logs to a file (metrics off) vs metrics off + warn logs" ;;
            metrics) TITLE="Observability overhead, metrics alone: metrics on (warn logs) vs metrics off + warn logs" ;;
            devnull) TITLE="Observability overhead, log lines made but not kept: info JSON logs to /dev/null (metrics off) vs metrics off + warn logs" ;;
            *) say "OBS_B must be on, logs, metrics or devnull, not '$OBS_B'"; exit 2 ;;
        esac
        OBS_TARGETS=(relay-off "relay-$OBS_B"); A_NAME=off; B_NAME=$OBS_B
    else
        OBS_TARGETS=(relay-single relay-pooled); A_NAME=single; B_NAME=pooled
        TITLE="Routing overhead: 3 providers (round robin) × 4 rate-limited keys each vs 1 provider with 1 key"
    fi
    TA="${OBS_TARGETS[0]}" TB="${OBS_TARGETS[1]}" TAA="${OBS_TARGETS[0]}-again"
    declare -A OBS_PJ=([$TA]="$P_RL_JSON" [$TB]="$P_NG_HOLD" [$TAA]="$P_AA_JSON") OBS_PS=([$TA]="$P_RL_SSE" [$TB]="$P_RL_HOLD" [$TAA]="$P_AA_SSE")
    declare -A OBS_VARIANT=([$TA]="$A_NAME" [$TB]="$B_NAME" [$TAA]="$A_NAME")
    [[ $AA == 1 ]] && OBS_TARGETS+=("$TAA")
    declare -A URL_JSON URL_SSE PID_JSON PID_SSE
    TARGETS=("${OBS_TARGETS[@]}")
    COMMON=(--body "$BENCH/payloads/messages.template.json" --headers "$BENCH/payloads/headers.txt" --out "$RESULTS")
    WARM=(--body "$BENCH/payloads/messages.template.json" --headers "$BENCH/payloads/headers.txt" --out "$OUT/warmup.jsonl")
    # The two relays run different code (logging, metrics), and tiered JIT needs a while under load to settle (the
    # JIT's background thread competes with the load for the two cores); a shorter warm-up (--quick's 3 s)
    # measures the JIT, not the settings: with 10 s, the first of five runs still put relay-on 10-20% behind and
    # the last three even. So this mode warms up 20 s at least.
    OBS_WARMUP=$(( WARMUP_SECONDS > 20 ? WARMUP_SECONDS : 20 ))

    # Each run starts both relays afresh. One relay process keeps the code tiered PGO gave it for its lifetime, and
    # three identically configured relays side by side measured 59.5, 63 and 66 µs per request over eight rounds:
    # with the same two processes in every run, one such draw decides every run alike (seven runs at 0.85-0.96 at
    # 32 connections and 0.95-1.09 at 128, in one invocation). New processes per run make the draws independent.
    start_compare_relays() { # the targets in this run's order: started, checked and warmed up in it
        local t pj ps
        for t in "$@"; do
            pj="$(start_relay "$t-json" "${OBS_PJ[$t]}" "$P_UP_JSON" "${OBS_VARIANT[$t]}")"; PIDS+=("$pj")
            ps="$(start_relay "$t-sse" "${OBS_PS[$t]}" "$P_UP_SSE" "${OBS_VARIANT[$t]}")"; PIDS+=("$ps")
            { wait_port "${OBS_PJ[$t]}" "$t" && wait_port "${OBS_PS[$t]}" "$t"; } || exit 1
            { relay_uses_bench_config "${OBS_PJ[$t]}" && relay_uses_bench_config "${OBS_PS[$t]}"; } \
                || { say "$t did not apply the benchmark config; not sending it any traffic"; exit 1; }
            URL_JSON[$t]="http://127.0.0.1:${OBS_PJ[$t]}/v1/messages"; URL_SSE[$t]="http://127.0.0.1:${OBS_PS[$t]}/v1/messages"
            PID_JSON[$t]="$pj"; PID_SSE[$t]="$ps"
            { check "${URL_JSON[$t]}" false && check "${URL_SSE[$t]}" true; } || { say "$t failed the sanity check"; exit 1; }
        done
        if [[ $COMPARE == observability ]]; then
            # each relay serves /metrics exactly when its variant turns metrics on
            for t in "$@"; do
                code="$(curl -s -o "$WORK/metrics.out" -w '%{http_code}' "http://127.0.0.1:${OBS_PJ[$t]}/metrics")"
                case "${OBS_VARIANT[$t]}" in
                    on|metrics) [[ $code == 200 ]] && grep -q '^ccrelay_requests_total' "$WORK/metrics.out" || { say "$t has no metrics"; exit 1; } ;;
                    *) [[ $code == 404 ]] || { say "$t serves /metrics"; exit 1; } ;;
                esac
            done
        else
            health="$(curl -s "http://127.0.0.1:${OBS_PJ[relay-pooled]}/health")"
            grep -q '"name":"fake-c"' <<<"$health" || { say "relay-pooled does not route to three providers: $health"; exit 1; }
        fi
        for t in "$@"; do
            say "  warm-up $t (${OBS_WARMUP}s JSON + SSE)"
            lg throughput --label "$t" --url "${URL_JSON[$t]}" --conns 32 --duration "$OBS_WARMUP" --max-requests "$TP_MAX_REQUESTS" "${WARM[@]}" >>"$LOG"
            lg sse --label "$t" --url "${URL_SSE[$t]}" --streams 32 --rounds 1 --deltas 100 --interval-ms 2 "${WARM[@]}" >>"$LOG"
        done
    }
    stop_compare_relays() {
        local t
        for t in "${OBS_TARGETS[@]}"; do stop_pid "${PID_JSON[$t]}"; stop_pid "${PID_SSE[$t]}"; done
    }

    for run in $(seq "$RUNS"); do
        # The order (of start, warm-up and every measurement) changes every run, balanced for carry-over: each
        # target comes first equally often and follows each other target equally often. Two targets: AB, BA. Three:
        # ABC CBA BCA ACB CAB BAC (a Williams design; every 6 runs each ordered neighbour pair occurs twice). A plain
        # rotation (ABC BCA CAB) always puts B after A: with --aa, relay-off-again (always measured right after
        # relay-on) came out 4-11 % faster than relay-off at 128 connections in 7 runs of 7.
        n=${#TARGETS[@]} order=()
        if (( n == 3 )); then
            read -r -a perm <<<"$(echo "0 1 2|2 1 0|1 2 0|0 2 1|2 0 1|1 0 2" | cut -d'|' -f$(( (run - 1) % 6 + 1 )))"
        else
            perm=(0 1); (( run % 2 == 0 )) && perm=(1 0)
        fi
        for k in "${perm[@]}"; do order+=("${TARGETS[$k]}"); done
        say "run $run/$RUNS (order: ${order[*]}; fresh relay processes)"
        start_compare_relays "${order[@]}"
        for conns in $TP_CONNS; do
            for t in "${order[@]}"; do
                say "  throughput $t c=$conns"
                lg throughput --run "$run" --label "$t" --url "${URL_JSON[$t]}" --conns "$conns" --duration "$TP_SECONDS" \
                    --warmup-s "$TP_WARMUP" --max-requests "$TP_MAX_REQUESTS" --pids "${PID_JSON[$t]}" "${COMMON[@]}" >>"$LOG"
            done
        done
        # Fixed rate: every relay and the upstream itself (direct) in one interleaved schedule, request i to target
        # i mod n, each at $RATE req/s: they meet the same moments of the machine, and "direct" gives the latency the
        # relays add (relay − direct, per run).
        labels=direct urls="http://127.0.0.1:$P_UP_JSON/v1/messages" pids="" # direct's pid group is the empty one before the first '/'
        for t in "${order[@]}"; do labels+=",$t"; urls+=",${URL_JSON[$t]}"; pids+="/${PID_JSON[$t]}"; done
        say "  fixed rate, interleaved: $labels ($RATE req/s each)"
        lg rate --run "$run" --label "$labels" --url "$urls" --rate "$RATE" --count "$RATE_COUNT" --pids "$pids" "${COMMON[@]}" >>"$LOG"
        for t in "${order[@]}"; do
            say "  sse $t"
            lg sse --run "$run" --label "$t" --url "${URL_SSE[$t]}" --streams "$SSE_STREAMS" --rounds "$SSE_ROUNDS" \
                --deltas "$SSE_DELTAS" --interval-ms "$SSE_INTERVAL_MS" --late-ms "$SSE_LATE_MS" "${COMMON[@]}" >>"$LOG"
        done
        stop_compare_relays
    done

    # Per row: medians over runs, the paired ratio (median of each run's own X ÷ A) with a distribution-free 95 %
    # confidence interval for it (order statistics of the per-run ratios: [r_k, r_(n+1-k)] with k the largest such
    # that P(Binomial(n, 1/2) < k) ≤ 2.5 %; none below 6 runs), and the verdict against the issues' 5 % bar: within
    # when the whole interval is on the good side of it, beyond when the whole interval is past it, else undecided.
    {
        echo "# $TITLE"
        echo
        echo "Command: \`$CMDLINE\`, $(date -u '+%Y-%m-%d %H:%M') UTC, commit $(git -C "$ROOT" rev-parse --short HEAD), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)."
        if [[ $COMPARE == observability ]]; then
            echo "$TB wrote $(cat "$WORK/$TB"-*-requests.jsonl 2>/dev/null | wc -l) JSON log lines to its files; medians of $RUNS run(s)."
        else
            echo "Medians of $RUNS run(s)."
        fi
        echo
        echo "Each run starts every relay afresh (so each run is an independent draw of tiered-JIT outcomes) and measures"
        echo "them back to back (throughput, SSE) or interleaved request by request (fixed rate), so the machine's drift"
        echo "hits them alike. The paired ratio (the median over runs of each run's own ratio) is the comparison; its 95 %"
        echo "interval is distribution-free (order statistics). Verdict against the 5 % bar: **within** when the whole"
        echo "interval is on the good side of it, **beyond** when the whole interval is past it, else *undecided* (more runs)."
        [[ $AA == 1 ]] && { echo; echo "The A/A rows compare two relays configured alike ($TAA ÷ $TA): the noise floor of this invocation."; }
        echo
        echo "| Measure | $A_NAME | compared | compared ÷ $A_NAME | paired ratio | 95 % interval | verdict (5 % bar) | ratio of medians | per-run ratios |"
        echo "|---|---|---|---|---|---|---|---|---|"
        jq -rs --arg a "$TA" --arg b "$TB" --arg aa "$TAA" --argjson with_aa "$AA" '
          def med: sort | if length == 0 then null elif length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
          def r3: . * 1000 | round / 1000;
          def binom_cdf($n; $m): reduce range(0; $m + 1) as $i ({c: 1, s: 0}; .s += .c | .c = .c * ($n - $i) / ($i + 1)) | .s / pow(2; $n);
          def k95($n): [range(1; $n + 1) | select(binom_cdf($n; . - 1) <= 0.025)] | if length == 0 then 0 else max end;
          def ci: sort as $r | ($r | length) as $n | k95($n) as $k | if $k == 0 then null else [$r[$k - 1], $r[$n - $k]] end;
          # the value of one measure for one target in one run ("added": latency minus the same run'"'"'s direct latency)
          def vals($test; $target; $key; $conns; $added):
            . as $all
            | [ .[] | select(.test == $test and .target == $target and ($conns == null or .conns == $conns) and .[$key] != null)
                | . as $x
                | if $added then
                    ($all | map(select(.test == $test and .target == "direct" and .run == $x.run)) | first) as $d
                    | select($d != null and $d[$key] != null) | {run: $x.run, v: ($x[$key] - $d[$key])}
                  else {run: $x.run, v: $x[$key]} end ];
          def paired($test; $key; $conns; $added; $p; $q):
            . as $all
            | [ vals($test; $p; $key; $conns; $added)[] as $x
                | ($all | vals($test; $q; $key; $conns; $added) | map(select(.run == $x.run)) | first) as $y
                | select($y != null and $x.v != 0) | $y.v / $x.v ];
          # $better: "higher" (throughput) or "lower" (latency) is better; null: no bar (CPU, shown for context)
          def verdict($ci; $better):
            if $better == null or $ci == null then (if $better == null then "" else "n/a (< 6 runs)" end)
            elif $better == "higher" then (if $ci[0] >= 0.95 then "**within**" elif $ci[1] < 0.95 then "**beyond**" else "*undecided*" end)
            else (if $ci[1] <= 1.05 then "**within**" elif $ci[0] > 1.05 then "**beyond**" else "*undecided*" end) end;
          def row($name; $test; $key; $conns; $added; $better; $q; $qname):
            ([vals($test; $a; $key; $conns; $added)[] | .v] | med) as $va
            | ([vals($test; $q; $key; $conns; $added)[] | .v] | med) as $vq
            | paired($test; $key; $conns; $added; $a; $q) as $ratios
            | ($ratios | ci) as $ci
            | "| \($name) | \($va | if . == null then "n/a" else r3 end) | \($vq | if . == null then "n/a" else r3 end) | \($qname) | \(if ($ratios | length) > 0 then ($ratios | med | r3) else "n/a" end) | \(if $ci == null then "n/a" else "\($ci[0] | r3) – \($ci[1] | r3)" end) | \(verdict($ci; $better)) | \(if $va != null and $vq != null and $va != 0 then ($vq / $va | r3) else "n/a" end) | \($ratios | map(r3 | tostring) | join(", ")) |";
          def rows($q; $qname):
            . as $all
            | ([ $all[] | select(.test == "throughput") | .conns ] | unique) as $conns
            | ($conns[] as $c | ($all | row("throughput req/s, \($c) connections"; "throughput"; "rps"; $c; false; "higher"; $q; $qname)),
                               ($all | row("relay CPU µs per request, \($c) connections"; "throughput"; "cpu_us_per_req"; $c; false; null; $q; $qname)),
                               ($all | row("latency p50 ms, \($c) connections (saturated)"; "throughput"; "p50_ms"; $c; false; "lower"; $q; $qname))),
              ($all | row("latency p50 ms, fixed rate"; "rate"; "p50_ms"; null; false; "lower"; $q; $qname)),
              ($all | row("latency p99 ms, fixed rate"; "rate"; "p99_ms"; null; false; "lower"; $q; $qname)),
              ($all | row("added latency p50 ms (relay − direct), fixed rate"; "rate"; "p50_ms"; null; true; "lower"; $q; $qname)),
              ($all | row("added latency p99 ms (relay − direct), fixed rate"; "rate"; "p99_ms"; null; true; "lower"; $q; $qname)),
              ($all | row("SSE per-event delay p50 ms"; "sse"; "p50_ms"; null; false; "lower"; $q; $qname)),
              ($all | row("SSE per-event delay p99 ms"; "sse"; "p99_ms"; null; false; "lower"; $q; $qname));
          (rows($b; $b | ltrimstr("relay-"))),
          (if $with_aa == 1 then rows($aa; "A/A: \($aa | ltrimstr("relay-"))") else empty end)
        ' "$RESULTS"
    } > "$OUT/$COMPARE.md"
    cat "$OUT/$COMPARE.md"
    say "done: $OUT/$COMPARE.md (raw data: ${OUT#$ROOT/})"
    exit 0
fi

PID_RL_JSON="" PID_RL_SSE=""
if [[ $RELAY == 1 ]]; then
    say "starting relay"
    PID_RL_JSON="$(start_relay relay-json "$P_RL_JSON" "$P_UP_JSON")"; PIDS+=("$PID_RL_JSON")
    PID_RL_SSE="$(start_relay relay-sse "$P_RL_SSE" "$P_UP_SSE")"; PIDS+=("$PID_RL_SSE")
    if ! wait_port "$P_RL_JSON" "relay" || ! wait_port "$P_RL_SSE" "relay"; then
        say "relay did not start: $(tail -5 "$WORK/relay-json.log" | tr '\n' ' ' | cut -c1-400)"
        RELAY=0; RELAY_NOTE="not measured: did not start"
    elif relay_uses_bench_config "$P_RL_JSON" && relay_uses_bench_config "$P_RL_SSE"; then
        RELAY_NOTE="\`cc-relay serve --config <generated yaml> --listen 127.0.0.1:<port>\` (artifacts/bin/CcRelay.Cli/release/cc-relay.dll)"
    else
        CLI_HEALTH="$(curl -s -m 5 "http://127.0.0.1:$P_RL_JSON/health" | head -c 300)"
        stop_pid "$PID_RL_JSON"; stop_pid "$PID_RL_SSE"
        say "relay is not using the benchmark config (/health: $CLI_HEALTH); not sending it any traffic"
        RELAY=0; RELAY_NOTE="not measured: the relay did not apply the benchmark config (/health: $CLI_HEALTH)"
    fi
fi

declare -A URL_JSON=([direct]="http://127.0.0.1:$P_UP_JSON/v1/messages" [nginx]="http://127.0.0.1:$P_NG_JSON/v1/messages" [relay]="http://127.0.0.1:$P_RL_JSON/v1/messages")
declare -A URL_SSE=([direct]="http://127.0.0.1:$P_UP_SSE/v1/messages" [nginx]="http://127.0.0.1:$P_NG_SSE/v1/messages" [relay]="http://127.0.0.1:$P_RL_SSE/v1/messages")
declare -A PID_JSON=([direct]="" [nginx]="$PID_NG" [relay]="$PID_RL_JSON")

say "sanity checks"
for t in direct nginx relay; do
    [[ $t == relay && $RELAY == 0 ]] && continue
    if ! check "${URL_JSON[$t]}" false || ! check "${URL_SSE[$t]}" true; then
        if [[ $t == relay ]]; then
            say "relay failed the sanity check; continuing with direct + nginx only. Relay log tail:"
            tail -20 "$WORK/relay-json.log" "$WORK/relay-sse.log" | tee -a "$LOG" >&2 || true
            RELAY=0; RELAY_NOTE="not measured: failed the sanity check (see run.log)"
        else
            say "$t failed the sanity check"; exit 1
        fi
    fi
done

TARGETS=(direct nginx); [[ $RELAY == 1 ]] && TARGETS+=(relay)
COMMON=(--body "$BENCH/payloads/messages.template.json" --headers "$BENCH/payloads/headers.txt" --out "$RESULTS")
WARM=(--body "$BENCH/payloads/messages.template.json" --headers "$BENCH/payloads/headers.txt" --out "$OUT/warmup.jsonl")

# ---- machine facts ------------------------------------------------------------------------------------------------
{
    echo "Command: \`$CMDLINE\`"
    echo "Date (UTC): $(date -u '+%Y-%m-%d %H:%M')"
    echo "Commit: $(git -C "$ROOT" rev-parse --short HEAD) ($(git -C "$ROOT" log -1 --format=%s | cut -c1-80))"
    echo "Relay: $RELAY_NOTE"
    echo "CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo "Memory: $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo)"
    echo "Kernel: $(uname -sr)"
    echo "OS: $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo ".NET SDK: $(dotnet --version)"
    echo "nginx: $(nginx -v 2>&1 | sed 's/nginx version: //')"
    echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
    echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "Priority: nice $(ps -o ni= -p $$ | xargs)"
    echo "Parameters: throughput ${TP_SECONDS}s (+${TP_WARMUP}s warm-up) at ${TP_CONNS// /, } connections; fixed rate $RATE req/s × $RATE_COUNT requests; SSE $SSE_STREAMS streams × $SSE_ROUNDS rounds × ($SSE_DELTAS+5) events every $SSE_INTERVAL_MS ms, late > $SSE_LATE_MS ms; hold $HOLD_STREAMS streams × ($HOLD_DELTAS+5) events every $HOLD_INTERVAL_MS ms; one-off warm-up ${WARMUP_SECONDS}s per target"
} > "$META"

# ---- measurements -------------------------------------------------------------------------------------------------
rotate() { # $1 = run; echoes TARGETS rotated by run-1
    local n=${#TARGETS[@]} k=$(( ($1 - 1) % ${#TARGETS[@]} )) i
    for ((i = 0; i < n; i++)); do echo -n "${TARGETS[$(( (i + k) % n ))]} "; done
}

# One-off warm-up of every long-lived target: the relay's tiered JIT / PGO needs several seconds of load before it
# reaches steady state (measured: ~4k req/s in the first 8 s of a fresh process, 12-14k afterwards).
for t in "${TARGETS[@]}"; do
    say "warm-up $t (${WARMUP_SECONDS}s JSON + SSE)"
    lg throughput --label "$t" --url "${URL_JSON[$t]}" --conns 32 --duration "$WARMUP_SECONDS" \
        --max-requests "$TP_MAX_REQUESTS" "${WARM[@]}" >>"$LOG"
    lg sse --label "$t" --url "${URL_SSE[$t]}" --streams 32 --rounds 1 --deltas 100 --interval-ms 2 \
        "${WARM[@]}" >>"$LOG"
done

for run in $(seq "$RUNS"); do
    order=($(rotate "$run"))
    say "run $run/$RUNS (order: ${order[*]})"

    for conns in $TP_CONNS; do
        for t in "${order[@]}"; do
            say "  throughput $t c=$conns"
            lg throughput --run "$run" --label "$t" --url "${URL_JSON[$t]}" --conns "$conns" --duration "$TP_SECONDS" \
                --warmup-s "$TP_WARMUP" --max-requests "$TP_MAX_REQUESTS" --pids "${PID_JSON[$t]}" "${COMMON[@]}" >>"$LOG"
        done
    done

    for t in "${order[@]}"; do
        say "  fixed rate $t ($RATE req/s)"
        lg rate --run "$run" --label "$t" --url "${URL_JSON[$t]}" --rate "$RATE" --count "$RATE_COUNT" \
            --pids "${PID_JSON[$t]}" "${COMMON[@]}" >>"$LOG"
    done

    for t in "${order[@]}"; do
        say "  sse $t"
        lg sse --run "$run" --label "$t" --url "${URL_SSE[$t]}" --streams "$SSE_STREAMS" --rounds "$SSE_ROUNDS" \
            --deltas "$SSE_DELTAS" --interval-ms "$SSE_INTERVAL_MS" --late-ms "$SSE_LATE_MS" "${COMMON[@]}" >>"$LOG"
    done

    sleep 3
    lg rss --run "$run" --label nginx --pids "$PID_NG" --out "$RESULTS" >>"$LOG"
    [[ $RELAY == 1 ]] && lg rss --run "$run" --label relay --pids "$PID_RL_JSON" --out "$RESULTS" >>"$LOG"

    # Memory: fresh processes each run, so "idle" is really a warmed-up but unloaded process.
    for t in "${order[@]}"; do
        [[ $t == direct ]] && continue
        if [[ $t == nginx ]]; then
            write_proxy_nginx hold "$P_NG_HOLD" "$P_UP_SSE"
            pid="$(start_nginx hold)"; port="$P_NG_HOLD"
        else
            pid="$(start_relay relay-hold "$P_RL_HOLD" "$P_UP_SSE")"; port="$P_RL_HOLD"
        fi
        PIDS+=("$pid")
        if wait_port "$port" "$t (hold)" && { [[ $t == nginx ]] || relay_uses_bench_config "$port"; }; then
            say "  hold $t ($HOLD_STREAMS streams)"
            lg hold --run "$run" --label "$t" --url "http://127.0.0.1:$port/v1/messages" --streams "$HOLD_STREAMS" \
                --deltas "$HOLD_DELTAS" --interval-ms "$HOLD_INTERVAL_MS" --pids "$pid" "${COMMON[@]}" >>"$LOG" \
                || say "  hold $t failed (see $LOG)"
        fi
        stop_pid "$pid"
    done
done

# Diagnostic pass (not part of the medians): where does a proxy's CPU go? syscalls and context switches per request.
if [[ $DIAG == 1 ]] && command -v perf >/dev/null; then
    for t in "${TARGETS[@]}"; do
        [[ $t == direct ]] && continue
        say "diagnostic pass $t (perf stat, c=32)"
        lg throughput --perf --run 1 --label "$t" --url "${URL_JSON[$t]}" --conns 32 --duration "$TP_SECONDS" \
            --warmup-s 1 --max-requests "$TP_MAX_REQUESTS" --pids "${PID_JSON[$t]}" "${COMMON[@]}" >>"$LOG" \
            || say "diagnostic pass $t failed"
    done
fi

echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$META"
lg report --in "$RESULTS" --meta "$META" --out "$REPORT" >>"$LOG"
cp "$REPORT" "$OUT/RESULTS.md"
say "done: $REPORT (raw data: ${OUT#$ROOT/})"
