#!/usr/bin/env bash
# Two relays under load at the same time: a drift-free comparison of what one configuration costs against another.
#
#   bench/paired.sh                  relay-off vs relay-on (metrics + info JSON request lines to a file), 12 rounds
#   bench/paired.sh --aa             relay-off vs relay-off (A against itself: the noise floor of this method)
#   bench/paired.sh --rounds 6       fewer rounds (no interval below 6)
#   B=logs|metrics|devnull bench/paired.sh   relay-on's parts alone (as OBS_B in run.sh --observability)
#   A=default B=pooled bench/paired.sh       one provider against three pooled ones (as run.sh --routing)
#   A=on B=on RELAY_B=/tmp/new/cc-relay.dll bench/paired.sh
#                                    one configuration, two builds: the relay built here (A) against another
#                                    (e.g. `dotnet publish src/CcRelay.Cli -c Release -o /tmp/new` of a change)
#
# A and B are bench/lib.sh's relay variants: off, on, logs, metrics, devnull, default, pooled (A defaults to off,
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
ROUNDS=12 AA=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --aa) AA=1; shift ;;
        *) echo "unknown option: $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
: "${CONNS:=16}" "${ROUND_S:=10}" "${WARM_S:=20}" "${A:=off}" "${B:=on}"
[[ $AA == 1 ]] && B=$A
for variant in "$A" "$B"; do
    case "$variant" in
        off | on | logs | metrics | devnull | default | pooled) ;;
        *) echo "A and B must each be off, on, logs, metrics, devnull, default or pooled (got '$variant')" >&2; exit 2 ;;
    esac
done
for dll in "${RELAY_A:-}" "${RELAY_B:-}"; do
    [[ -z $dll || -f $dll ]] || { echo "no such relay build: $dll (RELAY_A / RELAY_B name a cc-relay.dll)" >&2; exit 2; }
done
for tool in wrk nginx curl; do command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install -y wrk nginx-light curl)" >&2; exit 1; }; done

WORK="$(mktemp -d /tmp/ccpaired.XXXXXX)"
mkdir -p "$BENCH/out"
OUT="$BENCH/out/paired-$(date -u +%Y%m%dT%H%M%SZ).txt"
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { echo "[$(date +%H:%M:%S)] $*" >&2; }

cd "$ROOT"
say "building relay and load tools (dotnet build -c Release)"
for project in src/CcRelay.Cli bench/LoadGen; do
    dotnet build -c Release "$project" >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
done
RELAY_DLL="$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll"
DLL_A="${RELAY_A:-$RELAY_DLL}" DLL_B="${RELAY_B:-$RELAY_DLL}"

# three free loopback ports (as run.sh picks them)
read -r P_UP P_A P_B <<<"$(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll" ports 3)"

# the upstream: nginx answering every request with one fixed Message (the one bench/run.sh uses)
source "$BENCH/lib.sh"
mkdir -p "$WORK/up/tmp"
{
    nginx_common "$WORK/up"; echo "worker_processes 1;"
    echo "http {"; nginx_http_common "$WORK/up"
    cat <<EOF
    server {
        listen 127.0.0.1:$P_UP backlog=8192;
        default_type application/json;
        location / { return 200 '$MESSAGE_JSON'; }
    }
}
EOF
} >"$WORK/up/nginx.conf"
nginx -c "$WORK/up/nginx.conf" -p "$WORK/up" >/dev/null 2>&1 &
PID_NGINX=$!
PIDS+=("$PID_NGINX")

# the request: the benchmark's Claude Code request (non-streaming), as a wrk script
sed -e 's/__STREAM__/false/' -e 's/__BENCH__//' "$BENCH/payloads/messages.template.json" >"$WORK/body.json"
{
    echo 'wrk.method = "POST"'
    echo "local f = io.open(\"$WORK/body.json\", \"rb\"); wrk.body = f:read(\"*a\"); f:close()"
    while IFS= read -r h; do
        [[ -z $h ]] && continue
        printf 'wrk.headers["%s"] = "%s"\n' "${h%%:*}" "$(echo "${h#*:}" | sed 's/^ *//; s/"/\\"/g')"
    done <"$BENCH/payloads/headers.txt"
} >"$WORK/post.lua"

write_relay_config "$WORK/a.yaml" "$P_A" "$P_UP" "$A"
write_relay_config "$WORK/b.yaml" "$P_B" "$P_UP" "$B"

load() { # $1 = port, $2 = seconds -> requests per second
    wrk -t1 -c"$CONNS" -d"$2"s -s "$WORK/post.lua" "http://127.0.0.1:$1/v1/messages" 2>&1 | awk '/Requests\/sec/{printf "%d", $2}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_health() { for _ in $(seq 100); do curl -sf -m 1 "http://127.0.0.1:$1/health" | grep -q '"fake"' && return 0; sleep 0.1; done; return 1; }

B_NAME=$([[ $AA == 1 ]] && echo "$A-again" || echo "$B")
{
    echo "bench/paired.sh: relay-$A (A${RELAY_A:+, $RELAY_A}) vs relay-$B_NAME (B${RELAY_B:+, $RELAY_B}), both loaded at once; $ROUNDS round(s) of ${ROUND_S}s after ${WARM_S}s of warm-up, wrk $CONNS connections each"
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
for r in $(seq "$ROUNDS"); do
    dotnet "$DLL_A" serve --config "$WORK/a.yaml" >"$WORK/a.log" 2>&1 &
    PA=$!; PIDS+=("$PA")
    dotnet "$DLL_B" serve --config "$WORK/b.yaml" >"$WORK/b.log" 2>&1 &
    PB=$!; PIDS+=("$PB")
    if ! { wait_health "$P_A" && wait_health "$P_B"; }; then
        say "a relay did not start; its output:"; tail -n 20 "$WORK/a.log" "$WORK/b.log" >&2; exit 1
    fi
    load "$P_A" "$WARM_S" >/dev/null & load "$P_B" "$WARM_S" >/dev/null; wait %%
    ca=$(cpu_ticks "$PA") cb=$(cpu_ticks "$PB")
    load "$P_A" "$ROUND_S" >"$WORK/ra" & load "$P_B" "$ROUND_S" >"$WORK/rb"; wait %%
    ca=$(($(cpu_ticks "$PA") - ca)) cb=$(($(cpu_ticks "$PB") - cb))
    a=$(cat "$WORK/ra") b=$(cat "$WORK/rb")
    kill -TERM "$PA" "$PB"; wait "$PA" "$PB" 2>/dev/null || true
    PIDS=("$PID_NGINX")
    awk -v r="$r" -v a="$a" -v b="$b" -v ca="$ca" -v cb="$cb" -v s="$ROUND_S" 'BEGIN {
        cpa = ca * 1e4 / (a * s); cpb = cb * 1e4 / (b * s)
        printf "round %d: A %d req/s, %.1f us CPU/request; B %d req/s, %.1f us CPU/request; B/A throughput %.3f cpu %.3f\n",
            r, a, cpa, b, cpb, b / a, cpb / cpa }' | tee -a "$OUT"
done
# median and distribution-free 95 % interval [r_k, r_(n+1-k)], k the largest with P(Bin(n, 1/2) < k) <= 2.5 %
summary() { # $1 = field number from the end (0 = last), $2 = what
    awk -v f="$1" '/^round/ {print $(NF - f)}' "$OUT" | sort -n | awk -v what="$2" '
        { v[NR] = $1 }
        END {
            n = NR; median = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            k = 0; cdf = 0; p = 0.5 ^ n; c = 1
            for (i = 0; i < n; i++) { cdf += c * p; if (cdf > 0.025) break; k = i + 1; c = c * (n - i) / (i + 1) }
            if (k >= 1) printf "B/A %s: median %.3f, 95 %% interval %.3f - %.3f (n = %d)\n", what, median, v[k], v[n + 1 - k], n
            else printf "B/A %s: median %.3f (n = %d: too few rounds for an interval)\n", what, median, n
        }' | tee -a "$OUT"
}
summary 2 "throughput"
summary 0 "CPU per request"
say "written: $OUT"
