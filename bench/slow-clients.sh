#!/usr/bin/env bash
# Do slow clients starve fast ones? Fast-client latency at the relay alone, then with 1,000 slowloris clients
# (headers a byte a second, reconnecting whenever the relay cuts them) — bench/slow_clients.py does the measuring.
#
#   bench/slow-clients.sh                     1,000 slow clients; 30 s alone, 30 s with them, 30 s alone (~2 min)
#   SLOW=2000 PHASE_S=60 bench/slow-clients.sh
#   HEADERS_TIMEOUT_MS=30000 bench/slow-clients.sh   the relay with a longer header timeout (Kestrel's default)
#
# The relay runs the benchmark config (one anthropic_compatible provider on bench/FakeUpstream) with its default
# server.limits unless HEADERS_TIMEOUT_MS is given. Everything listens on 127.0.0.1; every process is stopped on exit
# (by PID) and the whole run is bounded (timeout). Report: bench/out/slow-clients-<stamp>.md.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
source "$BENCH/lib.sh"
quick_option "$@"
: "${SLOW:=1000}" "${PHASE_S:=30}" "${HEADERS_TIMEOUT_MS:=}"
command -v python3 >/dev/null || { echo "missing: python3" >&2; exit 1; }
command -v curl >/dev/null || { echo "missing: curl" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || true

bench_scratch ccslow
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/out/slow-clients-$STAMP.md"

cd "$ROOT"
build_tools src/CcRelay.Cli bench/LoadGen bench/FakeUpstream
RELAY_DLL="${RELAY:-$ROOT/artifacts/bin/CcRelay.Cli/release/cc-relay.dll}"
LOADGEN=(dotnet "$ROOT/artifacts/bin/LoadGen/release/loadgen.dll")
read -r P_UP P_RELAY <<<"$("${LOADGEN[@]}" ports 2)"

start_fake "$WORK/fake.log" "$P_UP"
write_relay_config "$WORK/relay.yaml" "$P_RELAY" "$P_UP" default
if [[ -n $HEADERS_TIMEOUT_MS ]]; then
    sed -i "s|^server:|server:\n  limits:\n    request_headers_timeout_ms: $HEADERS_TIMEOUT_MS|" "$WORK/relay.yaml"
fi
dotnet "$RELAY_DLL" serve --config "$WORK/relay.yaml" >"$WORK/relay.log" 2>&1 &
PIDS+=($!)
wait_listen "$P_UP"; wait_relay "$P_RELAY"

bench_header "bench/slow-clients.sh: fast-client latency alone and with $SLOW slow clients; PHASE_S=$PHASE_S HEADERS_TIMEOUT_MS=${HEADERS_TIMEOUT_MS:-default (10000)}" | tee "$OUT"
echo "each fast request: a new connection, one non-streaming POST /v1/messages, read to the end; the machine is shared, so figures are for the same run only" | tee -a "$OUT"
echo | tee -a "$OUT"
timeout $((PHASE_S * 3 + 120)) python3 "$BENCH/slow_clients.py" --port "$P_RELAY" --slow "$SLOW" --phase-s "$PHASE_S" --deadline-s $((PHASE_S * 3 + 60)) | tee -a "$OUT"
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
say "written: $OUT"
