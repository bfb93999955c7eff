#!/usr/bin/env bash
# Several relays, one behaviour (docs/scale-out.md), proven with real processes: its own PostgreSQL cluster (initdb
# into a temp dir, run as an unprivileged user on a free loopback port, its socket in the temp dir), two fake
# upstreams (tests/Tui/fakes.mjs), THREE relays (the built cc-relay, Release) sharing state.postgres, and a
# round-robin client (client.mjs). Checks:
#   - the schema is created once and versioned; the three relays report the link "ok" in /health
#   - a circuit opened by one relay is honoured by the other two within 1 s
#   - a client key added through one relay (cc-relay clients add) works on all three; revoked through it (cc-relay
#     clients revoke), it is refused by all three within 1 s
#   - a client's budget holds across the three within the stated overshoot (docs/scale-out.md)
#   - killing the database mid-run fails no request; /health says "degraded"
#   - restarting it restores sharing (the link is "ok" again, a circuit opened after it spreads)
#   - the usage ledger is the shared table (ccrelay_requests): every request of every relay has its row, `cc-relay
#     usage` on any relay's config answers for all three, and the rows of requests answered while the database was
#     dead are written once it is back (none lost)
#   - the host tests that need a real PostgreSQL (Host.Tests, Category=Postgres) run against this cluster
# Installs PostgreSQL from Debian's packages when missing. Stops everything it started by PID; bounded in time.
# Ends with `SharedState: N passed, M failed`.
#
#   bash tests/SharedState/run.sh             builds src/CcRelay.Cli and tests/Host.Tests (Release) first
#   bash tests/SharedState/run.sh --no-build  uses the Release build already there
#   KEEP_TMP=1 bash tests/SharedState/run.sh  keeps the temp dir (relay, PostgreSQL and client logs) for a post-mortem
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
DLL=$REPO/artifacts/bin/CcRelay.Cli/release/cc-relay.dll
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cc-relay-shared.XXXXXX")
PIDS=()
PG_STARTED=0
passed=0
failed=0
AS=()

ok() { echo "  ok: $1"; passed=$((passed + 1)); }
not_ok() { echo "  FAILED: $1"; failed=$((failed + 1)); }
summary() { echo "SharedState: $passed passed, $failed failed"; }

pg_stop() { # by the postmaster's PID (its pid file), immediately: as a crash would
  local pid
  pid=$(head -1 "$TMP/pg/data/postmaster.pid" 2>/dev/null) || return 0
  [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null
  # the backends exit once their postmaster is gone; wait for the port to close (bounded)
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$TMP/pg/data/postmaster.pid"
}
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  [[ $PG_STARTED == 1 ]] && pg_stop
  if [[ -n ${KEEP_TMP:-} ]]; then echo "kept: $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ${1:-} != --no-build ]]; then
  { dotnet build src/CcRelay.Cli -c Release && dotnet build tests/Host.Tests -c Release; } >"$TMP/build.log" 2>&1 || { grep -E "error|warning" "$TMP/build.log" | sort -u; not_ok "build"; summary; exit 1; }
fi

# ---- PostgreSQL: Debian's packages when missing; our own cluster as an unprivileged user ------------------------
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [[ -z $(pg_bin) ]]; then
  echo "installing postgresql (Debian packages)"
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
fi
PGBIN=$(pg_bin)
[[ -x $PGBIN/initdb ]] || { not_ok "PostgreSQL is installed"; summary; exit 1; }
for tool in curl jq node; do command -v "$tool" >/dev/null || { not_ok "missing $tool"; summary; exit 1; }; done

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
PG_PORT=$(free_port)
mkdir -p "$TMP/pg/sock"
if [[ $(id -u) -eq 0 ]]; then
  # the server refuses to run as root: as nobody, who must reach the temp dir
  chmod 755 "$TMP"
  chown -R nobody "$TMP/pg"
  AS=(runuser -u nobody --)
fi
"${AS[@]}" "$PGBIN/initdb" -D "$TMP/pg/data" -U ccrelay -A trust --no-sync -E UTF8 >"$TMP/initdb.log" 2>&1 \
  || { cat "$TMP/initdb.log"; not_ok "initdb"; summary; exit 1; }
# NOTE: fsync off (the OS keeps what was written when the server is killed), but synchronous_commit on: with it off,
# a commit the relay was told of can be lost in the SIGKILL below (measured: one ledger row of 148)
pg_start() {
  "${AS[@]}" "$PGBIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/server.log" -w -t 30 \
    -o "-p $PG_PORT -k $TMP/pg/sock -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
}
pg_start || { cat "$TMP/pg/server.log"; not_ok "PostgreSQL starts"; summary; exit 1; }
PG_STARTED=1
"$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U ccrelay -d postgres -qc "CREATE DATABASE ccrelay" >/dev/null || { not_ok "create database"; summary; exit 1; }
psql_q() { "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U ccrelay -d ccrelay -tAqc "$1"; }
export CC_RELAY_TEST_PG="Host=127.0.0.1;Port=$PG_PORT;Database=ccrelay;Username=ccrelay;Timeout=2;Command Timeout=3"

# ---- fakes and three relays -----------------------------------------------------------------------------------
timeout 600 node tests/Tui/fakes.mjs upstreams "$TMP/ports" alpha beta >"$TMP/fakes.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -s $TMP/ports ]] && break; sleep 0.1; done
ALPHA=$(awk '$1=="alpha"{print $2}' "$TMP/ports")
BETA=$(awk '$1=="beta"{print $2}' "$TMP/ports")
CONTROL=$(awk '$1=="control"{print $2}' "$TMP/ports")
export ALICE_KEY="alice-relay-key-$RANDOM-0123456789" BOB_KEY="bob-relay-key-$RANDOM-0123456789" CAROL_KEY="carol-relay-key-$RANDOM-0123456789"
FLUSH_MS=100
# the budget: output at USD 1000 per million tokens, input free, so a request's estimate (client.mjs's max_tokens 64:
# USD 0.064) bounds its real cost (the fakes answer 30 output tokens: USD 0.03) from above
PORTS=()
GRPC=()
export CC_RELAY_TEST_TOKEN="shared-state-token-$RANDOM$RANDOM"
for i in 1 2 3; do
  PORTS+=("$(free_port)")
  GRPC+=("$(free_port)")
  mkdir -p "$TMP/relay$i"
  cat >"$TMP/relay$i.yaml" <<YAML
server:
  listen: "127.0.0.1:${PORTS[$((i - 1))]}"
routing:
  strategy: failover
health:
  circuit_breaker:
    failure_threshold: 3
    open_duration_ms: 10000
providers:
  - name: alpha
    type: anthropic_compatible
    base_url: "http://127.0.0.1:$ALPHA"
    keys:
      - key: "alpha-upstream-secret-1"
    pricing:
      "claude-sonnet-*": { input: 0, output: 1000 }
  - name: beta
    type: anthropic_compatible
    base_url: "http://127.0.0.1:$BETA"
    keys:
      - key: "beta-upstream-secret-1"
    pricing:
      "claude-sonnet-*": { input: 0, output: 1000 }
clients:
  - name: alice
    key: "\${ALICE_KEY}"
  - name: bob
    key: "\${BOB_KEY}"
    budget: { daily_usd: 1.2 }
  - name: carol
    key: "\${CAROL_KEY}"
ledger:
  enabled: true
  path: "$TMP/relay$i/ledger.db"
  flush_interval_ms: 200
grpc:
  enabled: true
  listen: "127.0.0.1:${GRPC[$((i - 1))]}"
  auth_token: "\${CC_RELAY_TEST_TOKEN}"
state:
  postgres: "\${CC_RELAY_TEST_PG}"
  flush_interval_ms: $FLUSH_MS
YAML
done
URLS=()
for i in 1 2 3; do
  URLS+=("http://127.0.0.1:${PORTS[$((i - 1))]}")
  timeout 600 dotnet "$DLL" serve --config "$TMP/relay$i.yaml" >"$TMP/relay$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 300); do grep -q "listening on" "$TMP/relay$i.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$TMP/relay$i.log" || { echo "relay $i did not start:"; cat "$TMP/relay$i.log"; not_ok "relay $i starts"; summary; exit 1; }
done

health() { curl -s -m 5 "$1/health"; }
link_of() { health "$1" | jq -r '.shared_state.status // "none"'; }
circuit_of() { health "$1" | jq -r --arg p "$2" '.providers[] | select(.name == $p) | .circuit'; }
now_ms() { date +%s%3N; }
# wait_all MS CMD...: polls until CMD succeeds for every relay URL (appended), at most MS ms; prints the elapsed ms
wait_all() {
  local limit=$1 start elapsed url
  shift
  start=$(now_ms)
  for url in "${URLS[@]}"; do
    until "$@" "$url"; do
      elapsed=$(($(now_ms) - start))
      ((elapsed > limit)) && { echo "$elapsed"; return 1; }
      sleep 0.02
    done
  done
  echo $(($(now_ms) - start))
}

echo "==> schema and links"
version=$(psql_q "SELECT version FROM ccrelay_schema_version")
rows=$(psql_q "SELECT count(*) FROM ccrelay_schema_version")
if [[ $version == 5 && $rows == 1 ]]; then ok "three relays starting together created the schema once (version $version)"; else not_ok "schema version (got '$version' in $rows rows)"; fi
is_ok() { [[ $(link_of "$1") == ok ]]; }
if ms=$(wait_all 20000 is_ok); then ok "every relay reports shared_state ok ($ms ms)"; else not_ok "shared_state ok on every relay"; fi

echo "==> a circuit opened by one relay is honoured by the others within 1 s"
is_open() { [[ $(circuit_of "$1" alpha) == open ]]; }
# watch N URL CHECK: polls CHECK on the relay every 20 ms (at most 15 s) and writes when it first held
watch() {
  local deadline=$(($(now_ms) + 15000))
  while (($(now_ms) < deadline)); do
    if "$3" "$2"; then now_ms >"$TMP/seen.$1"; return 0; fi
    sleep 0.02
  done
}
# spread_start CHECK: one watcher per relay; then the caller makes the change through one relay; then `spread_check`
spread_start() {
  rm -f "$TMP"/seen.*
  WATCHERS=()
  for i in 1 2 3; do watch "$i" "${URLS[$((i - 1))]}" "$1" & WATCHERS+=($!); done
}
spread_check() { # WHAT FIRST: how long after relay FIRST showed it the last relay did
  local w first last i
  for w in "${WATCHERS[@]}"; do wait "$w"; done
  if [[ ! -s $TMP/seen.$2 ]]; then not_ok "$1: relay $2 never showed it"; return; fi
  first=$(cat "$TMP/seen.$2")
  last=0
  for i in 1 2 3; do
    [[ -s $TMP/seen.$i ]] || { not_ok "$1: relay $i never showed it"; return; }
    (($(cat "$TMP/seen.$i") - first > last)) && last=$(($(cat "$TMP/seen.$i") - first))
  done
  if ((last <= 1000)); then ok "$1, through relay $2: on all three within $last ms of it (≤ 1000; each relay polled every 20 ms)"
  else not_ok "$1: the last relay showed it $last ms after relay $2 (> 1000)"; fi
}
spread_start is_open
curl -s -m 2 -X POST "http://127.0.0.1:$CONTROL/alpha/fail" >/dev/null
node tests/SharedState/client.mjs load "$ALICE_KEY" 4 1 "${URLS[0]}" >"$TMP/open.json"
spread_check "alpha's circuit opened" 1
curl -s -m 2 -X POST "http://127.0.0.1:$CONTROL/alpha/heal" >/dev/null
if [[ $(jq -r '.statuses["200"] // 0' "$TMP/open.json") == 4 ]]; then ok "the requests that opened it were answered by beta (failover)"; else not_ok "failover answers ($(cat "$TMP/open.json"))"; fi

echo "==> a client key added and revoked through one relay (cc-relay clients) is honoured by all; revoked, refused within 1 s"
api() { dotnet "$DLL" "$@" --relay "127.0.0.1:${GRPC[0]}" --token "$CC_RELAY_TEST_TOKEN"; }
DAVE_KEY=$(api clients add dave --like carol --json 2>"$TMP/add.err" | jq -r '.key // empty')
if [[ -n $DAVE_KEY ]]; then ok "cc-relay clients add dave on relay 1"; else not_ok "cc-relay clients add dave ($(cat "$TMP/add.err"))"; fi
accepted() { [[ $(curl -s -o /dev/null -w '%{http_code}' -m 2 -X POST "$1/v1/messages" -H "x-api-key: $DAVE_KEY" -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \
  -d '{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}') == 200 ]]; }
refused() { [[ $(curl -s -o /dev/null -w '%{http_code}' -m 2 -X POST "$1/v1/messages" -H "x-api-key: $DAVE_KEY" -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \
  -d '{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}') == 401 ]]; }
if ms=$(wait_all 2000 accepted); then ok "dave's new key works on all three within $ms ms"; else not_ok "dave's key on all three ($ms ms)"; fi
spread_start refused
api clients revoke dave >"$TMP/revoke.log" 2>&1 || { cat "$TMP/revoke.log"; not_ok "cc-relay clients revoke dave"; }
spread_check "dave's key revoked (cc-relay clients revoke) and refused with 401" 1
if grep -q -- "$DAVE_KEY" "$TMP"/relay*.log "$TMP/revoke.log"; then not_ok "the key appears in a log"; else ok "no log shows the key"; fi

echo "==> a client's budget holds across the three within the stated overshoot"
start=$(now_ms)
node tests/SharedState/client.mjs load "$BOB_KEY" 300 3 "${URLS[@]}" >"$TMP/budget.json"
elapsed=$(($(now_ms) - start))
admitted=$(jq -r '.statuses["200"] // 0' "$TMP/budget.json")
limited=$(jq -r '.statuses["429"] // 0' "$TMP/budget.json")
# each admitted request costs USD 0.03 (30 output tokens at USD 1000/M, input free) and is estimated at USD 0.064; the
# cap is USD 1.2. The stated overshoot is the estimates the other relays admit within one flush interval: at most the
# requests the client sent in one interval (its measured rate × the interval, rounded up, plus the 3 in flight).
# Unshared, each relay would admit the whole cap: about 3 × 38 requests.
per_interval=$(( (300 * FLUSH_MS + elapsed - 1) / elapsed + 3 ))
spent_millis=$((admitted * 30))
bound_millis=$((1200 + per_interval * 64))
echo "  bob: $(jq -c . "$TMP/budget.json")"
echo "  bob: $admitted admitted, $limited refused (429) in $elapsed ms: ${spent_millis} milli-USD spent; cap USD 1.2 + overshoot bound $per_interval × USD 0.064"
if ((spent_millis <= bound_millis)); then ok "bob's budget held across three relays: spent ${spent_millis} ≤ ${bound_millis} milli-USD (cap + one flush interval of traffic)"; else not_ok "bob's budget: spent ${spent_millis} > ${bound_millis} milli-USD"; fi
if ((admitted >= 30 && limited > 0)); then ok "the budget was spent, then refused with 429 ($admitted admitted)"; else not_ok "the budget was reached ($admitted admitted, $limited refused)"; fi

echo "==> the usage ledger: one table for the three relays"
# wait_rows SQL N: polls until SQL's count is N (at most 10 s: the relays flush every 200 ms)
wait_rows() {
  local got
  for _ in $(seq 100); do got=$(psql_q "$1"); [[ $got == "$2" ]] && return 0; sleep 0.1; done
  echo "$got"; return 1
}
bob_total=$(jq -r '[.statuses | to_entries[] | .value] | add // 0' "$TMP/budget.json")
if got=$(wait_rows "SELECT count(*) FROM ccrelay_requests WHERE client = 'bob'" "$bob_total"); then
  ok "each of bob's $bob_total requests has its row in ccrelay_requests, from $(psql_q "SELECT count(DISTINCT relay) FROM ccrelay_requests WHERE client = 'bob'") relays"
else not_ok "bob's rows in ccrelay_requests: $got, expected $bob_total"; fi
dotnet "$DLL" usage --config "$TMP/relay2.yaml" --by client --since 1h --json >"$TMP/usage.json" 2>"$TMP/usage.err"
usage_bob=$(jq -r '.groups[] | select(.key == "bob") | "\(.requests) \(.cost_usd)"' "$TMP/usage.json" 2>/dev/null)
expected_cost=$(awk -v n="$admitted" 'BEGIN { printf "%g", n * 0.03 }')
if [[ $usage_bob == "$bob_total $expected_cost" ]]; then ok "cc-relay usage (relay 2's config) answers for all three relays: bob $bob_total requests, USD $expected_cost"
else not_ok "cc-relay usage: bob '$usage_bob', expected '$bob_total $expected_cost' ($(cat "$TMP/usage.err"))"; fi

echo "==> killing the database mid-run fails no request"
kill_start=$(now_ms)
node tests/SharedState/client.mjs steady "$ALICE_KEY" 6 40 "${URLS[@]}" >"$TMP/kill.json" &
LOAD=$!
PIDS+=("$LOAD")
sleep 1.5
pg_stop
wait "$LOAD"
statuses=$(jq -c '.statuses' "$TMP/kill.json")
errors=$(jq -r '.errors' "$TMP/kill.json")
if [[ $(jq -r '[.statuses | to_entries[] | select(.key != "200") | .value] | add // 0' "$TMP/kill.json") == 0 && $errors == 0 ]]; then
  ok "every request answered 200 while the database died ($statuses, slowest $(jq -r .max_ms "$TMP/kill.json") ms)"
else
  not_ok "requests while the database died: $statuses, $errors errors"
fi
is_degraded() { [[ $(link_of "$1") == degraded ]]; }
if ms=$(wait_all 20000 is_degraded); then ok "every relay reports shared_state degraded ($ms ms)"; else not_ok "degraded on every relay"; fi
metric=$(curl -s -m 10 "${URLS[0]}/metrics" | grep -E '^ccrelay_shared_state_up' | awk '{print $2}')
[[ $metric == 0 ]] && ok "ccrelay_shared_state_up is 0" || not_ok "ccrelay_shared_state_up while degraded: '$metric'"
ledger_failing() { [[ $(health "$1" | jq -r '.ledger.status') == failing ]]; }
if ms=$(wait_all 10000 ledger_failing); then ok "every relay reports its ledger failing, none dropped a row ($(for u in "${URLS[@]}"; do health "$u" | jq -r '.ledger.rows_dropped'; done | paste -sd+))"; else not_ok "ledger failing on every relay"; fi

echo "==> restarting it restores sharing"
pg_start || not_ok "PostgreSQL restarts"
if ms=$(wait_all 30000 is_ok); then ok "every relay reconnected by itself ($ms ms)"; else not_ok "reconnected on every relay"; fi
kill_total=$(jq -r '[.statuses | to_entries[] | .value] | add // 0' "$TMP/kill.json")
if got=$(wait_rows "SELECT count(*) FROM ccrelay_requests WHERE client = 'alice' AND ended_at_ms >= $kill_start" "$kill_total"); then
  ok "the $kill_total requests answered while the database was dead all have their rows once it is back"
else not_ok "rows of the requests answered while the database was dead: $got of $kill_total"; fi
sleep 10.5 # alpha's earlier break runs out everywhere
spread_start is_open
curl -s -m 2 -X POST "http://127.0.0.1:$CONTROL/alpha/fail" >/dev/null
node tests/SharedState/client.mjs load "$ALICE_KEY" 4 1 "${URLS[1]}" >"$TMP/open.json"
spread_check "after the restart, alpha's circuit opened" 2
curl -s -m 2 -X POST "http://127.0.0.1:$CONTROL/alpha/heal" >/dev/null

echo "==> host tests that need a real PostgreSQL (Host.Tests, Category=Postgres)"
dotnet test tests/Host.Tests -c Release --no-build --filter "Category=Postgres" >"$TMP/host-pg.log" 2>&1
host_line=$(grep -E "^\s*(Passed|Failed)!" "$TMP/host-pg.log" | tail -1)
if [[ $host_line =~ Failed:\ +0,\ +Passed:\ +([0-9]+),\ +Skipped:\ +0 ]] && ((BASH_REMATCH[1] > 0)); then ok "host tests against this PostgreSQL: ${BASH_REMATCH[1]} passed"
else grep -E "Failed |Error Message|Assert" "$TMP/host-pg.log" | head -20; not_ok "host tests against this PostgreSQL: ${host_line:-no result}"; fi

if grep -qE "alpha-upstream-secret|$ALICE_KEY|$BOB_KEY" "$TMP"/relay*.log; then not_ok "a secret appears in a relay log"; else ok "no secret in the relays' logs"; fi
summary
[[ $failed -eq 0 ]]
