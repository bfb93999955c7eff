#!/usr/bin/env bash
# The native executable as users get it (issue 22 §3), run by tests/run-all.sh:
#   1. `dotnet publish` src/CcRelay.Cli with Native AOT for linux-x64, as build/release.sh does (its own artifacts
#      folder, artifacts/aot); the publish succeeds (our own trim/AOT warnings are errors there) and its log holds
#      no trim or AOT warning (IL2xxx/IL3xxx) about CcRelay's own assemblies: only the collapsed per-assembly notes
#      of third-party packages (docs/install.md lists them).
#   2. The one file build/release.sh ships (cc-relay: SQLite is linked in, src/CcRelay.Cli/SqliteStatic.targets),
#      copied alone into a folder of its own, is what runs below; it needs no SQLite library of the system's or beside
#      it. `cc-relay version` prints the repository's version.
#   3. `cc-relay serve` on 127.0.0.1 (port 0) with a config pointing at a fake upstream and the usage ledger on (the
#      default): GET /health answers 200, one POST /v1/messages is relayed (the configured key, the mapped model)
#      and answered; SIGTERM stops it with exit code 0; `cc-relay usage` then reads the request's row back from the
#      ledger the relay wrote (SQLite, statically linked, both ways).
# Native AOT needs clang and zlib1g-dev (tests/run-all.sh installs them). Every process it starts listens on
# 127.0.0.1 only and is stopped by its PID. Ends with one line `Native: N passed, M failed`; exits non-zero when a
# check failed.
#
#   bash tests/Packaging/native.sh                 publishes, then checks
#   bash tests/Packaging/native.sh --bin PATH      checks an executable published before (no publish), copied alone
#                                                  into an empty folder
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cc-relay-native.XXXXXX")
BIN=
[[ ${1:-} == --bin ]] && BIN=$2
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

PIDS=()
stop_pid() {
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
check() {
  local description=$1
  shift
  if "$@"; then ok "$description"; else not_ok "$description"; fi
}
finish() {
  echo "# took ${SECONDS}s"
  echo "Native: $passed passed, $failed failed"
  [[ $failed -eq 0 ]]
  exit
}

# wait_for_line FILE REGEX PID: until FILE has a line matching REGEX (printed), at most 60 s, or PID exits.
wait_for_line() {
  local file=$1 regex=$2 pid=$3 i line
  for ((i = 0; i < 600; i++)); do
    line=$(grep -m1 -oE "$regex" "$file" 2>/dev/null) && { echo "$line"; return 0; }
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

VERSION=$(sed -nE 's:.*<Version>([^<]+)</Version>.*:\1:p' "$REPO/Directory.Build.props" | head -1)

# ---- 1. publish ---------------------------------------------------------------------------------------------
if [[ -z $BIN ]]; then
  publish() {
    (cd "$REPO" && dotnet publish src/CcRelay.Cli/CcRelay.Cli.csproj -c Release -r linux-x64 -p:PublishAot=true \
      -p:ArtifactsPath="$REPO/artifacts/aot" -o "$TMP/publish" >"$TMP/publish.log" 2>&1) \
      || { grep -E "error|warning" "$TMP/publish.log" | sort -u | sed 's/^/#   /'; return 1; }
    [[ -x $TMP/publish/cc-relay ]]
  }
  started=$SECONDS
  check "dotnet publish -r linux-x64 -p:PublishAot=true (Release)" publish || finish
  echo "# published in $((SECONDS - started))s; $(stat -c %s "$TMP/publish/cc-relay") bytes"
  BIN=$TMP/publish/cc-relay

  # IL2104/IL3053 are the collapsed notes of a whole third-party assembly ("Assembly 'X' produced trim warnings");
  # anything else IL-numbered, or such a note about one of ours, is a warning from our code
  no_own_warnings() {
    local warnings ours
    warnings=$(grep -oE "warning IL[0-9]+: [^[]*" "$TMP/publish.log" | sort -u)
    ours=$(grep -vE "^warning IL(2104|3053): Assembly '" <<<"$warnings" | grep -v '^$')
    ours+=$(grep -E "Assembly '(CcRelay\.[A-Za-z]+|cc-relay)'" <<<"$warnings")
    [[ -n $warnings ]] && sed 's/^/#   third-party: /' <<<"$warnings"
    [[ -z $ours ]] || { sed 's/^/#   ours: /' <<<"$ours"; return 1; }
  }
  check "the publish reports no trim or AOT warning from CcRelay's own code" no_own_warnings
fi

# ---- 2. one file: what build/release.sh ships, alone in a folder ------------------------------------------------
# (an earlier release needed libe_sqlite3.so beside the executable, and `serve` failed without it)
mkdir -p "$TMP/release"
cp "$BIN" "$TMP/release/cc-relay"
BIN=$TMP/release/cc-relay
no_sqlite_library() {
  local needed
  needed=$(ldd "$BIN" 2>&1) || { echo "# ldd: $needed"; return 1; }
  ! grep -qi sqlite <<<"$needed" || { echo "# ldd: $needed"; return 1; }
  # SQLite itself is in the executable (its database files' header string)
  grep -qa 'SQLite format 3' "$BIN" || { echo "# no SQLite in the executable"; return 1; }
}
check "the native executable links SQLite in: it needs no libe_sqlite3.so or libsqlite3 (ldd)" no_sqlite_library

# the runtime's type data is not dehydrated: a `.hydrated` section is rebuilt in private memory at every start
# (19 MiB of each process's idle RSS before), where `.data` of a position-dependent executable is clean file pages
# (src/CcRelay.Cli/CcRelay.Cli.csproj, docs/install.md "Startup and memory")
no_hydrated_section() {
  local sections type
  sections=$(readelf -S -W "$BIN" 2>&1) || { echo "# readelf: $sections"; return 1; }
  ! grep -q '\.hydrated' <<<"$sections" || { echo "# $(grep '\.hydrated' <<<"$sections")"; return 1; }
  type=$(readelf -h "$BIN" | sed -nE 's/^ *Type: *([A-Z]+).*/\1/p')
  [[ $type == EXEC ]] || { echo "# ELF type $type, not EXEC (a position-independent executable relocates, and so dirties, .data)"; return 1; }
}
check "the native executable has no dehydrated type data (no .hydrated section) and is position-dependent (ELF EXEC)" no_hydrated_section

# ---- 3. version ---------------------------------------------------------------------------------------------
version_prints() {
  local out
  out=$("$BIN" version) || return 1
  [[ $out == "cc-relay $VERSION" ]] || { echo "# printed: $out"; return 1; }
}
check "native cc-relay version prints 'cc-relay $VERSION'" version_prints

# ---- 4. serve: /health, one relayed request, its ledger row ----------------------------------------------------
node "$HERE/fake-upstream.js" >"$TMP/fake.log" 2>&1 &
FAKE_PID=$!
PIDS+=("$FAKE_PID")
FAKE_PORT=$(wait_for_line "$TMP/fake.log" 'LISTENING [0-9]+' "$FAKE_PID") || { not_ok "fake upstream started"; finish; }
FAKE_PORT=${FAKE_PORT#LISTENING }
cat >"$TMP/relay.yaml" <<EOF
providers:
  - name: fake
    type: anthropic_compatible
    base_url: "http://127.0.0.1:$FAKE_PORT"
    keys:
      - key: "native-upstream-key"
    model_mapping:
      "claude-sonnet-4-6": "fake-model-1"
EOF
mkdir -p "$TMP/home"
(cd "$TMP" && exec env -u CC_RELAY_CONFIG -u XDG_STATE_HOME HOME="$TMP/home" "$BIN" serve --config "$TMP/relay.yaml" --listen 127.0.0.1:0) \
  >"$TMP/serve.log" 2>&1 &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
if ! RELAY_URL=$(wait_for_line "$TMP/serve.log" 'listening on http://127\.0\.0\.1:[0-9]+' "$RELAY_PID"); then
  not_ok "native cc-relay serve started"
  sed 's/^/#   /' "$TMP/serve.log"
  finish
fi
RELAY_URL=${RELAY_URL#listening on }

serves_health() {
  local body
  body=$(curl -fsS -m 10 "$RELAY_URL/health") || return 1
  grep -q '"status":"ok"' <<<"$body" && grep -q "\"version\":\"$VERSION\"" <<<"$body" && grep -q '"name":"fake"' <<<"$body" \
    || { echo "# /health: $body"; return 1; }
}
relays_message() {
  local body seen
  body=$(curl -fsS -m 20 "$RELAY_URL/v1/messages" -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \
    -d '{"model":"claude-sonnet-4-6","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}') || return 1
  grep -q 'hello from the fake upstream' <<<"$body" || { echo "# answer: $body"; return 1; }
  seen=$(grep '^SEEN ' "$TMP/fake.log")
  grep -F '"method":"POST","path":"/v1/messages"' <<<"$seen" | grep -F '"key":"native-upstream-key"' \
    | grep -qF '"model":"fake-model-1"' || { echo "# the fake upstream saw: ${seen:-nothing}"; return 1; }
}
stopped_cleanly() {
  local pid=$1 code=0
  kill -TERM "$pid" 2>/dev/null || return 1
  timeout 10 tail --pid="$pid" -f /dev/null || return 1
  wait "$pid" || code=$?
  [[ $code -eq 0 ]] || echo "# exit code $code"
  [[ $code -eq 0 ]]
}
check "native cc-relay serve (127.0.0.1, port 0) answers GET /health 200 with its version and provider" serves_health
check "native cc-relay serve relays POST /v1/messages to the fake upstream (configured key, mapped model)" relays_message

# the ledger (on by default) is at ~/.local/state/cc-relay/ledger.db: written by serve (a batch every second), read
# by usage while serve runs, both through the SQLite linked into the executable
ledger_has_the_request() {
  local ledger=$TMP/home/.local/state/cc-relay/ledger.db out i
  for ((i = 0; i < 100; i++)); do
    out=$(cd "$TMP" && env -u CC_RELAY_CONFIG -u XDG_STATE_HOME HOME="$TMP/home" "$BIN" usage --by provider --ledger "$ledger" --json 2>&1) \
      || { echo "# usage: $out"; return 1; }
    grep -qE '"requests": ?1[,}]' <<<"$out" && break
    sleep 0.1
  done
  grep -q '"fake"' <<<"$out" && grep -qE '"requests": ?1[,}]' <<<"$out" || {
    echo "# usage: $out"
    command -v sqlite3 >/dev/null && echo "# sqlite3 requests: $(sqlite3 "$ledger" 'select * from requests' 2>&1)"
    return 1
  }
}
check "the usage ledger holds the relayed request (written by serve, read by usage; SQLite linked in)" ledger_has_the_request
check "native cc-relay serve stops on SIGTERM with exit code 0" stopped_cleanly "$RELAY_PID"

finish
