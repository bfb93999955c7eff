#!/usr/bin/env bash
# Drives the real `cc-relay tui` in tmux (80×24): a relay with two fake upstreams (fakes.mjs) and steady traffic;
# send-keys to press keys, capture-pane to read the screen. Checks that the table shows a provider's circuit
# opening when its upstream fails, that `d` stops traffic to a provider (the fake counts requests) and `e`
# restores it, a rejected reload with its located error, resizing, losing and regaining the relay,
# TERM=screen, a wrong token, and `serve --tui`. Every wait polls the screen with a deadline.
# Ends with `TUI: N passed, M failed`.
#
#   bash tests/Tui/run.sh             builds src/CcRelay.Cli (Release) first
#   bash tests/Tui/run.sh --no-build  uses the Release build already there
#   TUI_CAPTURE=FILE                  also saves the screen when a provider's circuit is open (for docs/tui.md)
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
# the screen holds ● › │ …: grep's `.` and bash's ${#line} must count characters, whatever locale CI has
export LC_ALL=C.UTF-8
DLL=$REPO/artifacts/bin/CcRelay.Cli/release/cc-relay.dll
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cc-relay-tui.XXXXXX")
SESSION=cc-relay-tui-test-$$
PIDS=()
passed=0
failed=0

cleanup() {
  tmux kill-session -t "$SESSION" 2>/dev/null
  tmux kill-session -t "$SESSION-screen" 2>/dev/null
  tmux kill-session -t "$SESSION-serve" 2>/dev/null
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ${1:-} != --no-build ]]; then
  dotnet build src/CcRelay.Cli -c Release >"$TMP/build.log" 2>&1 || { grep -E "error|warning" "$TMP/build.log" | sort -u; echo "TUI: 0 passed, 1 failed"; exit 1; }
fi
if ! command -v tmux >/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null
  fi
fi

ok() { echo "  ok: $1"; passed=$((passed + 1)); }
not_ok() {
  echo "  FAILED: $1"
  failed=$((failed + 1))
  echo "  --- screen ($2) ---"
  tmux capture-pane -p -t "$2" 2>/dev/null | sed 's/^/  | /'
}
screen() { tmux capture-pane -p -t "${1:-$SESSION}" 2>/dev/null; }
# fits NAME WIDTH: no screen line is wider than WIDTH characters (not bytes: the dashboard draws ● │ ▕ …)
fits() { # fits NAME WIDTH
  local w
  w=$(LC_ALL=C.UTF-8 bash -c 'max=0; while IFS= read -r l; do ((${#l} > max)) && max=${#l}; done; echo $max' < <(screen))
  if ((w <= $2)); then ok "$1 (widest line: $w)"; else not_ok "$1 (widest line: $w)" "$SESSION"; fi
}

# wait_for SESSION REGEX SECONDS: polls the screen until a line matches (extended regex)
wait_for() {
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    screen "$1" | grep -qE -- "$2" && return 0
    sleep 0.3
  done
  return 1
}
# check NAME SESSION REGEX SECONDS
check() { if wait_for "$2" "$3" "$4"; then ok "$1"; else not_ok "$1" "$2"; fi; }

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
count() { curl -s -m 5 "http://127.0.0.1:$CONTROL/$1/count"; }

# ---- fakes, relay, traffic ----------------------------------------------------------------------------
timeout 600 node tests/Tui/fakes.mjs upstreams "$TMP/ports" alpha beta >"$TMP/fakes.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -s $TMP/ports ]] && break; sleep 0.1; done
ALPHA=$(awk '$1=="alpha"{print $2}' "$TMP/ports")
BETA=$(awk '$1=="beta"{print $2}' "$TMP/ports")
CONTROL=$(awk '$1=="control"{print $2}' "$TMP/ports")
RELAY_PORT=$(free_port)
GRPC_PORT=$(free_port)
export TUI_TEST_TOKEN="tui-test-token-$$"

write_config() { # $1: routing strategy
  cat >"$TMP/relay.yaml" <<YAML
server:
  listen: "127.0.0.1:$RELAY_PORT"
routing:
  strategy: $1
health:
  circuit_breaker:
    failure_threshold: 3
    open_duration_ms: 15000
providers:
  - name: alpha
    type: anthropic_compatible
    base_url: "http://127.0.0.1:$ALPHA"
    keys:
      - key: "alpha-upstream-secret-1"
        rpm_limit: 600
      - key: "alpha-upstream-secret-2"
  - name: beta
    type: anthropic_compatible
    base_url: "http://127.0.0.1:$BETA"
    keys:
      - key: "beta-upstream-secret-1"
        rpm_limit: 300
grpc:
  listen: "127.0.0.1:$GRPC_PORT"
  auth_token: "\${TUI_TEST_TOKEN}"
YAML
}
write_config round_robin

start_relay() {
  timeout 600 dotnet "$DLL" serve --config "$TMP/relay.yaml" >>"$TMP/relay.log" 2>&1 &
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
  for _ in $(seq 300); do
    grep -q "listening on" "$TMP/relay.log" 2>/dev/null && [[ $(grep -c "listening on" "$TMP/relay.log") -ge $1 ]] && return 0
    sleep 0.1
  done
  echo "relay did not start:"; cat "$TMP/relay.log"; return 1
}
start_relay 1 || { echo "TUI: 0 passed, 1 failed"; exit 1; }
timeout 300 node tests/Tui/fakes.mjs traffic "http://127.0.0.1:$RELAY_PORT" 5 240 >"$TMP/traffic.log" 2>&1 &
PIDS+=($!)

# ---- the dashboard at 80×24 ---------------------------------------------------------------------------
echo "tui: 80x24, TERM=xterm-256color"
tmux new-session -d -s "$SESSION" -x 80 -y 24 \
  "env TERM=xterm-256color CC_RELAY_GRPC_TOKEN=$TUI_TEST_TOKEN timeout --foreground 300 dotnet $DLL tui --relay 127.0.0.1:$GRPC_PORT; echo TUI-EXIT=\$?; sleep 60"

check "connects: both providers healthy, live" "$SESSION" "● live" 40
check "alpha row: ● ok, on, closed" "$SESSION" "^. alpha +● ok +on +closed" 10
check "beta row: ● ok, on, closed" "$SESSION" "^. beta +● ok +on +closed" 10
check "recent requests pane shows completed requests" "$SESSION" "claude-sonnet-4-5 +(alpha|beta) +✓200" 15
if screen | grep -qE "alpha-upstream-secret|beta-upstream-secret|$TUI_TEST_TOKEN"; then not_ok "no secret on screen" "$SESSION"; else ok "no secret on screen"; fi
fits "every line fits 80 columns" 80

curl -s -m 5 -X POST "http://127.0.0.1:$CONTROL/beta/fail" >/dev/null
check "beta fails upstream: its row shows the circuit open (✖ down, open Ns)" "$SESSION" "^. beta +✖ down +on +open [0-9]+s" 20
check "a request that failed over names the provider it left (↪ from beta)" "$SESSION" "↪ from beta" 15
if [[ -n ${TUI_CAPTURE:-} ]]; then screen >"$TUI_CAPTURE"; fi # docs/tui.md's screen capture
curl -s -m 5 -X POST "http://127.0.0.1:$CONTROL/beta/heal" >/dev/null

tmux send-keys -t "$SESSION" g d
check "d on alpha: its row shows ○ off / off" "$SESSION" "^. alpha +○ off +off +off" 10
check "d on alpha: the footer says so" "$SESSION" "alpha disabled" 5
sleep 1 # requests sent to alpha before the switch may still be finishing
before=$(count alpha)
sleep 5 # a window in which alpha must see nothing (traffic goes on at 5/s)
after=$(count alpha)
if [[ -n $before && $before == "$after" ]]; then ok "disabled alpha gets no request (count stays $before over 5 s)"; else not_ok "disabled alpha gets no request ($before -> $after)" "$SESSION"; fi

tmux send-keys -t "$SESSION" e
check "e on alpha: back to ● ok / on / closed" "$SESSION" "^. alpha +● ok +on +closed" 10
deadline=$((SECONDS + 15))
while ((SECONDS < deadline)) && [[ $(count alpha) == "$after" ]]; do sleep 0.3; done
if [[ $(count alpha) != "$after" ]]; then ok "enabled alpha gets requests again"; else not_ok "enabled alpha gets requests again" "$SESSION"; fi

tmux send-keys -t "$SESSION" Enter
check "enter: the selected provider's keys, by key id" "$SESSION" "Keys of alpha" 5
check "keys panel: capacity and state per key" "$SESSION" "● ready" 5
tmux send-keys -t "$SESSION" Escape
check "esc closes the panel" "$SESSION" "KEYS +capacity left" 5

write_config no_such_strategy
tmux send-keys -t "$SESSION" r
check "r with an invalid config: rejected, the running one stays" "$SESSION" "✖ rejected: the running config" 10
check "the rejection shows the located error (routing.strategy, line)" "$SESSION" "routing\.strategy" 5
tmux send-keys -t "$SESSION" q
write_config round_robin
check "q closes the panel (the dashboard stays)" "$SESSION" "KEYS +capacity left" 5

tmux send-keys -t "$SESSION" '?'
check "? shows the help" "$SESSION" "select a provider" 5
tmux send-keys -t "$SESSION" Escape

tmux resize-window -t "$SESSION" -x 100 -y 30
check "resized to 100x30: the name column widens" "$SESSION" "PROVIDER {17}HEALTH" 10
tmux resize-window -t "$SESSION" -x 60 -y 20
check "resized to 60x20: columns dropped, still a table" "$SESSION" "PROVIDER +HEALTH +ON +CIRCUIT" 10
fits "every line fits 60 columns" 60
tmux resize-window -t "$SESSION" -x 80 -y 24
check "back to 80x24" "$SESSION" "PROVIDER {5}HEALTH" 10

kill "$RELAY_PID"
wait "$RELAY_PID" 2>/dev/null
check "relay gone: disconnected — retrying…" "$SESSION" "disconnected — retrying" 15
start_relay 2 || true
check "relay back: reconnects by itself" "$SESSION" "● live" 30

tmux send-keys -t "$SESSION" q
check "q quits, exit 0" "$SESSION" "TUI-EXIT=0" 10

# ---- TERM=screen ----------------------------------------------------------------------------------------
echo "tui: 80x24, TERM=screen"
tmux new-session -d -s "$SESSION-screen" -x 80 -y 24 \
  "env TERM=screen CC_RELAY_GRPC_TOKEN=$TUI_TEST_TOKEN timeout --foreground 120 dotnet $DLL tui --relay 127.0.0.1:$GRPC_PORT; echo TUI-EXIT=\$?; sleep 60"
check "TERM=screen: live, both providers" "$SESSION-screen" "^. beta +. [a-z]+ +on" 40
tmux send-keys -t "$SESSION-screen" C-c
check "TERM=screen: ctrl+c quits, exit 0" "$SESSION-screen" "TUI-EXIT=0" 10

# ---- a wrong token ----------------------------------------------------------------------------------------
echo "tui: a wrong token"
tmux kill-session -t "$SESSION-screen" 2>/dev/null
tmux new-session -d -s "$SESSION-screen" -x 80 -y 24 \
  "env TERM=xterm-256color CC_RELAY_GRPC_TOKEN=not-the-token timeout --foreground 120 dotnet $DLL tui --relay 127.0.0.1:$GRPC_PORT; echo TUI-EXIT=\$?; sleep 60"
check "a wrong token: refused, said so (and retried)" "$SESSION-screen" "refused: wrong or missing token" 40
if screen "$SESSION-screen" | grep -q "not-the-token"; then not_ok "a wrong token is not shown" "$SESSION-screen"; else ok "a wrong token is not shown"; fi
tmux send-keys -t "$SESSION-screen" q
check "a wrong token: q quits, exit 0" "$SESSION-screen" "TUI-EXIT=0" 10

# ---- serve --tui: relay and dashboard in one terminal --------------------------------------------------
echo "serve --tui: 80x24, a config without a grpc section"
SERVE_PORT=$(free_port)
cat >"$TMP/serve.yaml" <<YAML
server:
  listen: "127.0.0.1:$SERVE_PORT"
providers:
  - name: solo
    type: anthropic_compatible
    base_url: "http://127.0.0.1:$ALPHA"
    keys:
      - key: "solo-upstream-secret"
YAML
tmux new-session -d -s "$SESSION-serve" -x 80 -y 24 \
  "env TERM=xterm-256color timeout --foreground 180 dotnet $DLL serve --tui --config $TMP/serve.yaml; echo SERVE-EXIT=\$?; sleep 60"
check "serve --tui: the dashboard of its own relay (API on a loopback port of its own)" "$SESSION-serve" "● live" 40
timeout 60 node tests/Tui/fakes.mjs traffic "http://127.0.0.1:$SERVE_PORT" 3 10 >"$TMP/serve-traffic.log" 2>&1 &
PIDS+=($!)
check "serve --tui: its requests show" "$SESSION-serve" "claude-sonnet-4-5 +solo +✓200" 20
if screen "$SESSION-serve" | grep -qE "info:|warn:|CcRelay\[|listening on|solo-upstream-secret"; then
  not_ok "serve --tui: no log line (nor secret) on the dashboard" "$SESSION-serve"
else
  ok "serve --tui: no log line (nor secret) on the dashboard"
fi
tmux send-keys -t "$SESSION-serve" q
check "serve --tui: q quits the dashboard and stops the relay, exit 0" "$SESSION-serve" "SERVE-EXIT=0" 30
if curl -s -m 3 -o /dev/null "http://127.0.0.1:$SERVE_PORT/health"; then not_ok "serve --tui: the relay is stopped" "$SESSION-serve"; else ok "serve --tui: the relay is stopped"; fi

tmux kill-session -t "$SESSION-serve" 2>/dev/null
tmux new-session -d -s "$SESSION-serve" -x 80 -y 24 \
  "env TERM=xterm-256color timeout --foreground 180 dotnet $DLL serve --tui --config $TMP/serve.yaml; echo SERVE-EXIT=\$?; sleep 60"
check "serve --tui again: live" "$SESSION-serve" "● live" 40
# this test's own relay, by its PID (its command line names this run's temp dir)
SERVE_PID=$(pgrep -f "^dotnet $DLL serve --tui --config $TMP/serve.yaml")
[[ -n $SERVE_PID ]] && kill -TERM "$SERVE_PID"
check "serve --tui: SIGTERM stops relay and dashboard, exit 0, terminal restored" "$SESSION-serve" "^SERVE-EXIT=0" 30
if screen "$SESSION-serve" | grep -q "PROVIDER"; then not_ok "serve --tui: after SIGTERM the dashboard is gone from the screen" "$SESSION-serve"; else ok "serve --tui: after SIGTERM the dashboard is gone from the screen"; fi

echo "TUI: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
