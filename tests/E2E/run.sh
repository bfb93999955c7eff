#!/usr/bin/env bash
# End-to-end test: the real Claude Code CLI -> CcRelay -> a scripted fake Anthropic upstream.
#
#   tests/E2E/run.sh            through the relay (builds src/CcRelay.Cli in Release when needed)
#   tests/E2E/run.sh --direct   Claude Code straight at the fake upstream (control run, no relay)
#   CC_RELAY_BIN=/path/to/cc-relay tests/E2E/run.sh   use that relay executable, no build
#
# Scenarios (each check is one counted case; output ends with `E2E: <N> passed, <M> failed`):
#   tool-loop            thinking + text + Bash tool_use, Claude Code runs the tool, second turn ends it
#   error-after-content  the upstream sends an SSE `error` event after content; Claude Code must fail
#   failover             a sick provider first; the relay must fail over invisibly
#   crossed-tool-loop    thinking on; the tool loop fails over from Anthropic to an OpenAI-shaped target and back
#   bedrock-upstream     the relay's only provider is `type: bedrock`, its base_url a fake Bedrock runtime that
#                        verifies SigV4 with @smithy/signature-v4 and streams an AWS event stream; same tool loop
#   bedrock-bearer, bedrock-skip-auth, vertex
#                        Claude Code in Bedrock / Vertex mode with the relay as its endpoint (relay auth on)
#   openai-chat, gemini  the relay translates: its only provider is `type: openai` (a strict fake DeepSeek-style
#                        Chat Completions server, fake-openai.mjs) or `type: gemini` (a strict fake Gemini 3,
#                        fake-gemini.mjs); a three-turn tool loop with thinking, two parallel tool calls and an
#                        image, then the Anthropic TypeScript SDK's stream accumulator over the same fake
#   openai-responses     the same through `type: openai` with `openai_api: responses` (a strict fake of OpenAI's
#                        Responses API serving a stateless reasoning model, fake-openai-responses.mjs): reasoning items
#                        whose encrypted content must come back every turn, function calls, streaming
#   cc-relay-claude      `cc-relay claude -p …`: no relay runs, so the command starts one, runs Claude Code through
#                        it (the relay's client key handed over), passes the exit code back and stops the relay
#   stages               routing.stages on (think -> fake with model e2e-reasoner, background -> cheap, default -> fake):
#                        the main loop (thinking adaptive) lands on the think target with its model, cheap sees nothing
#   model-switch         ANTHROPIC_MODEL=cheap,claude-haiku-4-5: every request goes to the cheap provider with that model
#   E2E_ONLY="name ..."  runs only the named scenarios
#
# Everything listens on 127.0.0.1. Every process started here is stopped by PID, and the temp dir is
# removed, by the EXIT trap. The captures of the last run are copied to tests/E2E/.work/last-run/.

# shellcheck disable=SC2016  # jq filters in single quotes use $variables on purpose
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=$HERE/.work
CC_DIR=$WORK/cc
RELAY_DLL=$REPO/artifacts/bin/CcRelay.Cli/release/cc-relay.dll
BUILD_STAMP=$WORK/relay-build.stamp

CLIENT_KEY=sk-ant-e2e-client
UPSTREAM_KEY=upstream-test-key
# Static AWS credentials of the bedrock-upstream scenario: the relay signs with them, the fake Bedrock verifies.
AWS_TEST_KEY_ID=AKIAE2ETESTACCESSKEY
AWS_TEST_SECRET=e2e-test-secret-access-key/+AbCdEf0123456789
MODEL=claude-sonnet-4-6
PROMPT='Run the end-to-end test command with the Bash tool, then report the result.'
PROBE_MARK=e2e-byte-probe

MODE=relay
case "${1:-}" in
  "") ;;
  --direct) MODE=direct ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *) echo "usage: $0 [--direct]" >&2; exit 2 ;;
esac

for tool in node npm jq curl timeout; do
  command -v "$tool" >/dev/null || { echo "missing required tool: $tool" >&2; exit 2; }
done
if [[ $MODE == relay && -z ${CC_RELAY_BIN:-} ]]; then
  command -v dotnet >/dev/null || { echo "missing required tool: dotnet" >&2; exit 2; }
fi
if [[ -n ${CC_RELAY_BIN:-} ]]; then
  [[ -x $CC_RELAY_BIN ]] || { echo "CC_RELAY_BIN=$CC_RELAY_BIN is not an executable" >&2; exit 2; }
  RELAY_CMD=("$CC_RELAY_BIN")
else
  RELAY_CMD=(dotnet "$RELAY_DLL")
fi

# ---- process and temp-dir hygiene -----------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cc-relay-e2e.XXXXXX")
PIDS=()

# Stops one process we started: SIGTERM, then a bounded wait for it to go, then SIGKILL.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {
  local gone=$1 pid kept=()
  for pid in "${PIDS[@]}"; do [[ $pid == "$gone" ]] || kept+=("$pid"); done
  PIDS=("${kept[@]}")
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# ---- 1. Claude Code, pinned by package.json + package-lock.json, cached under .work/cc --------------

PIN=$(jq -r '.dependencies["@anthropic-ai/claude-code"]' "$HERE/package.json")
CLAUDE=$CC_DIR/node_modules/.bin/claude

claude_version() { env -i PATH=/usr/bin:/bin HOME="$TMP" "$CLAUDE" --version 2>/dev/null || true; }

install_claude() {
  if [[ -x $CLAUDE ]] && cmp -s "$HERE/package.json" "$CC_DIR/package.json" \
     && cmp -s "$HERE/package-lock.json" "$CC_DIR/package-lock.json" \
     && [[ $(claude_version) == "$PIN (Claude Code)" ]]; then
    echo "# claude code $PIN: cached"
    return
  fi
  echo "# claude code $PIN: installing into tests/E2E/.work/cc"
  rm -rf "$CC_DIR"
  mkdir -p "$CC_DIR"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$CC_DIR/"
  # Scripts must run: the postinstall puts the native binary in place of a stub.
  if ! (cd "$CC_DIR" && npm ci --no-audit --no-fund >"$TMP/npm.log" 2>&1); then
    sed 's/^/# npm: /' "$TMP/npm.log"
    echo "npm ci failed" >&2
    exit 2
  fi
  local got
  got=$(claude_version)
  if [[ $got != "$PIN (Claude Code)" ]]; then
    echo "installed claude reports '$got', expected '$PIN (Claude Code)'" >&2
    exit 2
  fi
}

# ---- 2. the relay, built in Release when missing or older than its sources ----------------------------

build_relay() {
  if [[ -f $RELAY_DLL && -f $BUILD_STAMP ]] \
     && [[ -z $(find "$REPO/src" "$REPO/Directory.Build.props" "$REPO/Directory.Packages.props" \
                     -type f -newer "$BUILD_STAMP" -print -quit) ]]; then
    echo "# relay: built"
    return
  fi
  echo "# relay: dotnet build -c Release src/CcRelay.Cli"
  if ! (cd "$REPO" && dotnet build -c Release src/CcRelay.Cli --nologo -v quiet >"$TMP/build.log" 2>&1); then
    sed 's/^/# build: /' "$TMP/build.log" | tail -40
    echo "relay build failed" >&2
    exit 2
  fi
  [[ -f $RELAY_DLL ]] || { echo "build succeeded but $RELAY_DLL is missing" >&2; exit 2; }
  mkdir -p "$WORK"
  touch "$BUILD_STAMP"
}

# ---- 3. per-scenario processes ---------------------------------------------------------------------

# Starts the fake upstream and waits for its `LISTENING <port>` line. Sets FAKE_PID, FAKE_PORT.
start_fake() {
  local dir=$1 mode=$2 logname=${3:-upstream} fd word
  if [[ $mode == openai || $mode == gemini || $mode == openai-responses ]]; then
    # a translated target: the fake of that API, which asks Claude Code to read files in its work dir
    exec {fd}< <(exec node "$HERE/fake-$mode.mjs" --port 0 --log "$dir/$logname.jsonl" --workdir "$dir/cwd" \
                   --key "$(target_key "$mode")" --model "$(target_model "$mode")" 2>"$dir/fake.err")
  else
    exec {fd}< <(exec node "$HERE/fake-upstream.mjs" --port 0 --mode "$mode" --log "$dir/$logname.jsonl" \
                   --aws-access-key-id "$AWS_TEST_KEY_ID" --aws-secret-access-key "$AWS_TEST_SECRET" 2>"$dir/fake.err")
  fi
  FAKE_PID=$!
  PIDS+=("$FAKE_PID")
  if ! read -r -t 15 -u "$fd" word FAKE_PORT || [[ $word != LISTENING ]]; then
    echo "fake upstream did not start" >&2
    cat "$dir/fake.err" >&2
    exit 2
  fi
  exec {fd}<&-
}

# Writes a relay config pointing at the fake, starts the relay, polls /health. Sets RELAY_PID, RELAY_PORT.
start_relay() {
  local dir=$1 i
  RELAY_PORT=$(free_port)
  {
    printf 'server:\n  listen: "127.0.0.1:%s"\n' "$RELAY_PORT"
    # the cloud-mode scenarios: the relay authenticates its clients (x-api-key or bearer, one secret)
    if [[ -n ${RELAY_AUTH:-} ]]; then
      printf '  auth:\n    api_key: "%s"\n    allow_bearer: true\n    bearer_secret: "%s"\n' "$RELAY_AUTH" "$RELAY_AUTH"
    fi
    printf 'providers:\n'
    # a sick provider first, when the scenario has one: the relay must fail over to "fake"
    if [[ -n ${SICK_PORT:-} ]]; then
      printf '  - name: sick\n    type: anthropic_compatible\n    base_url: "http://127.0.0.1:%s"\n    keys:\n      - key: "sick-key"\n' "$SICK_PORT"
    fi
    # the stage scenarios: a second tool-loop fake "cheap", and routing.stages
    if [[ -n ${CHEAP_PORT:-} ]]; then
      printf '  - name: cheap\n    type: anthropic_compatible\n    base_url: "http://127.0.0.1:%s"\n    keys:\n      - key: "cheap-key"\n' "$CHEAP_PORT"
    fi
    if [[ ${TARGET:-} == openai ]]; then
      # DeepSeek-style: reasoning in reasoning_content (the default off api.openai.com), thinking as its `thinking` field
      printf '  - name: deepseek\n    type: openai\n    base_url: "http://127.0.0.1:%s"\n    keys:\n      - key: "%s"\n' "$FAKE_PORT" "$(target_key openai)"
      printf '    thinking_control: thinking\n    model_mapping:\n      "%s": "%s"\n      "claude-haiku-4-5": "%s"\n' "$MODEL" "$(target_model openai)" "$(target_model openai)"
    elif [[ ${TARGET:-} == openai-responses ]]; then
      # OpenAI's reasoning models: the Responses API, stateless (store: false), encrypted reasoning carried across turns
      printf '  - name: openai\n    type: openai\n    openai_api: responses\n    base_url: "http://127.0.0.1:%s"\n    keys:\n      - key: "%s"\n' "$FAKE_PORT" "$(target_key openai-responses)"
      printf '    model_mapping:\n      "%s": "%s"\n      "claude-haiku-4-5": "%s"\n' "$MODEL" "$(target_model openai-responses)" "$(target_model openai-responses)"
    elif [[ ${TARGET:-} == gemini ]]; then
      printf '  - name: gemini\n    type: gemini\n    base_url: "http://127.0.0.1:%s"\n    keys:\n      - key: "%s"\n' "$FAKE_PORT" "$(target_key gemini)"
      printf '    model_mapping:\n      "%s": "%s"\n      "claude-haiku-4-5": "%s"\n' "$MODEL" "$(target_model gemini)" "$(target_model gemini)"
    elif [[ -n ${BEDROCK_UPSTREAM:-} ]]; then
      # the only provider is a Bedrock one (SigV4 with static keys) whose endpoint is the fake Bedrock runtime
      printf '  - name: bedrock\n    type: bedrock\n    base_url: "http://127.0.0.1:%s"\n    aws_region: us-east-1\n' "$FAKE_PORT"
      printf '    aws_access_key_id: "%s"\n    aws_secret_access_key: "%s"\n' "$AWS_TEST_KEY_ID" "$AWS_TEST_SECRET"
    else
      printf '  - name: fake\n    type: anthropic_compatible\n    base_url: "http://127.0.0.1:%s"\n    keys:\n      - key: "%s"\n' "$FAKE_PORT" "$UPSTREAM_KEY"
    fi
    # the crossed tool loop: a DeepSeek-style target after the Anthropic-shaped fake, to fail over to and back from
    if [[ -n ${CROSS_PORT:-} ]]; then
      printf '  - name: deepseek\n    type: openai\n    base_url: "http://127.0.0.1:%s"\n    keys:\n      - key: "%s"\n' "$CROSS_PORT" "$(target_key openai)"
      printf '    thinking_control: thinking\n    model_mapping:\n      "%s": "%s"\n      "claude-haiku-4-5": "%s"\n' "$MODEL" "$(target_model openai)" "$(target_model openai)"
    fi
    if [[ -n ${CHEAP_PORT:-} ]]; then
      printf 'routing:\n  debug: true\n  stages:\n    background: "cheap,claude-haiku-4-5"\n    think: "fake,e2e-reasoner"\n    default: fake\n'
    fi
  } >"$dir/relay.yaml"
  "${RELAY_CMD[@]}" serve --config "$dir/relay.yaml" >"$dir/relay.out" 2>"$dir/relay.err" &
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
  # Readiness: bounded polling of /health (about 30 s at most).
  for ((i = 0; i < 300; i++)); do
    if curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$RELAY_PORT/health" 2>/dev/null; then return 0; fi
    if ! kill -0 "$RELAY_PID" 2>/dev/null; then
      local rc=0
      wait "$RELAY_PID" || rc=$?
      forget_pid "$RELAY_PID"
      RELAY_PID=''
      echo "# relay exited during start-up with code $rc:"
      sed 's/^/#   /' "$dir/relay.out" "$dir/relay.err" | tail -30
      return 1
    fi
    sleep 0.1
  done
  echo "# relay did not answer GET /health on 127.0.0.1:$RELAY_PORT within 30 s; its output:"
  sed 's/^/#   /' "$dir/relay.out" "$dir/relay.err" | tail -30
  return 1
}

stop_scenario_processes() {
  local pid
  for pid in ${RELAY_PID:-} ${FAKE_PID:-} ${SICK_PID:-} ${CHEAP_PID:-} ${CROSS_PID:-}; do stop_pid "$pid"; forget_pid "$pid"; done
  RELAY_PID='' FAKE_PID='' SICK_PID='' SICK_PORT='' CHEAP_PID='' CHEAP_PORT='' CROSS_PID='' CROSS_PORT=''
}

# Runs `claude -p` exactly as docs/claude-code-client.md describes, in a fresh HOME/config dir. Sets CLAUDE_RC.
run_claude() {
  local dir=$1 base_url=$2
  local -a client_env=(ANTHROPIC_BASE_URL="$base_url" ANTHROPIC_API_KEY="$CLIENT_KEY")
  ((${#CLIENT_ENV[@]})) && client_env=("${CLIENT_ENV[@]}")
  mkdir -p "$dir/home" "$dir/cwd"
  # In the background and awaited, so a TERM/INT to this script is handled at once (the trap then
  # stops `timeout`, which passes the signal on to claude).
  (cd "$dir/cwd" && exec env -i PATH=/usr/bin:/bin HOME="$dir/home" CLAUDE_CONFIG_DIR="$dir/home/.claude" LANG=C.UTF-8 \
      "${client_env[@]}" \
      ANTHROPIC_MODEL="$MODEL" ANTHROPIC_DEFAULT_HAIKU_MODEL=claude-haiku-4-5 \
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 DISABLE_AUTOUPDATER=1 \
      CLAUDE_CODE_MAX_RETRIES=1 \
      IS_SANDBOX=1 \
      timeout 120 "$CLAUDE" -p "${SCENARIO_PROMPT:-$PROMPT}" --output-format stream-json --verbose \
        --dangerously-skip-permissions --no-session-persistence --max-turns 4 \
      </dev/null >"$dir/claude.jsonl" 2>"$dir/claude.err") &
  local pid=$!
  PIDS+=("$pid")
  CLAUDE_RC=0
  wait "$pid" || CLAUDE_RC=$?
  forget_pid "$pid"
}

# ---- 4. checks ---------------------------------------------------------------------------------------

PASSED=0
FAILED=0
SCENARIO=''
SCENARIO_FAILED=0

check() {
  local name=$1
  shift
  if "$@" >/dev/null 2>&1; then
    echo "ok - $SCENARIO: $name"
    PASSED=$((PASSED + 1))
  else
    echo "not ok - $SCENARIO: $name"
    FAILED=$((FAILED + 1))
    SCENARIO_FAILED=1
  fi
}

# jq over the upstream capture (slurped); $posts = Claude Code's POST /v1/messages records in arrival
# order (the byte probe's request is left out). Usage: upstream [jq options...] FILTER
upstream() {
  local filter=${!#}
  jq -e -s --arg probe "$PROBE_MARK" "${@:1:$#-1}" \
    '[.[] | select(.method == "POST" and .path == "/v1/messages" and (.bodyText | contains($probe) | not))] as $posts
     | '"$filter" "$DIR/upstream.jsonl"
}
# jq over Claude Code's stream-json output (slurped); $result = the `result` line.
# Usage: claude_out [jq options...] FILTER
claude_out() {
  local filter=${!#}
  jq -e -s "${@:1:$#-1}" '([.[] | select(.type == "result")] | last) as $result | '"$filter" "$DIR/claude.jsonl"
}

# Shared jq definitions: the request body of a capture, and the blocks of interest in turn 2's history.
JQ_DEFS='
  def body: .bodyText | fromjson;
  def last_user: body.messages | map(select(.role == "user")) | last;
  def tool_result: last_user.content | map(select(.type? == "tool_result")) | first;
  def tool_result_text: tool_result.content | if type == "string" then . else map(.text? // "") | join("") end;
  def thinking_for($id): body.messages
      | map(select(.role == "assistant" and ((.content | type) == "array")
                   and any(.content[]; .type == "tool_use" and .id == $id)))
      | last | .content | map(select(.type == "thinking")) | first;
'

scenario_tool_loop() {
  local session_id
  check "(a) claude exits 0" test "$CLAUDE_RC" -eq 0
  check "(b) final result contains E2E-DONE, is_error false" \
    claude_out '$result.is_error == false and ($result.result | contains("E2E-DONE"))'
  check "(c) exactly 2 POST /v1/messages reached the upstream, ?beta=true preserved" \
    upstream '($posts | length) == 2 and all($posts[]; .url == "/v1/messages?beta=true")
              and ($posts | map(.reply.turn)) == [1, 2]'
  check "(d) turn-2 tool_result.tool_use_id equals the tool_use id sent in turn 1" \
    upstream "$JQ_DEFS"'$posts[0].reply.toolUseId as $id
              | $id != null and ($posts[1] | tool_result.tool_use_id) == $id'
  check "(e) thinking block echoed byte-for-byte (signature and text)" \
    upstream "$JQ_DEFS"'$posts[0].reply as $r
              | ($posts[1] | thinking_for($r.toolUseId)) as $t
              | $r.signature != null and $t.signature == $r.signature and $t.thinking == $r.thinking
                and ($posts[1].bodyText | contains($r.signature | tojson))
                and ($posts[1].bodyText | contains($r.thinking | tojson))'
  if [[ $MODE == relay ]]; then
    check "(f) upstream saw x-api-key: $UPSTREAM_KEY and never the client key" \
      upstream --arg want "$UPSTREAM_KEY" --arg client "$CLIENT_KEY" \
        'all($posts[]; .headers["x-api-key"] == $want) and (map(tostring | contains($client)) | any | not)'
  else
    check "(f) [direct control] upstream saw the client's x-api-key" \
      upstream --arg want "$CLIENT_KEY" 'all($posts[]; .headers["x-api-key"] == $want)'
  fi
  session_id=$(jq -r 'select(.type == "system" and .subtype == "init") | .session_id' "$DIR/claude.jsonl" 2>/dev/null | head -1)
  check "(g) anthropic-beta and x-claude-code-session-id reached the upstream" \
    upstream --arg sid "$session_id" \
      '($posts | length) > 0 and $sid != ""
       and all($posts[]; (.headers["anthropic-beta"] // "" | contains("claude-code-20250219"))
                         and .headers["x-claude-code-session-id"] == $sid)'
  check "(h) the tool really ran: turn-2 tool_result content has relay-e2e-ok" \
    upstream "$JQ_DEFS"'$posts[1] | tool_result_text | contains("relay-e2e-ok")'
  check "(i) a streamed answer reached curl byte-for-byte as the upstream sent it" probe_check
  # Informational: the fake's own view of turn 2 (see fake-upstream.mjs verifyTurnTwo).
  echo "# fake upstream verdict on turn 2: $(jq -c -s '[.[] | select(.verdict) | .verdict] | last' "$DIR/upstream.jsonl" 2>/dev/null)"
}

# After Claude Code, one streaming request by curl: the bytes it receives must be exactly the bytes the
# fake upstream logged as sent (SSE relayed byte for byte, including chunk splits inside an event and
# inside a UTF-8 character, and the mid-stream error event). Runs before the processes stop; checked
# by probe_check.
probe_tool_loop() {
  local base_url=$1
  curl -sS -N -m 30 -o "$DIR/probe.sse" -w '%{http_code}' "$base_url/v1/messages?beta=true" \
    -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' -H "x-api-key: $CLIENT_KEY" \
    --data-binary '{"model":"'"$MODEL"'","max_tokens":256,"stream":true,"metadata":{"user_id":"'"$PROBE_MARK"'"},"messages":[{"role":"user","content":"byte probe"}]}' \
    >"$DIR/probe.status" 2>"$DIR/probe.err" || true
}

probe_error_after_content() { probe_tool_loop "$@"; }

probe_check() {
  [[ $(cat "$DIR/probe.status" 2>/dev/null) == 200 ]] || return 1
  jq -e -s --arg got "$(base64 -w0 "$DIR/probe.sse")" --arg mark "$PROBE_MARK" \
    '(map(select(.bodyText? // "" | contains($mark))) | last | .seq) as $seq
     | $seq != null and (map(select(.kind? == "sent" and .seq == $seq)) | last | .sseBase64) == $got' \
    "$DIR/upstream.jsonl"
}

scenario_error_after_content() {
  check "(a) claude exits 1" test "$CLAUDE_RC" -eq 1
  check "(b) result is_error true and reports the upstream's mid-stream error" \
    claude_out --slurpfile up "$DIR/upstream.jsonl" \
      '($up | map(.reply.error.message? // empty) | first) as $msg
       | $msg != null and $result.is_error == true and ($result.result | contains($msg))'
  check "(c) exactly 1 POST /v1/messages (no retry, no fallback after content was sent)" \
    upstream '($posts | length) == 1 and $posts[0].reply.errorAfterContent == true'
  check "(d) the mid-stream error reached curl byte-for-byte as the upstream sent it" probe_check
}

scenario_failover() {
  check "(a) claude exits 0" test "$CLAUDE_RC" -eq 0
  check "(b) final result contains E2E-DONE, is_error false" \
    claude_out '$result.is_error == false and ($result.result | contains("E2E-DONE"))'
  check "(c) Claude Code saw no error and retried nothing itself (no api_retry event)" \
    claude_out 'map(select(.type == "system" and .subtype == "api_retry")) | length == 0'
  check "(d) the sick provider was tried and answered 529" \
    jq -e -s 'map(select(.method == "POST" and .reply.status == 529)) | length >= 1' "$DIR/sick.jsonl"
  check "(e) the healthy provider served both turns, the tool round trip intact" \
    upstream '($posts | length) == 2 and $posts[1].verdict.ok == true'
}

# ---- Claude Code in Bedrock or Vertex mode, pointed at the relay (the relay serves them from the fake) -------

RELAY_SECRET=relay-e2e-secret

# The main loop's requests as the upstream saw them: the streaming ones (probes and fallbacks left out).
JQ_LOOP='[$posts[] | select(.reply.streaming == true)] as $loop'

cloud_mode_checks() {
  check "(a) claude exits 0" test "$CLAUDE_RC" -eq 0
  check "(b) final result contains E2E-DONE, is_error false" \
    claude_out '$result.is_error == false and ($result.result | contains("E2E-DONE"))'
  check "(c) Claude Code saw no error and retried nothing (no api_retry event)" \
    claude_out 'map(select(.type == "system" and .subtype == "api_retry")) | length == 0'
  check "(d) the tool loop reached the upstream as 2 streamed /v1/messages, history intact (thinking signature byte for byte)" \
    upstream "$JQ_LOOP"' | ($loop | length) == 2 and ($loop | map(.reply.turn)) == [1, 2] and $loop[1].verdict.ok == true'
  check "(e) the model Claude Code named in the URL reached the upstream as the body's model" \
    upstream --arg m "$MODEL" "$JQ_LOOP"' | all($loop[]; (.bodyText | fromjson | .model) == $m)'
  check "(f) upstream saw the provider key; the relay's own credential travelled nowhere" \
    upstream --arg want "$UPSTREAM_KEY" --arg secret "$RELAY_SECRET" \
      'all($posts[]; .headers["x-api-key"] == $want) and (map(tostring | contains($secret)) | any | not)'
  check "(g) anthropic-beta (claude-code-20250219) reached the upstream; no cloud body member did" \
    upstream "$JQ_LOOP"' | all($loop[]; (.headers["anthropic-beta"] // "" | contains("claude-code-20250219"))
                     and (.bodyText | fromjson | has("anthropic_version") or has("anthropic_beta") | not))'
}

# The relay's request lines (its log on stdout): "METHOD PATH -> STATUS".
relay_calls() { grep -o 'info: CcRelay[^ ]* req_[^ ]* [A-Z]* [^ ]* -> [0-9]*' "$DIR/relay.out" 2>/dev/null | cut -d' ' -f4- || true; }
relay_saw() { relay_calls | grep -q "$1"; }
relay_never() { ! relay_calls | grep -q "$1"; }

# After Claude Code, the Bedrock surface by curl: inference profiles with and without the relay's credential,
# and one invoke-with-response-stream whose event stream is decoded by the AWS SDK's codec (@smithy/eventstream-codec).
probe_bedrock_bearer() {
  local base_url=$1
  curl -sS -m 10 -o "$DIR/profiles.json" -w '%{http_code}' -H "authorization: Bearer $RELAY_SECRET" \
    "$base_url/inference-profiles?type=SYSTEM_DEFINED" >"$DIR/profiles.status" 2>/dev/null || true
  curl -sS -m 10 -D "$DIR/noauth.headers" -o "$DIR/noauth.json" -w '%{http_code}' \
    "$base_url/inference-profiles?type=SYSTEM_DEFINED" >"$DIR/noauth.status" 2>/dev/null || true
  curl -sS -N -m 30 -D "$DIR/probe.headers" -o "$DIR/probe.es" -w '%{http_code}' \
    "$base_url/model/$MODEL/invoke-with-response-stream" \
    -H 'content-type: application/json' -H "authorization: Bearer $RELAY_SECRET" \
    --data-binary '{"anthropic_version":"bedrock-2023-05-31","max_tokens":256,"metadata":{"user_id":"'"$PROBE_MARK"'"},"messages":[{"role":"user","content":"byte probe"}]}' \
    >"$DIR/probe.status" 2>/dev/null || true
  base64 -w0 "$DIR/probe.es" | node "$REPO/tests/Interop/eventstream.mjs" decode >"$DIR/probe.decoded.json" 2>"$DIR/probe.decode.err" || true
}

# The decoded frames are all `chunk` events whose bytes are the fake's SSE events' data, byte for byte, pings left out.
eventstream_check() {
  [[ $(cat "$DIR/probe.status") == 200 ]] && grep -qi '^content-type: application/vnd.amazon.eventstream' "$DIR/probe.headers" || return 1
  jq -e -s --arg mark "$PROBE_MARK" --slurpfile frames "$DIR/probe.decoded.json" '
    (map(select(.bodyText? // "" | contains($mark))) | last | .seq) as $seq
    | (map(select(.kind? == "sent" and .seq == $seq)) | last | .sseBase64 | @base64d
       | split("\n\n") | map(select(length > 0) | split("\n"))
       | map(select(.[0] != "event: ping") | map(select(startswith("data: ")))[0][6:])) as $want
    | ($frames[0] | map(select(any(.headers[]; .name == ":event-type" and .value == "chunk"))
                          | .payload | @base64d | fromjson | .bytes | @base64d)) as $got
    | ($want | length) > 5 and $got == $want and ($frames[0] | length) == ($want | length)' "$DIR/upstream.jsonl"
}

scenario_bedrock_bearer() {
  cloud_mode_checks
  check "(h) start-up availability probes (POST /model/{id}/invoke, bearer) were served through the relay with 200" \
    relay_saw 'POST /model/[^ ]*/invoke -> 200'
  check "(i) GET /inference-profiles with the relay credential: 200 in AWS's shape" \
    bash -c "[[ \$(cat '$DIR/profiles.status') == 200 ]] && jq -e '.inferenceProfileSummaries | type == \"array\"' '$DIR/profiles.json'"
  check "(j) GET /inference-profiles without a credential: 401 UnrecognizedClientException" \
    bash -c "[[ \$(cat '$DIR/noauth.status') == 401 ]] && grep -qi '^x-amzn-errortype: UnrecognizedClientException' '$DIR/noauth.headers'"
  check "(k) invoke-with-response-stream: smithy decodes chunk frames = the upstream's SSE events byte for byte, pings dropped" \
    eventstream_check
  echo "# relay saw: $(relay_calls | sed 's/us\.anthropic\.[^/]*/<probe-id>/' | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
}

scenario_bedrock_skip_auth() {
  cloud_mode_checks
  check "(h) CLAUDE_CODE_PROVIDER_MANAGED_BY_HOST=1: no availability probe reached the relay" \
    relay_never '/invoke -> '
  echo "# relay saw: $(relay_calls | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
}

scenario_vertex() {
  cloud_mode_checks
  check "(h) every model call arrived as :streamRawPredict on the Vertex path" \
    bash -c "[[ -n \$(grep -o 'POST /v1/projects/e2e-project/locations/us-east5/publishers/anthropic/models/$MODEL:streamRawPredict -> 200' '$DIR/relay.out') ]]"
  echo "# relay saw: $(relay_calls | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
}

# ---- the relay's provider is Bedrock: Claude Code (first-party mode) -> relay -> fake Bedrock runtime -----------

# The built-in model table of a us-* region: the inference profile the relay must call.
BEDROCK_MODEL_ID=us.anthropic.$MODEL

# jq over the fake Bedrock's capture; $calls = its model calls (the replay probes left out), $loop = the streamed ones.
bedrock_up() {
  local filter=${!#}
  jq -e -s "${@:1:$#-1}" \
    '[.[] | select(.bedrock != null and .headers["x-e2e-probe"] == null)] as $calls
     | [$calls[] | select(.bedrock.operation == "invoke-with-response-stream")] as $loop
     | '"$filter" "$DIR/upstream.jsonl"
}

# After Claude Code: the relay's turn-1 request replayed to the fake Bedrock with the same headers must be
# accepted as it is (200) and refused with one byte more in the body (403 InvalidSignatureException), so the
# fake's verification is known to bite.
probe_bedrock_upstream() {
  local first
  first=$(jq -c -s '[.[] | select(.bedrock.operation == "invoke-with-response-stream")] | first // empty' "$DIR/upstream.jsonl" 2>/dev/null)
  [[ -n $first ]] || return 0
  local -a hdrs=()
  local h
  while IFS= read -r h; do hdrs+=(-H "$h"); done < <(jq -r '.headers | to_entries[]
      | select(.key | test("^(authorization|content-type|x-amz-.*|accept|x-amzn-.*)$")) | "\(.key): \(.value)"' <<<"$first")
  jq -j '.bodyText' <<<"$first" >"$DIR/replay.body"
  jq -j '.bodyText + " "' <<<"$first" >"$DIR/tamper.body"
  for h in replay tamper; do
    curl -sS -m 10 -D "$DIR/$h.headers" -o "$DIR/$h.out" -w '%{http_code}' "${hdrs[@]}" -H "x-e2e-probe: $h" \
      --data-binary @"$DIR/$h.body" "http://127.0.0.1:$FAKE_PORT$(jq -r .url <<<"$first")" >"$DIR/$h.status" 2>/dev/null || true
  done
}

scenario_bedrock_upstream() {
  check "(a) claude exits 0" test "$CLAUDE_RC" -eq 0
  check "(b) final result contains E2E-DONE, is_error false" \
    claude_out '$result.is_error == false and ($result.result | contains("E2E-DONE"))'
  check "(c) Claude Code saw no error and retried nothing (no api_retry event)" \
    claude_out 'map(select(.type == "system" and .subtype == "api_retry")) | length == 0'
  check "(d) the tool loop reached the fake Bedrock as 2 invoke-with-response-stream calls for $BEDROCK_MODEL_ID" \
    bedrock_up --arg id "$BEDROCK_MODEL_ID" '($loop | length) == 2 and ($loop | map(.reply.turn)) == [1, 2]
      and all($loop[]; .bedrock.modelId == $id and .url == "/model/\($id)/invoke-with-response-stream")'
  check "(e) every model call was SigV4-signed with the test key and smithy verified the signature (no 403)" \
    bedrock_up --arg akid "$AWS_TEST_KEY_ID" '($calls | length) >= 2
      and all($calls[]; .bedrock.signature.ok == true and .reply.status == 200
                        and (.headers.authorization | startswith("AWS4-HMAC-SHA256 Credential=\($akid)/"))
                        and (.headers["x-amz-date"] | test("^[0-9]{8}T[0-9]{6}Z$")))'
  check "(f) Bedrock-shaped bodies: no model/stream, anthropic_version bedrock-2023-05-31, no anthropic-* headers, no client key" \
    bedrock_up --arg client "$CLIENT_KEY" 'all($calls[]; .bedrock.shape.ok == true
      and (.bodyText | fromjson | (has("model") or has("stream") | not) and .anthropic_version == "bedrock-2023-05-31"
           and ((.anthropic_beta // []) | index("claude-code-20250219") | not))
      and (.headers | has("anthropic-version") or has("anthropic-beta") or has("x-api-key") | not))
      and (map(tostring | contains($client)) | any | not)'
  check "(g) turn 2's history came back intact through event stream -> SSE (tool id, thinking text and signature byte for byte)" \
    bedrock_up '$loop[1].verdict.ok == true'
  check "(h) the tool really ran: turn-2 tool_result content has relay-e2e-ok" \
    bedrock_up "$JQ_DEFS"'$loop[1] | tool_result_text | contains("relay-e2e-ok")'
  check "(i) the relay's request log: POST /v1/messages -> 200 by provider bedrock, upstream_model $BEDROCK_MODEL_ID" \
    bash -c "(( \$(grep -c 'POST /v1/messages[^ ]* -> 200 .*provider=bedrock .*upstream_model=$BEDROCK_MODEL_ID ' '$DIR/relay.out') >= 2 ))"
  check "(j) control: the relay's turn-1 request replayed as is: 200; with one byte more: 403 InvalidSignatureException" \
    bash -c "[[ \$(cat '$DIR/replay.status') == 200 && \$(cat '$DIR/tamper.status') == 403 ]] && grep -qi '^x-amzn-errortype: InvalidSignatureException' '$DIR/tamper.headers'"
  echo "# relay saw: $(relay_calls | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
}

# ---- translated targets: Claude Code -> relay -> a fake OpenAI Chat Completions / Gemini server ------------------

# The provider key and model each fake expects (the relay config maps Claude Code's model to it).
target_key() { case $1 in openai | openai-responses) echo "$UPSTREAM_KEY" ;; gemini) echo gemini-test-key ;; esac; }
target_model() { case $1 in openai) echo deepseek-reasoner ;; openai-responses) echo gpt-5 ;; gemini) echo gemini-3-pro-preview ;; esac; }
TARGET_PROMPT='Run the end-to-end test command with the Bash tool, then read notes.txt and look at pixel.png, then report.'

# The work dir Claude Code runs in, with the two files the fakes ask it to read (the picture: fake-common.mjs's PNG).
prepare_target_workdir() {
  mkdir -p "$DIR/cwd"
  printf '%s\n' 'notes-e2e-marker: the second file' >"$DIR/cwd/notes.txt"
  node "$HERE/fake-common.mjs" png "$DIR/cwd/pixel.png"
}

# jq over Claude Code's requests as the fake saw them (the SDK's, made afterwards, are in sdk-upstream.jsonl);
# $posts = the model calls in arrival order, $sent = their answers, $ok = those answered 200.
target_up() {
  local filter=${!#}
  jq -e -s "${@:1:$#-1}" '[.[] | select(.method == "POST" and .reply != null and (.reply.countTokens | not))] as $posts
     | [$posts[] | select(.reply.status == 200)] as $ok
     | '"$filter" "$DIR/claude-upstream.jsonl"
}

# After Claude Code: the Anthropic TypeScript SDK's accumulator over the same relay and fake (its requests are told
# apart from Claude Code's by a snapshot of the fake's log taken first).
probe_target() {
  local base_url=$1
  cp "$DIR/upstream.jsonl" "$DIR/claude-upstream.jsonl" 2>/dev/null || : >"$DIR/claude-upstream.jsonl"
  timeout 60 node "$HERE/sdk-accumulator.mjs" --sdk-from "$CC_DIR" --base-url "$base_url" --key "$CLIENT_KEY" \
    --model "$MODEL" --log "$DIR/upstream.jsonl" --workdir "$DIR/cwd" >"$DIR/sdk.json" 2>"$DIR/sdk.err" || true
}
probe_openai_chat() { probe_target "$@"; }
probe_gemini() { probe_target "$@"; }
probe_openai_responses() { probe_target "$@"; }

# Claude Code's own view (stream-json): the assistant messages, content blocks merged by message id.
JQ_CC_MESSAGES='[.[] | select(.type == "assistant")] | group_by(.message.id) | map(map(.message.content[]))'

target_checks() {
  local target=$1 path=$2 provider=$3
  check "(a) claude exits 0" test "$CLAUDE_RC" -eq 0
  check "(b) final result contains E2E-DONE, is_error false, no api_retry" \
    claude_out '$result.is_error == false and ($result.result | contains("E2E-DONE"))
                and (map(select(.type == "system" and .subtype == "api_retry")) | length == 0)'
  check "(c) 3 streamed model calls reached the fake at $path, turns 1-2-3, none refused by its validation" \
    target_up --arg path "$path" '($posts | length) == 3 and ($ok | length) == 3
      and ($posts | map(.reply.turn)) == [1, 2, 3] and all($posts[]; .reply.streaming == true and .path == $path)'
  check "(d) the provider credential only: $(target_key "$target") reached the fake; no client key, no anthropic-* header" \
    target_up --arg client "$CLIENT_KEY" --arg key "$(target_key "$target")" '($posts | length) > 0
      and all($posts[]; (.headers.authorization == "Bearer \($key)" or .headers["x-goog-api-key"] == $key)
                        and (.headers | has("x-api-key") or has("anthropic-version") or has("anthropic-beta") | not))
      and (map(tostring | contains($client)) | any | not)'
  check "(e) Claude Code got the thinking: its turn-1 message has the fake's reasoning as a thinking block before the Bash tool_use" \
    claude_out --slurpfile up "$DIR/claude-upstream.jsonl" \
      '($up | map(select(.reply.turn? == 1)) | first | .reply.planned) as $p
       | ('"$JQ_CC_MESSAGES"' | map(select(any(.[]; .type == "tool_use" and .name == "Bash"))) | first) as $m
       | $m != null and ($m | map(select(.type == "thinking") | .thinking) | join("")) == $p.reasoning
         and ($m | map(.type) | index("thinking")) < ($m | map(.type) | index("tool_use"))
         and ($m | map(select(.type == "tool_use") | .input) | first) == $p.calls[0].args'
  check "(f) turn 2 carried the tool result and the turn-1 reasoning back in $target's own form (the fake's checks)" \
    target_up '$ok[1].reply.checks.ok == true'
  check "(g) parallel tool calls: turn 2's two calls reached Claude Code as one message with 2 tool_use blocks, both ran, and came back together" \
    parallel_check
  check "(h) the image: turn 3 carried pixel.png as $(case $target in openai) echo 'an image_url data: URL' ;; openai-responses) echo 'an input_image data: URL' ;; *) echo 'inlineData' ;; esac), its bytes equal to the file" \
    target_up '$ok[2].reply.checks | (.imageAsDataUrl // .imageAsInlineData) == true and .imageBytesEqualFile == true'
  check "(i) turn 3's history is wholly intact (every check of the fake)" target_up '$ok[2].reply.checks.ok == true'
  check "(j) the relay's request log: 3 POST /v1/messages -> 200 by provider $provider, upstream_model $(target_model "$target")" \
    bash -c "(( \$(grep -c 'POST /v1/messages[^ ]* -> 200 .*provider=$provider .*upstream_model=$(target_model "$target")' '$DIR/relay.out') >= 3 ))"
  check "(k) @anthropic-ai/sdk $(jq -r '.dependencies["@anthropic-ai/sdk"]' "$HERE/package.json") messages.stream().finalMessage() over the translated stream, 3 turns: content blocks and tool inputs equal what the fake sent" \
    bash -c "[[ -s '$DIR/sdk.json' ]] && jq -e '.ok == true and (.turns | length) == 3' '$DIR/sdk.json'"
  echo "# fake's turn checks: $(target_up -c '[$ok[] | .reply.checks // {}]' 2>/dev/null | tr -d '\n')"
  echo "# sdk: $(jq -c '[.turns[] | {turn, ok, events, content, problems}]' "$DIR/sdk.json" 2>/dev/null || head -c 400 "$DIR/sdk.err")"
  echo "# relay saw: $(relay_calls | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
}
# Claude Code shows turn 2's two Read calls as one message, and turn 3 gave both back in one assistant message /
# model step, with the notes' text, the turn-2 reasoning (or thought signature) as the fake gave it.
parallel_check() {
  jq -e -s "$JQ_CC_MESSAGES"' | map(select(map(select(.type == "tool_use" and .name == "Read")) | length == 2)) | length == 1' \
    "$DIR/claude.jsonl" || return 1
  target_up '$ok[2].reply.checks | (.parallelCallsInOneMessage // .parallelCallsInOneStep) == true and .notesRead == true
    and (.reasoningEchoed // .signaturesEchoed) == true'
}
scenario_openai_chat() { target_checks openai /v1/chat/completions deepseek; }
scenario_openai_responses() {
  target_checks openai-responses /v1/responses openai
  # beyond the shared checks: the encrypted reasoning itself, as the relay carried it through Claude Code
  check "(l) the reasoning turn 2 and 3 gave back is turn 1's (and 2's) encrypted_content byte for byte, each right before its own calls" \
    target_up '[$ok[] | .reply.planned] as $p
      | ($ok[1].bodyText | fromjson | .input | map(select(.type == "reasoning"))) as $r2
      | ($ok[2].bodyText | fromjson | .input | map(select(.type == "reasoning"))) as $r3
      | ($r2 | map([.id, .encrypted_content])) == [[$p[0].reasoningId, $p[0].encrypted]]
        and ($r3 | map([.id, .encrypted_content])) == [[$p[0].reasoningId, $p[0].encrypted], [$p[1].reasoningId, $p[1].encrypted]]
        and ($ok[1].bodyText | contains($p[0].encrypted | tojson))
        and $ok[1].reply.checks.reasoningEchoed == true and $ok[2].reply.checks.reasoningEchoed == true'
  check "(m) every model call asked for the encrypted reasoning, stateless: store false, include reasoning.encrypted_content, reasoning.effort set" \
    target_up '($posts | length) == 3 and all($posts[]; (.bodyText | fromjson) as $b
      | $b.store == false and $b.include == ["reasoning.encrypted_content"] and ($b.reasoning.effort | type) == "string")'
  check "(n) the tool results went back as function_call_output items with the call ids the fake issued" \
    target_up '[$ok[] | .reply.planned.calls[].id] as $issued
      | ($ok[2].bodyText | fromjson | .input | map(select(.type == "function_call_output") | .call_id)) as $outs
      | ($outs | sort) == ($issued[0:3] | sort)'
}
# jq over the OpenAI-shaped target's capture in the crossed tool loop; $posts = its model calls in arrival order.
cross_up() {
  local filter=${!#}
  cat "$DIR/deepseek.jsonl" 2>/dev/null | jq -e -s "${@:1:$#-1}" \
    '[.[] | select(.method == "POST" and .path == "/v1/chat/completions")] as $posts | '"$filter"
}
scenario_crossed_tool_loop() {
  check "(a) claude exits 0" test "$CLAUDE_RC" -eq 0
  check "(b) final result contains E2E-DONE, is_error false, no api_retry" \
    claude_out '$result.is_error == false and ($result.result | contains("E2E-DONE"))
                and (map(select(.type == "system" and .subtype == "api_retry")) | length == 0)'
  check "(c) the Anthropic-shaped fake: turn 1 served (signed thinking + Bash), the tool result refused 529, the loop's return accepted by its strict replay checks" \
    upstream '$posts[0].reply.status == 200 and $posts[0].reply.turn == 1
              and ($posts[1:-1] | length >= 1 and all(.reply.status == 529))
              and $posts[-1].reply.status == 200 and $posts[-1].reply.strict.ok == true and $posts[-1].reply.strict.toolResults == 3'
  check "(d) the OpenAI-shaped target served turn 2 (its strict validation passed: reasoning_content on the Bash turn), Anthropic's signature never reached it" \
    cross_up --slurpfile up "$DIR/upstream.jsonl" '($up | map(select(.reply.turn? == 1)) | first | .reply.signature) as $sig
      | $posts[0].reply.status == 200 and $posts[0].reply.turn == 2
      and all($posts[]; .bodyText | contains($sig) | not)'
  check "(e) back: turn 3 left the OpenAI-shaped target (503 when tried) and reached the Anthropic-shaped fake without the relay's reasoning signature" \
    bash -c "cat '$DIR/deepseek.jsonl' | jq -e -s '[.[] | select(.method == \"POST\" and .reply.turn == 3)] | all(.reply.status == 503)' \
      && ! grep -q 'cc-relay:reasoning' '$DIR/upstream.jsonl'"
  check "(f) the tools really ran across the crossing: the returning request carries the Bash output and notes.txt's text" \
    upstream '$posts[-1].bodyText | contains("relay-e2e-ok") and contains("notes-e2e-marker")'
  check "(g) the relay said what it left out: turn 2 by deepseek with dropped=thinking_blocks (Anthropic's signed thinking)" \
    bash -c "grep -q 'POST /v1/messages[^ ]* -> 200 .*provider=deepseek .*dropped=[^ ]*thinking_blocks' '$DIR/relay.out'"
  check "(h) the relay's request log: the loop's return served by provider fake" \
    bash -c "(( \$(grep -c 'POST /v1/messages[^ ]* -> 200 .*provider=fake ' '$DIR/relay.out') >= 2 ))"
  echo "# anthropic fake: $(upstream -c '[$posts[] | {status: .reply.status, turn: .reply.turn, strict: .reply.strict}]' 2>/dev/null | tr -d '\n')"
  echo "# openai fake: $(cross_up -c '[$posts[] | {status: .reply.status, turn: .reply.turn, reason: .reply.reason}]' 2>/dev/null | tr -d '\n')"
  echo "# relay saw: $(relay_calls | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
}
scenario_gemini() { target_checks gemini "/v1beta/models/$(target_model gemini):streamGenerateContent" gemini; }
# jq over the cheap fake's capture, as `upstream` does over the main one's.
# A fake that was never called wrote no capture: that is an empty one.
cheap_up() {
  local filter=${!#}
  cat "$DIR/cheap.jsonl" 2>/dev/null | jq -e -s "${@:1:$#-1}" \
    '[.[] | select(.method == "POST" and .path == "/v1/messages")] as $posts | '"$filter"
}
no_posts() { ! grep -q '"method":"POST"' "$DIR/$1" 2>/dev/null; }

scenario_stages() {
  check "(a) claude exits 0" test "$CLAUDE_RC" -eq 0
  check "(b) final result contains E2E-DONE, is_error false" \
    claude_out '$result.is_error == false and ($result.result | contains("E2E-DONE"))'
  # Claude Code leaves out the earlier thinking blocks when the answer's `model` is not the one it asked for;
  # the fake answers with the model it was sent (e2e-reasoner, as a real server does) and the relay names the
  # client's model (claude-sonnet-4-6) in message_start, so turn 2 carries turn 1's thinking and signature back.
  check "(c) both main-loop turns reached the think target with its model; tool round trip and thinking intact" \
    upstream "$JQ_DEFS"'($posts | length) == 2 and all($posts[]; (body.model) == "e2e-reasoner")
              and ($posts | map(.reply.turn)) == [1, 2]
              and $posts[1].verdict.ok == true'
  check "(d) the background target saw nothing" no_posts cheap.jsonl
  check "(e) the relay's request lines say stage=think (thinking-adaptive), provider fake" \
    bash -c "(( \$(grep -c 'POST /v1/messages[^ ]* -> 200 .*provider=fake .*stage=think stage_reason=thinking-adaptive' '$DIR/relay.out') == 2 ))"
  check "(f) the request lines keep the model that answered: upstream_model and response_model e2e-reasoner" \
    bash -c "(( \$(grep -c 'POST /v1/messages[^ ]* -> 200 .*model=claude-sonnet-4-6 upstream_model=e2e-reasoner response_model=e2e-reasoner ' '$DIR/relay.out') == 2 ))"
}

scenario_model_switch() {
  check "(a) claude exits 0" test "$CLAUDE_RC" -eq 0
  check "(b) final result contains E2E-DONE, is_error false" \
    claude_out '$result.is_error == false and ($result.result | contains("E2E-DONE"))'
  check "(c) every request reached the cheap provider with model claude-haiku-4-5" \
    cheap_up '($posts | length) >= 2 and all($posts[]; (.bodyText | fromjson | .model) == "claude-haiku-4-5")'
  check "(d) the default provider saw nothing" no_posts upstream.jsonl
  check "(e) the relay's request lines say stage=direct (model-switch), provider cheap" \
    bash -c "(( \$(grep -c 'POST /v1/messages[^ ]* -> 200 .*provider=cheap .*stage=direct stage_reason=model-switch' '$DIR/relay.out') >= 2 ))"
}

run_scenario() {
  local name=$1 fake_mode=$2 base_url start=$SECONDS
  SCENARIO=$name
  SCENARIO_FAILED=0
  DIR=$TMP/$name
  mkdir -p "$DIR"
  if [[ $name == failover ]]; then
    start_fake "$DIR" overloaded sick
    SICK_PID=$FAKE_PID SICK_PORT=$FAKE_PORT
  fi
  if [[ $fake_mode == openai || $fake_mode == gemini || $fake_mode == openai-responses ]]; then prepare_target_workdir; fi
  if [[ $name == stages || $name == model-switch ]]; then
    start_fake "$DIR" tool-loop cheap
    CHEAP_PID=$FAKE_PID CHEAP_PORT=$FAKE_PORT
  fi
  if [[ $name == crossed-tool-loop ]]; then
    # the OpenAI-shaped target plays turn 2 (two parallel Reads) and refuses turn 3 (503), so the loop goes back
    prepare_target_workdir
    export FAKE_FAIL_TURN=3
    start_fake "$DIR" openai deepseek
    unset FAKE_FAIL_TURN
    CROSS_PID=$FAKE_PID CROSS_PORT=$FAKE_PORT
  fi
  start_fake "$DIR" "$fake_mode"
  base_url=http://127.0.0.1:$FAKE_PORT
  if [[ $MODE == relay ]]; then
    if ! start_relay "$DIR"; then
      echo "not ok - $SCENARIO: relay started and answered /health"
      FAILED=$((FAILED + 1))
      SCENARIO_FAILED=1
      stop_scenario_processes
      keep_captures
      return
    fi
    base_url=http://127.0.0.1:$RELAY_PORT
  fi
  echo "# scenario $name: claude -> ${MODE/direct/fake upstream directly} ($base_url)"
  CLIENT_ENV=()
  case $name in
    bedrock-bearer) CLIENT_ENV=(CLAUDE_CODE_USE_BEDROCK=1 ANTHROPIC_BEDROCK_BASE_URL="$base_url"
                                AWS_BEARER_TOKEN_BEDROCK="$RELAY_SECRET" AWS_REGION=us-east-1) ;;
    bedrock-skip-auth) CLIENT_ENV=(CLAUDE_CODE_USE_BEDROCK=1 ANTHROPIC_BEDROCK_BASE_URL="$base_url"
                                   CLAUDE_CODE_SKIP_BEDROCK_AUTH=1 "ANTHROPIC_CUSTOM_HEADERS=x-api-key: $RELAY_SECRET"
                                   CLAUDE_CODE_PROVIDER_MANAGED_BY_HOST=1 AWS_REGION=us-east-1) ;;
    vertex) CLIENT_ENV=(CLAUDE_CODE_USE_VERTEX=1 ANTHROPIC_VERTEX_BASE_URL="$base_url/v1" CLAUDE_CODE_SKIP_VERTEX_AUTH=1
                        ANTHROPIC_VERTEX_PROJECT_ID=e2e-project CLOUD_ML_REGION=us-east5
                        "ANTHROPIC_CUSTOM_HEADERS=x-api-key: $RELAY_SECRET" CLAUDE_CODE_PROVIDER_MANAGED_BY_HOST=1) ;;
  esac
  run_claude "$DIR" "$base_url"
  if declare -F "probe_${name//-/_}" >/dev/null; then "probe_${name//-/_}" "$base_url"; fi
  stop_scenario_processes
  "scenario_${name//-/_}"
  if ((SCENARIO_FAILED)); then
    echo "# diagnostics for $name: claude rc=$CLAUDE_RC"
    sed 's/^/#   claude: /' "$DIR/claude.jsonl" | tail -5 | cut -c1-400
    sed 's/^/#   claude stderr: /' "$DIR/claude.err" | tail -5
    jq -r -s '.[] | "#   upstream: \(.method) \(.url) -> \(.reply | tostring)"' "$DIR/upstream.jsonl" 2>/dev/null | cut -c1-400 || true
    [[ $MODE == direct ]] || sed 's/^/#   relay: /' "$DIR/relay.out" "$DIR/relay.err" | tail -20
  fi
  keep_captures
  echo "# scenario $name took $((SECONDS - start)) s"
}

# ---- `cc-relay claude`: the command starts its own relay, runs the real Claude Code through it, stops it ----

# No relay listens at the config's server.listen, so `cc-relay claude` starts one in the background on a free
# port, hands Claude Code ANTHROPIC_BASE_URL and the relay's client key (server.auth.api_key), passes every
# argument through, and stops the relay when Claude Code exits. Sets CLAUDE_RC (cc-relay's exit code).
run_cc_relay_claude() {
  local start=$SECONDS path pid
  SCENARIO=cc-relay-claude
  SCENARIO_FAILED=0
  DIR=$TMP/$SCENARIO
  mkdir -p "$DIR/home" "$DIR/cwd"
  start_fake "$DIR" tool-loop
  printf 'server:\n  listen: "127.0.0.1:%s"\n  auth:\n    api_key: "%s"\nproviders:\n  - name: fake\n    type: anthropic_compatible\n    base_url: "http://127.0.0.1:%s"\n    keys:\n      - key: "%s"\n' \
    "$(free_port)" "$RELAY_SECRET" "$FAKE_PORT" "$UPSTREAM_KEY" >"$DIR/relay.yaml"
  path=$(dirname "$CLAUDE"):/usr/bin:/bin
  if [[ ${RELAY_CMD[0]} == dotnet ]]; then path=$(dirname "$(command -v dotnet)"):$path; fi
  echo "# scenario $SCENARIO: cc-relay claude -> its own relay -> fake upstream"
  (cd "$DIR/cwd" && exec env -i PATH="$path" HOME="$DIR/home" CLAUDE_CONFIG_DIR="$DIR/home/.claude" LANG=C.UTF-8 \
      ${DOTNET_ROOT:+DOTNET_ROOT="$DOTNET_ROOT"} DOTNET_CLI_TELEMETRY_OPTOUT=1 CC_RELAY_CONFIG="$DIR/relay.yaml" \
      ANTHROPIC_MODEL="$MODEL" ANTHROPIC_DEFAULT_HAIKU_MODEL=claude-haiku-4-5 \
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 DISABLE_AUTOUPDATER=1 \
      CLAUDE_CODE_MAX_RETRIES=1 IS_SANDBOX=1 \
      timeout 150 "${RELAY_CMD[@]}" claude -p "$PROMPT" --output-format stream-json --verbose \
        --dangerously-skip-permissions --no-session-persistence --max-turns 4 \
      </dev/null >"$DIR/claude.jsonl" 2>"$DIR/claude.err") &
  pid=$!
  PIDS+=("$pid")
  CLAUDE_RC=0
  wait "$pid" || CLAUDE_RC=$?
  forget_pid "$pid"
  stop_scenario_processes
  scenario_cc_relay_claude
  if ((SCENARIO_FAILED)); then
    echo "# diagnostics for $SCENARIO: cc-relay claude rc=$CLAUDE_RC"
    sed 's/^/#   claude: /' "$DIR/claude.jsonl" | tail -5 | cut -c1-400
    sed 's/^/#   stderr: /' "$DIR/claude.err" | tail -20
  fi
  keep_captures
  echo "# scenario $SCENARIO took $((SECONDS - start)) s"
}

scenario_cc_relay_claude() {
  local relay_url
  relay_url=$(sed -nE 's|^cc-relay: started a relay at (http://127\.0\.0\.1:[0-9]+) .*|\1|p' "$DIR/claude.err" | head -1)
  check "(a) cc-relay claude exits 0 (Claude Code's exit code)" test "$CLAUDE_RC" -eq 0
  check "(b) it started a relay on a loopback port" test -n "$relay_url"
  check "(c) final result contains E2E-DONE, is_error false" \
    claude_out '$result.is_error == false and ($result.result | contains("E2E-DONE"))'
  check "(d) both turns reached the upstream through the relay, with the relay's upstream key" \
    upstream --arg key "$UPSTREAM_KEY" '($posts | length) == 2 and all($posts[]; .headers["x-api-key"] == $key)'
  check "(e) the relay it started is stopped" bash -c '! curl -fsS -m 2 -o /dev/null "$1/"' _ "$relay_url"
}

# Copies a scenario's captures (not the throwaway HOME / cwd) to .work/last-run/ for inspection.
keep_captures() {
  local dest=$WORK/last-run/$SCENARIO
  rm -rf "$dest"
  mkdir -p "$dest"
  find "$DIR" -maxdepth 1 -type f -exec cp {} "$dest/" \;
}

# ---- main ----------------------------------------------------------------------------------------------

mkdir -p "$WORK"
rm -rf "$WORK/last-run"
install_claude
if [[ $MODE == relay && ! -d $REPO/tests/Interop/node_modules/@smithy/eventstream-codec ]]; then
  echo "# tests/Interop: npm ci (the AWS event-stream codec the Bedrock checks decode with)"
  (cd "$REPO/tests/Interop" && npm ci --no-audit --no-fund >"$TMP/npm-interop.log" 2>&1) || { cat "$TMP/npm-interop.log" >&2; exit 2; }
fi
if [[ $MODE == relay && -z ${CC_RELAY_BIN:-} ]]; then build_relay; fi
echo "# mode: $MODE${CC_RELAY_BIN:+ ($CC_RELAY_BIN)}"

ONLY=${E2E_ONLY:-}
wanted() { [[ -z $ONLY || " $ONLY " == *" $1 "* ]]; }
CLIENT_ENV=()
wanted tool-loop && run_scenario tool-loop tool-loop
wanted error-after-content && run_scenario error-after-content error-after-content
if [[ $MODE == relay ]]; then
  wanted failover && run_scenario failover tool-loop
  SCENARIO_PROMPT=$TARGET_PROMPT
  wanted crossed-tool-loop && run_scenario crossed-tool-loop crossed
  SCENARIO_PROMPT=''
  wanted stages && run_scenario stages tool-loop
  MODEL_SAVED=$MODEL MODEL=cheap,claude-haiku-4-5
  wanted model-switch && run_scenario model-switch tool-loop
  MODEL=$MODEL_SAVED
  # The relay's only provider is `type: bedrock`, pointed at the fake Bedrock runtime
  BEDROCK_UPSTREAM=1
  wanted bedrock-upstream && run_scenario bedrock-upstream bedrock
  BEDROCK_UPSTREAM=''
  # Claude Code in Bedrock / Vertex mode with the relay as its endpoint; the relay authenticates it
  RELAY_AUTH=$RELAY_SECRET
  wanted bedrock-bearer && run_scenario bedrock-bearer tool-loop
  wanted bedrock-skip-auth && run_scenario bedrock-skip-auth tool-loop
  wanted vertex && run_scenario vertex tool-loop
  RELAY_AUTH=''
  # The relay translates: its only provider is a fake OpenAI Chat Completions server, then a fake Gemini
  SCENARIO_PROMPT=$TARGET_PROMPT
  TARGET=openai
  wanted openai-chat && run_scenario openai-chat openai
  TARGET=openai-responses
  wanted openai-responses && run_scenario openai-responses openai-responses
  TARGET=gemini
  wanted gemini && run_scenario gemini gemini
  TARGET='' SCENARIO_PROMPT=''
  wanted cc-relay-claude && run_cc_relay_claude
fi

echo "E2E: $PASSED passed, $FAILED failed"
((FAILED == 0))
