#!/usr/bin/env bash
# The reference proxy's price for a request line: nginx as a reverse proxy with its access log off (A) against the
# same nginx writing one JSON access line per request to a file (B), the line shaped and sized like the relay's
# request line (~700 bytes). Both are loaded at once, as in bench/paired.sh, and compared by CPU per request.
#
#   bench/nginx-log.sh                                 8 rounds, one write(2) per line (nginx's default)
#   bench/nginx-log.sh --buffer "buffer=64k flush=1s"  lines gathered in a 64 KB buffer, written at least every
#                                                      second (the relay's log file is buffered like that)
#   bench/nginx-log.sh --rounds 12
#
# Each nginx runs one worker; one upstream nginx answers every request with bench/lib.sh's fixed Message. Per
# round (10 s, 16 connections each, after one 5 s warm-up): B ÷ A of throughput and of CPU per request (master and
# worker, /proc/<pid>/stat); over the rounds the median and a distribution-free 95 % interval (none below 6 rounds).
#
# Needs: wrk, nginx (apt-get install -y wrk nginx-light), curl. Everything listens on 127.0.0.1; every process is
# stopped on exit (by PID). Results: bench/out/nginx-log-<stamp>.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
CMDLINE="bench/nginx-log.sh${*:+ $*}"
ROUNDS=8 BUFFER="" ROUND_S=10 CONNS=16
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --buffer) BUFFER="$2"; shift 2 ;;
        -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "--rounds must be a positive integer (got '$ROUNDS')" >&2; exit 2; }
[[ -z $BUFFER || $BUFFER =~ ^buffer=[0-9]+[kKmM]?( flush=[0-9]+(ms|s|m))?$ ]] ||
    { echo "--buffer takes nginx's access_log buffer parameters, e.g. \"buffer=64k flush=50ms\" (got '$BUFFER')" >&2; exit 2; }
for tool in wrk nginx curl; do command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install -y wrk nginx-light curl)" >&2; exit 1; }; done

# MESSAGE_JSON, nginx's common configuration, and the pieces every script here shares (bench_scratch, …)
source "$BENCH/lib.sh"
bench_scratch ccnginxlog
OUT="$BENCH/out/nginx-log-$(date -u +%Y%m%dT%H%M%SZ).txt"

cd "$ROOT"
build_tools bench/LoadGen
read -r P_UP P_A P_B <<<"$(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll" ports 3)"
# the relay's request line, field for field, with nginx's values where it has them (the relay's line: docs/observability.md)
LINE='{"Timestamp":"$time_iso8601","EventId":1,"LogLevel":"Information","Category":"CcRelay.Host.Endpoints.MessagesEndpoint","State":{"request_id":"req_$request_id","method":"$request_method","path":"$uri","status":$status,"client_key_id":"-","provider":"fake","key_id":"683b1671","model":"claude-sonnet-4-6","upstream_model":"claude-sonnet-4-6","response_model":"claude-sonnet-4-5-20250929","stream":false,"result":"ok","error_type":null,"stop_reason":"end_turn","attempts":1,"duration_ms":$request_time,"ttfb_ms":$upstream_header_time,"overhead_ms":0.063,"input_tokens":2417,"output_tokens":112,"cache_read_tokens":18880,"cache_write_tokens":0,"cost_usd":0.014595,"bytes_in":$request_length,"bytes_out":$bytes_sent}}'
write_nginx() { # $1 = dir, $2 = the server block's contents, $3 = extra http-level lines, $4 = port
    mkdir -p "$1/tmp"
    {
        nginx_common "$1"; echo "worker_processes 1;"
        echo "http {"; nginx_http_common "$1"
        echo "$3"
        echo "    server { listen 127.0.0.1:$4 backlog=8192; $2 }"
        echo "}"
    } >"$1/nginx.conf"
}
UPSTREAM='proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off;
    upstream up { server 127.0.0.1:'"$P_UP"'; keepalive 256; keepalive_requests 1000000; keepalive_timeout 300s; }'
start_upstream "$WORK/up" "$P_UP"
write_nginx "$WORK/a" "location / { proxy_pass http://up; }" "$UPSTREAM" "$P_A"
# NOTE: in the server block: nginx_http_common's `access_log off` cancels every access_log of the http level
write_nginx "$WORK/b" "access_log $WORK/b/access.jsonl relay${BUFFER:+ $BUFFER}; location / { proxy_pass http://up; }" \
    "$UPSTREAM
    log_format relay escape=json '$LINE';" "$P_B"
for n in a b; do
    nginx -c "$WORK/$n/nginx.conf" -p "$WORK/$n" >/dev/null 2>&1 &
    PIDS+=($!)
done
PID_A=${PIDS[1]} PID_B=${PIDS[2]}
for port in "$P_UP" "$P_A" "$P_B"; do
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

# the request: the benchmark's Claude Code request (non-streaming), as a wrk script
write_wrk_script "$WORK"
load() { # $1 = port, $2 = seconds -> requests per second
    wrk -t1 -c"$CONNS" -d"$2"s -s "$WORK/post.lua" "http://127.0.0.1:$1/v1/messages" 2>&1 | awk '/Requests\/sec/{printf "%d", $2}'
}
cpu_ticks() { local t=0 p; for p in "$1" $(pgrep -P "$1"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }

{
    echo "$CMDLINE: nginx access log off (A) vs one JSON line per request to a file${BUFFER:+ ($BUFFER)} (B), both loaded at once; $ROUNDS round(s) of ${ROUND_S}s, wrk $CONNS connections each"
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(nginx -v 2>&1)"
} | tee "$OUT"
load "$P_A" 5 >/dev/null & load "$P_B" 5 >/dev/null; wait %%
for r in $(seq "$ROUNDS"); do
    ca=$(cpu_ticks "$PID_A") cb=$(cpu_ticks "$PID_B")
    load "$P_A" "$ROUND_S" >"$WORK/ra" & load "$P_B" "$ROUND_S" >"$WORK/rb"; wait %%
    ca=$(($(cpu_ticks "$PID_A") - ca)) cb=$(($(cpu_ticks "$PID_B") - cb))
    awk -v r="$r" -v a="$(cat "$WORK/ra")" -v b="$(cat "$WORK/rb")" -v ca="$ca" -v cb="$cb" -v s="$ROUND_S" 'BEGIN {
        cpa = ca * 1e4 / (a * s); cpb = cb * 1e4 / (b * s)
        printf "round %d: A %d req/s, %.1f us CPU/request; B %d req/s, %.1f us CPU/request; B/A throughput %.3f cpu %.3f\n",
            r, a, cpa, b, cpb, b / a, cpb / cpa }' | tee -a "$OUT"
done
lines=$(wc -l <"$WORK/b/access.jsonl")
[[ $lines -gt 0 ]] || { say "nginx B wrote no access lines: the comparison is void"; exit 1; }
echo "B wrote $lines lines of $(($(stat -c %s "$WORK/b/access.jsonl") / lines)) bytes on average" | tee -a "$OUT"
ratio_summary "$OUT" 2 "throughput"
ratio_summary "$OUT" 0 "CPU per request"
say "written: $OUT"
