#!/usr/bin/env bash
# The packages as users get them (issue 22 §3), run by tests/run-all.sh after the Release build:
#   1. `dotnet pack` CcRelay.Core, CcRelay.Host and the cc-relay .NET tool into a temporary folder; each package
#      carries its README, the license expression, a description and (the libraries) their XML docs.
#   2. The tool installed from that folder into a temporary tool path on a clean HOME, the way a user installs it;
#      `cc-relay version`, and `cc-relay serve` on 127.0.0.1 answering GET /health, then stopping on SIGTERM.
#   3. examples/Embedded (an ASP.NET Core app of its own that mounts the relay with AddCcRelay/MapCcRelay) built
#      against the packed CcRelay.Host, with an empty package cache; started on a free 127.0.0.1 port with a
#      config pointing at a fake upstream: its own endpoint, /health, a relayed POST /v1/messages, and a path of
#      neither answering 404.
# Every process it starts listens on 127.0.0.1 only and is stopped by its PID. Ends with one line
# `Packaging: N passed, M failed`; exits non-zero when a check failed.
#
#   bash tests/Packaging/run.sh              builds what it packs
#   bash tests/Packaging/run.sh --no-build   packs the Release build that is there (tests/run-all.sh)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cc-relay-packaging.XXXXXX")
NO_BUILD=()
[[ ${1:-} == --no-build ]] && NO_BUILD=(--no-build)
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
# check DESCRIPTION COMMAND...: one counted check
check() {
  local description=$1
  shift
  if "$@"; then ok "$description"; else not_ok "$description"; fi
}
finish() {
  echo "# took ${SECONDS}s"
  echo "Packaging: $passed passed, $failed failed"
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

# stopped_cleanly PID: SIGTERM, then its exit code is 0 (within 10 s).
stopped_cleanly() {
  local pid=$1 code=0
  kill -TERM "$pid" 2>/dev/null || return 1
  timeout 10 tail --pid="$pid" -f /dev/null || return 1
  wait "$pid" || code=$?
  [[ $code -eq 0 ]] || echo "# exit code $code"
  [[ $code -eq 0 ]]
}

VERSION=$(sed -nE 's:.*<Version>([^<]+)</Version>.*:\1:p' "$REPO/Directory.Build.props" | head -1)
PACKAGES=$TMP/packages
echo "# version $VERSION; packages in $PACKAGES"

# ---- 1. pack ------------------------------------------------------------------------------------------------
pack_all() {
  local project
  for project in src/CcRelay.Core/CcRelay.Core.fsproj src/CcRelay.Host/CcRelay.Host.csproj src/CcRelay.Cli/CcRelay.Cli.csproj; do
    if ! (cd "$REPO" && dotnet pack "$project" -c Release "${NO_BUILD[@]}" -o "$PACKAGES" >>"$TMP/pack.log" 2>&1); then
      grep -E "error|warning" "$TMP/pack.log" | sort -u | sed 's/^/#   /'
      return 1
    fi
  done
  [[ -f $PACKAGES/CcRelay.Core.$VERSION.nupkg && -f $PACKAGES/CcRelay.Host.$VERSION.nupkg && -f $PACKAGES/cc-relay.$VERSION.nupkg ]]
}
check "dotnet pack: CcRelay.Core, CcRelay.Host and cc-relay $VERSION" pack_all || finish
echo "# packed at ${SECONDS}s"
# NU5104 is expected and stays a warning (src/CcRelay.Host/CcRelay.Host.csproj): CcRelay.Host depends on OpenTelemetry's
# Prometheus exporter, which is published only as a beta
if grep -E "warning" "$TMP/pack.log" | grep -qv "NU5104"; then
  not_ok "dotnet pack printed no warning (but NU5104)"
  grep -E "warning" "$TMP/pack.log" | grep -v "NU5104" | sort -u | sed 's/^/#   /'
else
  ok "dotnet pack printed no warning (but NU5104)"
fi

# package_has NUPKG FILE...: the package holds every FILE, the README and the LICENSE text, and its nuspec a
# description, the MIT license expression and the README
package_has() {
  local nupkg=$PACKAGES/$1 listing nuspec file
  shift
  listing=$(unzip -Z1 "$nupkg") || return 1
  for file in "$@" README.md LICENSE; do
    grep -qxF "$file" <<<"$listing" || { echo "# $nupkg lacks $file"; return 1; }
  done
  nuspec=$(unzip -p "$nupkg" '*.nuspec')
  grep -q '<license type="expression">MIT</license>' <<<"$nuspec" || { echo "# no MIT license expression"; return 1; }
  grep -q '<readme>README.md</readme>' <<<"$nuspec" || { echo "# no readme in the nuspec"; return 1; }
  grep -qE '<description>.{40,}</description>' <<<"$nuspec" || { echo "# no description"; return 1; }
}
check "CcRelay.Core package: dll, XML docs, README, LICENSE, MIT, description" \
  package_has "CcRelay.Core.$VERSION.nupkg" lib/net10.0/CcRelay.Core.dll lib/net10.0/CcRelay.Core.xml
check "CcRelay.Host package: dll, XML docs, README, LICENSE, MIT, description" \
  package_has "CcRelay.Host.$VERSION.nupkg" lib/net10.0/CcRelay.Host.dll lib/net10.0/CcRelay.Host.xml
check "cc-relay tool package: the tool's settings and entry point, README, LICENSE, MIT, description" \
  package_has "cc-relay.$VERSION.nupkg" tools/net10.0/any/DotnetToolSettings.xml tools/net10.0/any/cc-relay.dll

# ---- 2. the .NET tool, installed from the folder on a clean HOME -----------------------------------------------
TOOL_HOME=$TMP/home
TOOLS=$TMP/tools
mkdir -p "$TOOL_HOME" "$TMP/tool-cwd"
as_user() { env -u CC_RELAY_CONFIG HOME="$TOOL_HOME" DOTNET_CLI_HOME="$TOOL_HOME" NUGET_PACKAGES="$TOOL_HOME/.nuget/packages" "$@"; }
install_tool() {
  as_user dotnet tool install cc-relay --version "$VERSION" --tool-path "$TOOLS" --add-source "$PACKAGES" \
    >"$TMP/tool-install.log" 2>&1 || { sed 's/^/#   /' "$TMP/tool-install.log"; return 1; }
  [[ -x $TOOLS/cc-relay ]]
}
if check "dotnet tool install cc-relay --tool-path <tmp> --add-source <packed folder> (clean HOME)" install_tool; then
  version_prints() {
    local out
    out=$(cd "$TMP/tool-cwd" && as_user "$TOOLS/cc-relay" version) || return 1
    [[ $out == "cc-relay $VERSION" ]] || { echo "# printed: $out"; return 1; }
  }
  check "installed cc-relay version prints 'cc-relay $VERSION'" version_prints

  # no config anywhere (clean HOME, empty working directory): the built-in Anthropic passthrough
  (cd "$TMP/tool-cwd" && exec env -u CC_RELAY_CONFIG HOME="$TOOL_HOME" "$TOOLS/cc-relay" serve --listen 127.0.0.1:0) \
    >"$TMP/tool-serve.log" 2>&1 &
  TOOL_PID=$!
  PIDS+=("$TOOL_PID")
  serves_health() {
    local address body
    address=$(wait_for_line "$TMP/tool-serve.log" 'listening on http://127\.0\.0\.1:[0-9]+' "$TOOL_PID") \
      || { sed 's/^/#   /' "$TMP/tool-serve.log"; return 1; }
    address=${address#listening on }
    body=$(curl -fsS -m 10 "$address/health") || return 1
    grep -q '"status":"ok"' <<<"$body" && grep -q "\"version\":\"$VERSION\"" <<<"$body" \
      || { echo "# /health: $body"; return 1; }
  }
  check "installed cc-relay serve (127.0.0.1, port 0) answers GET /health 200 with its version" serves_health
  check "installed cc-relay serve stops on SIGTERM with exit code 0" stopped_cleanly "$TOOL_PID"
fi

# ---- 3. examples/Embedded against the packed CcRelay.Host -------------------------------------------------------
SAMPLE=$REPO/examples/Embedded
sample_version_matches() {
  local pinned
  pinned=$(sed -nE 's:.*Include="CcRelay.Host" Version="([^"]+)".*:\1:p' "$SAMPLE/Directory.Packages.props")
  [[ $pinned == "$VERSION" ]] || { echo "# examples/Embedded/Directory.Packages.props pins CcRelay.Host $pinned, the repository is $VERSION"; return 1; }
}
build_sample() {
  # an empty package cache: CcRelay.Host and CcRelay.Core can only come from this run's folder
  (cd "$SAMPLE" && as_user dotnet build -c Release --artifacts-path "$TMP/sample-artifacts" \
    -p:RestoreAdditionalProjectSources="$PACKAGES" >"$TMP/sample-build.log" 2>&1) \
    || { grep -E "error|warning" "$TMP/sample-build.log" | sort -u | sed 's/^/#   /'; return 1; }
  [[ -f $TOOL_HOME/.nuget/packages/ccrelay.host/$VERSION/ccrelay.host.$VERSION.nupkg ]]
}
check "examples/Embedded pins CcRelay.Host at the repository's version $VERSION" sample_version_matches
if ! check "examples/Embedded builds against the packed CcRelay.Host (empty package cache, warnings are errors)" build_sample; then
  finish
fi
echo "# examples/Embedded built at ${SECONDS}s"

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
      - key: "packaging-upstream-key"
    model_mapping:
      "claude-sonnet-4-6": "fake-model-1"
EOF
SAMPLE_DLL=$TMP/sample-artifacts/bin/Embedded/release/Embedded.dll
(cd "$TMP" && exec env CC_RELAY_CONFIG="$TMP/relay.yaml" HOME="$TOOL_HOME" \
  dotnet "$SAMPLE_DLL" --urls http://127.0.0.1:0) >"$TMP/sample.log" 2>&1 &
SAMPLE_PID=$!
PIDS+=("$SAMPLE_PID")
if ! SAMPLE_URL=$(wait_for_line "$TMP/sample.log" 'Now listening on: http://127\.0\.0\.1:[0-9]+' "$SAMPLE_PID"); then
  not_ok "examples/Embedded started"
  sed 's/^/#   /' "$TMP/sample.log"
  finish
fi
SAMPLE_URL=${SAMPLE_URL#Now listening on: }

own_endpoint() {
  local body
  body=$(curl -fsS -m 10 "$SAMPLE_URL/hello") || return 1
  [[ $body == "Hello from an app that embeds CcRelay $VERSION" ]] || { echo "# /hello: $body"; return 1; }
}
relay_health() {
  local body
  body=$(curl -fsS -m 10 "$SAMPLE_URL/health") || return 1
  grep -q '"status":"ok"' <<<"$body" && grep -q '"name":"fake"' <<<"$body" || { echo "# /health: $body"; return 1; }
}
relayed_message() {
  local body seen
  body=$(curl -fsS -m 20 "$SAMPLE_URL/v1/messages" -H 'content-type: application/json' \
    -H 'anthropic-version: 2023-06-01' \
    -d '{"model":"claude-sonnet-4-6","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}') || return 1
  grep -q 'hello from the fake upstream' <<<"$body" || { echo "# answer: $body"; return 1; }
  # the relayed request, among any health probes: POST /v1/messages with the configured key and the mapped model
  seen=$(grep '^SEEN ' "$TMP/fake.log")
  grep -F '"method":"POST","path":"/v1/messages"' <<<"$seen" | grep -F '"key":"packaging-upstream-key"' \
    | grep -qF '"model":"fake-model-1"' || { echo "# the fake upstream saw: ${seen:-nothing}"; return 1; }
}
others_stay_the_apps() {
  local status
  status=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' "$SAMPLE_URL/not-the-relays") || return 1
  [[ $status == 404 ]] || { echo "# status $status"; return 1; }
}
check "examples/Embedded: its own GET /hello answers beside the relay" own_endpoint
check "examples/Embedded: the relay's GET /health is 200 and lists the configured provider" relay_health
check "examples/Embedded: POST /v1/messages is relayed (configured key, mapped model) and answered" relayed_message
check "examples/Embedded: a path of neither is the app's 404" others_stay_the_apps
check "examples/Embedded stops on SIGTERM with exit code 0" stopped_cleanly "$SAMPLE_PID"

finish
