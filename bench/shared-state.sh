#!/usr/bin/env bash
# Issue 21 §6: what shared state on PostgreSQL costs. A relay whose client's budget is shared through PostgreSQL
# (variant `shared`: state.postgres) against the same relay on local state (variant `clients`), loaded at once by
# bench/paired.sh (B ÷ A CPU per request, median and 95 % interval over the rounds), and the database's own CPU per
# request: the postgres processes' utime+stime (+ what their exited children left in cutime+cstime) before and after,
# over the requests relay B answered (its measured rate × (round + warm-up) per round, warm-up at the measured rate).
#
#   bench/shared-state.sh               12 rounds (paired.sh's defaults: 16 connections each, 10 s rounds, 20 s warm-up)
#   bench/shared-state.sh --rounds 6    fewer rounds
#
# Starts its own PostgreSQL cluster (initdb into a temp dir, as nobody when run as root, a free loopback port, its
# socket in the temp dir; installed from Debian's packages when missing) and stops it by PID on exit.
# Needs what paired.sh needs (wrk, nginx, curl). Result: bench/out/shared-state-<stamp>.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
ROUNDS_ARGS=("$@")
PG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ccbench-pg.XXXXXX")
AS=()
pg_pid() { head -1 "$PG_TMP/data/postmaster.pid" 2>/dev/null; }
cleanup() {
    local pid
    pid=$(pg_pid) && [[ -n $pid ]] && kill -INT "$pid" 2>/dev/null
    for _ in $(seq 50); do [[ -n ${pid:-} ]] && kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -rf "$PG_TMP"
}
trap cleanup EXIT

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [[ -z $PGBIN ]]; then
    if [[ $(id -u) -eq 0 ]]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
mkdir -p "$PG_TMP/sock"
if [[ $(id -u) -eq 0 ]]; then chmod 755 "$PG_TMP"; chown -R nobody "$PG_TMP"; AS=(runuser -u nobody --); fi
"${AS[@]}" "$PGBIN/initdb" -D "$PG_TMP/data" -U ccrelay -A trust --no-sync -E UTF8 >/dev/null
# durability as a production server has it (fsync on, synchronous commits): the CPU figure is the real one
"${AS[@]}" "$PGBIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 30 \
    -o "-p $PG_PORT -k $PG_TMP/sock -c listen_addresses=127.0.0.1" start >/dev/null
"$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U ccrelay -d postgres -qc "CREATE DATABASE ccrelay" >/dev/null
export CC_RELAY_BENCH_PG="Host=127.0.0.1;Port=$PG_PORT;Database=ccrelay;Username=ccrelay"

# the postgres processes' CPU ticks: the postmaster and its live children (utime+stime), and what exited children
# left in the postmaster's cutime+cstime
pg_ticks() {
    local root total=0 pid
    root=$(pg_pid)
    total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$root/stat")
    for pid in $(ps -o pid= --ppid "$root"); do
        [[ -r /proc/$pid/stat ]] && total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

before=$(pg_ticks)
A=clients B=shared bash "$BENCH/paired.sh" "${ROUNDS_ARGS[@]}"
after=$(pg_ticks)
PAIRED=$(ls -t "$BENCH"/out/paired-*.txt | head -1)
OUT="$BENCH/out/shared-state-$(date -u +%Y%m%dT%H%M%SZ).txt"
: "${ROUND_S:=10}" "${WARM_S:=20}"
requests=$(awk -v s="$ROUND_S" -v w="$WARM_S" '/^round/ { for (i = 1; i <= NF; i++) if ($i == "B") { b = $(i + 1) } ; n += b * (s + w) } END { printf "%d", n }' "$PAIRED")
{
    cat "$PAIRED"
    ticks=$((after - before))
    awk -v t="$ticks" -v n="$requests" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        printf "PostgreSQL: %d ticks (%.2f s CPU) over ~%d requests of relay B: %.2f us CPU per request\n", t, t / hz, n, t / hz * 1e6 / n }'
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
echo "written: $OUT"
