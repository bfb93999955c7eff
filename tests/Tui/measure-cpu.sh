#!/usr/bin/env bash
# What a connected `cc-relay tui` costs the relay: the relay's CPU time (utime+stime from /proc/PID/stat) over
# SECONDS with no dashboard, then with one connected (in a detached 80×24 tmux session), alternating ROUNDS
# times; also the dashboard's own CPU. Traffic: RPS requests a second to two fake upstreams throughout (0: idle).
# Uses the Release build (dotnet build src/CcRelay.Cli -c Release). Not part of run-all.sh: a measurement.
#
#   bash tests/Tui/measure-cpu.sh [SECONDS=30] [ROUNDS=2] [RPS=0]
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
DLL=$REPO/artifacts/bin/CcRelay.Cli/release/cc-relay.dll
SECS=${1:-30}
ROUNDS=${2:-2}
RPS=${3:-0}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cc-relay-tui-cpu.XXXXXX")
SESSION=cc-relay-tui-cpu-$$
PIDS=()
cleanup() {
  tmux kill-session -t "$SESSION" 2>/dev/null
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
TICK=$(getconf CLK_TCK)
cpu_ms() { awk -v t="$TICK" '{ print ($14 + $15) * 1000 / t }' "/proc/$1/stat"; }
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

timeout 3600 node tests/Tui/fakes.mjs upstreams "$TMP/ports" alpha beta >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -s $TMP/ports ]] && break; sleep 0.1; done
RELAY_PORT=$(free_port)
GRPC_PORT=$(free_port)
cat >"$TMP/relay.yaml" <<YAML
server:
  listen: "127.0.0.1:$RELAY_PORT"
routing:
  strategy: round_robin
providers:
  - name: alpha
    type: anthropic_compatible
    base_url: "http://127.0.0.1:$(awk '$1=="alpha"{print $2}' "$TMP/ports")"
    keys: [{ key: "alpha-key" }]
  - name: beta
    type: anthropic_compatible
    base_url: "http://127.0.0.1:$(awk '$1=="beta"{print $2}' "$TMP/ports")"
    keys: [{ key: "beta-key" }]
logging:
  level: warn
grpc:
  listen: "127.0.0.1:$GRPC_PORT"
YAML
timeout 3600 dotnet "$DLL" serve --config "$TMP/relay.yaml" >"$TMP/relay.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do RELAY=$(pgrep -P $! -f "cc-relay.dll serve") && break; sleep 0.1; done # dotnet, not timeout
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$RELAY_PORT/health" && break; sleep 0.1; done
if ((RPS > 0)); then
  timeout 3600 node tests/Tui/fakes.mjs traffic "http://127.0.0.1:$RELAY_PORT" "$RPS" $((SECS * ROUNDS * 2 + 60)) >/dev/null 2>&1 &
  PIDS+=($!)
fi
sleep 10 # warm-up (JIT, first requests)

echo "relay (pid $RELAY) CPU over ${SECS} s windows, traffic ${RPS} req/s, $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  a=$(cpu_ms "$RELAY"); sleep "$SECS"; b=$(cpu_ms "$RELAY")
  echo "round $round  without dashboard: relay $(awk -v a="$a" -v b="$b" -v s="$SECS" 'BEGIN { printf "%.0f ms CPU (%.2f %% of a core)", b - a, (b - a) / (s * 10) }')"
  tmux new-session -d -s "$SESSION" -x 80 -y 24 "env TERM=xterm-256color timeout --foreground 3600 dotnet $DLL tui --relay 127.0.0.1:$GRPC_PORT"
  sleep 8 # the dashboard starts and connects
  TUI=$(pgrep -f "^dotnet $DLL tui --relay 127.0.0.1:$GRPC_PORT")
  a=$(cpu_ms "$RELAY"); t=$(cpu_ms "$TUI"); sleep "$SECS"; b=$(cpu_ms "$RELAY"); u=$(cpu_ms "$TUI")
  echo "round $round  with dashboard:    relay $(awk -v a="$a" -v b="$b" -v s="$SECS" 'BEGIN { printf "%.0f ms CPU (%.2f %% of a core)", b - a, (b - a) / (s * 10) }');  the dashboard itself $(awk -v a="$t" -v b="$u" -v s="$SECS" 'BEGIN { printf "%.0f ms (%.2f %%)", b - a, (b - a) / (s * 10) }')"
  tmux kill-session -t "$SESSION"
  sleep 3
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
